"""SCIM routes: one collection/item router for every resource type, the cross-type ``/.search`` and discovery.

`resource_routes(resource)` gives a type's table (``/Users``, ``/Users/.search``, ``/Users/{id}``;
``/Groups`` alike); `ScimSandbox` collects the tables. Paths reach the table with their first
segment lower-cased (``/users``), so endpoint names are case-insensitive as before; ids are not.

Listing: stable order by creation time; ``startIndex`` 1-based (<1 → 1); ``count`` default and
maximum 100 (negative → 0; 0 → only ``totalResults``); ``sortBy`` is ignored.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..routing import Route
from .filters import parse_filter
from .patch import operations
from .projection import project, project_params, split_attr_list
from .protocol import (
    MAX_RESULTS,
    ScimError,
    base_url,
    check_if_match,
    json_object,
    list_response,
    now,
    scim_json,
)
from .resources import Resource, stored_fields
from .schemas import RESOURCE_TYPES, SCHEMA_DOCS, resource_type_doc, schema_with_meta, service_provider_config

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]
ScimRoute = Route[Handler]

SEARCH_FIELDS = ("filter", "startIndex", "count", "attributes", "excludedAttributes")


def single(request: Request, resource: Resource, stored: dict[str, Any], status: int = 200, extra: dict[str, str] | None = None) -> Response:
    rendered = project_params(resource.render(stored, base_url(request)), request.query_params)
    return scim_json(rendered, status, {"ETag": stored["meta"]["version"], **(extra or {})})


def list_resources(request: Request, params: dict[str, Any], kinds: Sequence[Resource]) -> Response:
    """A ListResponse over ``kinds`` (in that order; ``/.search`` passes every type)."""

    def as_int(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except (TypeError, ValueError) as exc:
            raise ScimError(400, f"'{name}' must be an integer", "invalidValue") from exc

    start = max(as_int("startIndex", 1), 1)
    count = min(max(as_int("count", MAX_RESULTS), 0), MAX_RESULTS)
    filt = params.get("filter")
    matched: list[tuple[dict[str, Any], Resource]] = []
    refusals: list[ScimError] = []
    for kind in kinds:
        stored = kind.store.sorted()
        if filt is not None and str(filt).strip():
            try:
                pred = parse_filter(str(filt), kind.filter_attr)
            except ScimError as exc:
                refusals.append(exc)  # an attribute of another type only: this type matches nothing
                continue
            stored = [r for r in stored if pred(r)]
        matched += [(r, kind) for r in stored]
    if len(refusals) == len(kinds):
        raise refusals[0]
    page = matched[start - 1 : start - 1 + count] if count else []
    attrs = split_attr_list(params.get("attributes"))
    excluded = split_attr_list(params.get("excludedAttributes"))
    base = base_url(request)
    return scim_json(list_response(len(matched), start, [project(kind.render(r, base), attrs, excluded) for r, kind in page]))


async def search_params(request: Request) -> dict[str, Any]:
    """A SearchRequest body (RFC 7644 §3.4.3) as listing parameters."""
    body = await json_object(request, "SearchRequest")
    params = {k: body.get(k) for k in SEARCH_FIELDS}
    params = {k: v for k, v in params.items() if v is not None}
    for key in ("attributes", "excludedAttributes"):
        listed = params.get(key)
        if isinstance(listed, list):
            params[key] = ",".join(str(v) for v in listed)
    return params


def resource_routes(resource: Resource) -> list[ScimRoute]:
    """The collection and item routes of one resource type."""
    endpoint = resource.type.endpoint  # "/Users"
    path = endpoint.lower()
    what = resource.type.name  # "User": names the body in a 400
    store = resource.store

    async def list_(request: Request, _: dict[str, str]) -> Response:
        return list_resources(request, dict(request.query_params), [resource])

    async def search(request: Request, _: dict[str, str]) -> Response:
        return list_resources(request, await search_params(request), [resource])

    async def create(request: Request, _: dict[str, str]) -> Response:
        fields = resource.build(await json_object(request, what), None)
        resource.conflict(fields)
        when = now()
        rid = str(uuid.uuid4())
        stored = resource.finish(rid, fields, when, when)
        store.add(stored, when)
        return single(request, resource, stored, 201, {"Location": f"{base_url(request)}{endpoint}/{rid}"})

    async def get(request: Request, p: dict[str, str]) -> Response:
        stored = store.find(p["id"])
        inm = request.headers.get("if-none-match")
        if inm and stored["meta"]["version"] in [t.strip() for t in inm.split(",")]:
            return Response(status_code=304, headers={"ETag": stored["meta"]["version"]})
        return single(request, resource, stored)

    def deactivated(rid: str) -> Response:
        resource.remove(rid)
        return Response(status_code=204)

    async def replace(request: Request, p: dict[str, str]) -> Response:
        current = store.find(p["id"])
        body = await json_object(request, what)
        check_if_match(request, current)
        fields = resource.build(body, current)
        if resource.deactivates(fields):
            return deactivated(p["id"])  # a PUT with active=false is a deactivation too
        stored = resource.finish(p["id"], fields, current["meta"]["created"], now())
        store.replace(stored)
        return single(request, resource, stored)

    async def patch_(request: Request, p: dict[str, str]) -> Response:
        current = store.find(p["id"])
        ops = operations(await json_object(request, "PatchOp"))
        check_if_match(request, current)
        work = {k: copy.deepcopy(v) for k, v in stored_fields(current).items()}
        for op in ops:
            resource.apply_op(work, op)
        resource.after_patch(work, current)
        if resource.deactivates(work):
            return deactivated(p["id"])
        if work != stored_fields(current):
            stored = resource.finish(p["id"], work, current["meta"]["created"], now())
            store.replace(stored)
        else:
            stored = current
        return single(request, resource, stored)

    async def delete(request: Request, p: dict[str, str]) -> Response:
        stored = store.find(p["id"])
        check_if_match(request, stored)
        resource.remove(p["id"])
        return Response(status_code=204)

    item = f"{path}/{{id}}"
    reserved = (".search",)  # /Users/.search is the search endpoint, never a user id
    return [
        Route("GET", path, list_, endpoint),
        Route("POST", path, create, endpoint),
        Route("POST", f"{path}/.search", search, f"{endpoint}/.search"),
        Route("GET", item, get, f"{endpoint}/{{id}}", reserved),
        Route("PUT", item, replace, f"{endpoint}/{{id}}", reserved),
        Route("PATCH", item, patch_, f"{endpoint}/{{id}}", reserved),
        Route("DELETE", item, delete, f"{endpoint}/{{id}}", reserved),
    ]


def search_every_type_route(kinds: Sequence[Resource]) -> list[ScimRoute]:
    """``POST /.search`` (RFC 7644 §3.4.3): every resource type, in ``kinds`` order."""

    async def search(request: Request, _: dict[str, str]) -> Response:
        return list_resources(request, await search_params(request), kinds)

    return [Route("POST", "/.search", search, "/.search")]


READ_ONLY_NOTE = "; discovery endpoints are read-only"


async def _spc(request: Request, _: dict[str, str]) -> Response:
    return scim_json(service_provider_config(base_url(request)))


async def _resource_types(request: Request, p: dict[str, str]) -> Response:
    base = base_url(request)
    rid = p.get("id")
    if rid is None:
        return scim_json(list_response(len(RESOURCE_TYPES), 1, [resource_type_doc(rt, base) for rt in RESOURCE_TYPES]))
    rt = next((rt for rt in RESOURCE_TYPES if rid.lower() in rt.names()), None)
    if rt is None:
        raise ScimError(404, f"Resource type {rid} not found (User and Group are supported)")
    return scim_json(resource_type_doc(rt, base))


async def _schemas(request: Request, p: dict[str, str]) -> Response:
    base = base_url(request)
    sid = p.get("id")
    if sid is None:
        return scim_json(list_response(len(SCHEMA_DOCS), 1, [schema_with_meta(d, base) for d in SCHEMA_DOCS]))
    doc = {d["id"].lower(): d for d in SCHEMA_DOCS}.get(sid.lower())
    if doc is None:
        raise ScimError(404, f"Schema {sid} not found")
    return scim_json(schema_with_meta(doc, base))


def _discovery(template: str, handler: Handler, endpoint: str) -> ScimRoute:
    return Route("GET", template, handler, endpoint + READ_ONLY_NOTE)


DISCOVERY_ROUTES: list[ScimRoute] = [
    _discovery("/serviceproviderconfig", _spc, "/ServiceProviderConfig"),
    _discovery("/resourcetypes", _resource_types, "/ResourceTypes"),
    _discovery("/resourcetypes/{id}", _resource_types, "/ResourceTypes"),
    _discovery("/schemas", _schemas, "/Schemas"),
    _discovery("/schemas/{id}", _schemas, "/Schemas"),
]
