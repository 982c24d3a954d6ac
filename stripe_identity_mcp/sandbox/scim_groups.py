"""SCIM 2.0 Groups for the sandbox's Stripe SCIM emulator (``/scim/v2/Groups``).

Kept beside ``scim.py`` (Users, filters, PATCH engine for users, discovery) so both stay readable;
``ScimSandbox`` owns the data (``groups``) and routes ``/Groups`` here.

What it reproduces from Stripe's SCIM guide and its "group role assignments" page
----------------------------------------------------------------------------------
* ``POST/GET/PUT/PATCH/DELETE /Groups`` with RFC 7643 §4.2 groups: ``displayName`` (required,
  unique: a second group with the same name, compared case-insensitively, is 409 ``uniqueness``),
  ``members`` (``value`` = a User id, ``display``, ``$ref``, ``type``) and ``externalId``.
* Group names cannot be updated ("re-provision the group under the new name"): a PUT or PATCH that
  changes ``displayName`` is 400 ``mutability``; the published schema says ``immutable``.
* Members are Users of this account (``value`` must be an existing User id, else 400
  ``invalidValue``); nested groups are not supported.
* A member's roles may follow their groups, through the Dashboard's mapping of a synced group to
  roles (Settings → Team and security → Groups). That mapping is not part of SCIM: nothing here
  (or on Stripe) exposes it, and a group carries no ``roles``.
* Users carry a read-only ``groups`` attribute (RFC 7643 §4.1.2: ``value``, ``display``, ``$ref``,
  ``type: "direct"``), computed from the groups. Deleting a user (or deactivating it, which deletes
  on Stripe) removes it from every group.

PATCH (RFC 7644 §3.5.2): ``add`` of ``members`` appends the members not already in the group;
``replace`` of ``members`` sets them; ``remove`` of ``members`` clears them, ``remove`` of
``members[value eq "<id>"]`` removes that one (a filter that matches nothing is a no-op: removing
an absent member leaves the group as asked), and Entra's ``remove`` of ``members`` *with* a value list
removes those. Path-less ``add``/``replace`` with ``{"members": [...]}`` work too. ``op`` is
case-insensitive. A PATCH answers 200 with the group.

Emulator choices: ``members`` is always rendered (``[]`` for none, unless excluded) so a client can
tell "no members" from "not reported"; ``members.display`` is stored as the client sent it (identity providers send the
person's name) or, when absent, taken from the user's ``displayName`` at that time. Listing, paging,
``attributes``/``excludedAttributes`` and ETags behave as for Users. Filters: ``displayName``,
``id``, ``externalId``, ``members``/``members.value`` and ``meta.*``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .scim import (
    LIST_SCHEMA,
    MAX_RESULTS,
    PATCH_SCHEMA,
    ROLES_DETAIL,
    ScimError,
    _attr,
    _now,
    _project,
    _scim_json,
    _split_attr_list,
    _str,
    parse_filter,
)

if TYPE_CHECKING:
    from .scim import ScimSandbox

__all__ = ["GROUP_SCHEMA", "GROUP_SCHEMA_DOC", "SEED_GROUPS", "GroupsApi", "group_id_for"]

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
RENAME_DETAIL = "Group names cannot be updated; re-provision the group under the new name"
_ID_NAMESPACE = uuid.UUID("0b7d3c1e-9a4f-4e55-8c1a-2f6d5e7a9b30")

# Seeded groups and the shared demo people in them (drawn seed members are spread over the first two).
SEED_GROUPS: dict[str, list[str]] = {
    "Support": ["jane@acme.com", "omar@globex.com"],
    "Developers": ["lee@initech.com", "priya@umbrella.com"],
    "Admins": ["jane@acme.com", "priya@umbrella.com"],
}


def group_id_for(name: str) -> str:
    """Seed-independent id of a seeded group (uuid5 of its lower-cased name)."""
    return str(uuid.uuid5(_ID_NAMESPACE, name.strip().lower()))


GROUP_SCHEMA_DOC: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": GROUP_SCHEMA,
    "name": "Group",
    "description": "Group of Dashboard team members. Roles may be mapped to a group in the Dashboard "
    "(Settings → Team and security → Groups); the mapping is not exposed over SCIM.",
    "attributes": [
        _attr(
            "displayName",
            required=True,
            mutability="immutable",
            uniqueness="server",
            description="Name of the group, unique. Group names cannot be updated: re-provision the group "
            "under the new name.",
        ),
        _attr(
            "members",
            "complex",
            multi=True,
            description="Team members in the group (Users of this account; no nested groups).",
            subs=[
                _attr("value", mutability="immutable", case_exact=True, description="id of the User."),
                _attr("$ref", "reference", mutability="immutable", refs=["User"], description="URI of the User."),
                _attr("type", mutability="immutable", canonical=["User"], description="Always User."),
                _attr("display", mutability="immutable", description="Name of the member."),
            ],
        ),
    ],
}

def _strip_group_urn(path: str) -> str:
    prefix = GROUP_SCHEMA.lower() + ":"
    return path[len(prefix):] if path.lower().startswith(prefix) else path


def _group_filter_attr(path: str) -> tuple[Callable[[dict[str, Any]], list[Any]], str, bool]:
    p = _strip_group_urn(path).lower()
    if p == "id":
        return (lambda g: [g.get("id")], "string", True)
    if p == "externalid":
        return (lambda g: [g.get("externalId")], "string", True)
    if p == "displayname":
        return (lambda g: [g.get("displayName")], "string", False)
    if p in ("members", "members.value"):
        return (lambda g: [m.get("value") for m in g.get("members") or []], "string", True)
    if p in ("members.display",):
        return (lambda g: [m.get("display") for m in g.get("members") or []], "string", False)
    if p in ("meta.created", "meta.lastmodified", "meta.resourcetype"):
        key = {"meta.created": "created", "meta.lastmodified": "lastModified", "meta.resourcetype": "resourceType"}[p]
        return (lambda g, k=key: [(g.get("meta") or {}).get(k)], "string", True)  # type: ignore[misc]
    raise ScimError(400, f"Filtering groups on attribute '{path}' is not supported", "invalidFilter")


class GroupsApi:
    """The /Groups endpoint over ``sandbox.groups`` (id → stored group)."""

    def __init__(self, sandbox: ScimSandbox) -> None:
        self.sb = sandbox

    # ----------------------------------------------------------------- views used by Users

    def groups_of(self, uid: str, base: str) -> list[dict[str, Any]]:
        """A user's read-only `groups` attribute, in group creation order."""
        return [
            {"value": g["id"], "$ref": f"{base}/Groups/{g['id']}", "display": g["displayName"], "type": "direct"}
            for g in self._sorted()
            if any(m["value"] == uid for m in g.get("members") or [])
        ]

    def drop_member(self, uid: str) -> None:
        """A deleted user leaves every group (its lastModified/version move on)."""
        now = _now()
        for gid, group in list(self.sb.groups.items()):
            kept = [m for m in group.get("members") or [] if m["value"] != uid]
            if len(kept) != len(group.get("members") or []):
                fields = {k: v for k, v in group.items() if k not in ("schemas", "id", "meta")}
                fields["members"] = kept
                self.sb.groups[gid] = self._finish(gid, fields, group["meta"]["created"], now)

    # ----------------------------------------------------------------- seed

    def seed(self, drawn: list[str]) -> None:
        """Seed groups with the shared people who exist and the drawn members (`drawn`: user ids)."""
        created = "2025-03-01T00:00:00Z"
        # By id, not position, so a drawn member is in the same group whether or not inactive ones exist.
        extra: dict[str, list[str]] = {"Support": [], "Developers": [], "Admins": []}
        for uid in drawn:
            slot = uuid.UUID(uid).int % 3
            if slot < 2:
                extra["Support" if slot == 0 else "Developers"].append(uid)
        for name, emails in SEED_GROUPS.items():
            uids = [u["id"] for e in emails if (u := self.sb.by_email(e)) is not None] + extra[name]
            members = [self._member(uid, None) for uid in uids]
            gid = group_id_for(name)
            self._store(self._finish(gid, {"displayName": name, "members": members}, created, created), created)

    # ----------------------------------------------------------------- plumbing

    def _sorted(self) -> list[dict[str, Any]]:
        return sorted(self.sb.groups.values(), key=lambda g: self.sb._group_order[g["id"]])

    def _store(self, group: dict[str, Any], created: str) -> None:
        self.sb._clock += 1
        self.sb._group_order[group["id"]] = (created, self.sb._clock)
        self.sb.groups[group["id"]] = group

    def _finish(self, gid: str, fields: dict[str, Any], created: str, now: str) -> dict[str, Any]:
        group: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": gid}
        for key in ("externalId", "displayName", "members"):
            if key in fields and fields[key] is not None:
                group[key] = fields[key]
        if not group.get("members"):
            group.pop("members", None)  # RFC 7643 §2.5: unassigned rather than empty
        group["meta"] = {"resourceType": "Group", "created": created, "lastModified": now}
        group["meta"]["version"] = self.sb._etag(group)
        return group

    def _find(self, gid: str) -> dict[str, Any]:
        group = self.sb.groups.get(gid)
        if group is None:
            raise ScimError(404, f"Group {gid} not found")
        return group

    def _render(self, group: dict[str, Any], request: Request) -> dict[str, Any]:
        base = self.sb._base(request)
        out = copy.deepcopy(group)
        # Always present ([] for none), like users' `groups`: an omitted attribute could mean "not reported".
        out["members"] = out.get("members") or []
        for m in out["members"]:
            m["$ref"] = f"{base}/Users/{m['value']}"
        out["meta"]["location"] = f"{base}/Groups/{group['id']}"
        return out

    def _single(self, request: Request, group: dict[str, Any], status: int = 200, extra: dict[str, str] | None = None) -> Response:
        params = request.query_params
        rendered = _project(
            self._render(group, request),
            _split_attr_list(params.get("attributes")),
            _split_attr_list(params.get("excludedAttributes")),
        )
        return _scim_json(rendered, status, {"ETag": group["meta"]["version"], **(extra or {})})

    def _member(self, raw: Any, display: Any) -> dict[str, Any]:
        """A stored member from a user id (+ optional display), validated against the users."""
        uid = _str(raw, "members.value")
        user = self.sb.users.get(uid)
        if user is None:
            raise ScimError(400, f"members: no User with id '{uid}' (members must be Users of this account)", "invalidValue")
        shown = _str(display, "members.display") if display is not None else user.get("displayName") or user["userName"]
        return {"value": uid, "display": shown, "type": "User"}

    def _members(self, value: Any) -> list[dict[str, Any]]:
        if value is None:
            return []
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise ScimError(400, "'members' must be a list", "invalidValue")
        out: list[dict[str, Any]] = []
        for item in value:
            if not isinstance(item, dict):
                raise ScimError(400, "Each member must be an object with 'value' (a User id)", "invalidValue")
            keys = {str(k).lower(): v for k, v in item.items()}
            kind = keys.get("type")
            if kind is not None and str(kind).lower() != "user":
                raise ScimError(400, "Only Users can be group members (no nested groups)", "invalidValue")
            if keys.get("value") is None and isinstance(keys.get("$ref"), str):
                keys["value"] = keys["$ref"].rstrip("/").rsplit("/", 1)[-1]
            member = self._member(keys.get("value"), keys.get("display"))
            if all(m["value"] != member["value"] for m in out):
                out.append(member)
        return out

    def _conflict(self, name: str, except_id: str | None = None) -> None:
        low = name.lower()
        for g in self.sb.groups.values():
            if g["displayName"].lower() == low and g["id"] != except_id:
                raise ScimError(409, f"A group with displayName '{name}' already exists", "uniqueness")

    def _build(self, body: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        fields = {_strip_group_urn(str(k)).lower(): v for k, v in body.items()}
        if "roles" in fields:
            raise ScimError(400, ROLES_DETAIL, "invalidValue")
        name = fields.get("displayname")
        if not isinstance(name, str) or not name.strip():
            if base is None:
                raise ScimError(400, "'displayName' is required", "invalidValue")
            name = base["displayName"]
        name = name.strip()
        if base is not None and name.lower() != base["displayName"].lower():
            raise ScimError(400, RENAME_DETAIL, "mutability")
        out: dict[str, Any] = {"displayName": base["displayName"] if base else name}
        if fields.get("externalid") is not None:
            out["externalId"] = _str(fields["externalid"], "externalId")
        out["members"] = self._members(fields.get("members"))
        return out

    # ----------------------------------------------------------------- routing

    async def route(self, request: Request, parts: list[str], method: str) -> Response:
        if not parts:
            if method == "GET":
                return self._list(request, dict(request.query_params))
            if method == "POST":
                return await self._create(request)
            raise ScimError(405, f"{method} is not allowed on /Groups")
        if len(parts) == 1 and parts[0] == ".search":
            if method == "POST":
                return await self._search(request)
            raise ScimError(405, f"{method} is not allowed on /Groups/.search")
        if len(parts) == 1:
            gid = parts[0]
            if method == "GET":
                group = self._find(gid)
                inm = request.headers.get("if-none-match")
                if inm and group["meta"]["version"] in [t.strip() for t in inm.split(",")]:
                    return Response(status_code=304, headers={"ETag": group["meta"]["version"]})
                return self._single(request, group)
            if method == "PUT":
                return await self._replace(request, gid)
            if method == "PATCH":
                return await self._patch(request, gid)
            if method == "DELETE":
                group = self._find(gid)
                self.sb._check_if_match(request, group)
                del self.sb.groups[gid]
                self.sb._group_order.pop(gid, None)
                return Response(status_code=204)
            raise ScimError(405, f"{method} is not allowed on /Groups/{{id}}")
        raise ScimError(404, "Unknown SCIM endpoint")

    # ----------------------------------------------------------------- read

    def _list(self, request: Request, params: dict[str, Any]) -> Response:
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
        groups = self._sorted()
        filt = params.get("filter")
        if filt is not None and str(filt).strip():
            pred = parse_filter(str(filt), _group_filter_attr)
            groups = [g for g in groups if pred(g)]
        page = groups[start - 1 : start - 1 + count] if count else []
        attrs = _split_attr_list(params.get("attributes"))
        excluded = _split_attr_list(params.get("excludedAttributes"))
        return _scim_json({
            "schemas": [LIST_SCHEMA],
            "totalResults": len(groups),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": [_project(self._render(g, request), attrs, excluded) for g in page],
        })

    async def _search(self, request: Request) -> Response:
        body = await self.sb._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "SearchRequest must be a JSON object", "invalidSyntax")
        params = {k: body.get(k) for k in ("filter", "startIndex", "count", "attributes", "excludedAttributes")}
        params = {k: v for k, v in params.items() if v is not None}
        for key in ("attributes", "excludedAttributes"):
            value = params.get(key)
            if isinstance(value, list):
                params[key] = ",".join(str(v) for v in value)
        return self._list(request, params)

    # ----------------------------------------------------------------- write

    async def _create(self, request: Request) -> Response:
        body = await self.sb._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "Group must be a JSON object", "invalidSyntax")
        fields = self._build(body, None)
        self._conflict(fields["displayName"])
        now = _now()
        gid = str(uuid.uuid4())
        group = self._finish(gid, fields, now, now)
        self._store(group, now)
        return self._single(request, group, 201, {"Location": f"{self.sb._base(request)}/Groups/{gid}"})

    async def _replace(self, request: Request, gid: str) -> Response:
        current = self._find(gid)
        body = await self.sb._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "Group must be a JSON object", "invalidSyntax")
        self.sb._check_if_match(request, current)
        fields = self._build(body, current)
        group = self._finish(gid, fields, current["meta"]["created"], _now())
        self.sb.groups[gid] = group
        return self._single(request, group)

    async def _patch(self, request: Request, gid: str) -> Response:
        current = self._find(gid)
        body = await self.sb._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "PatchOp must be a JSON object", "invalidSyntax")
        schemas = body.get("schemas")
        if schemas is not None and PATCH_SCHEMA not in (schemas if isinstance(schemas, list) else [schemas]):
            raise ScimError(400, f"PatchOp requests must use the schema {PATCH_SCHEMA}", "invalidSyntax")
        ops = body.get("Operations", body.get("operations"))
        if not isinstance(ops, list) or not ops:
            raise ScimError(400, "PatchOp requires a non-empty 'Operations' list", "invalidSyntax")
        self.sb._check_if_match(request, current)
        work = {k: copy.deepcopy(v) for k, v in current.items() if k not in ("schemas", "id", "meta")}
        for op in ops:
            self._apply(work, op)
        before = {k: v for k, v in current.items() if k not in ("schemas", "id", "meta")}
        if not work.get("members"):
            work.pop("members", None)
        if work != before:
            group = self._finish(gid, work, current["meta"]["created"], _now())
            self.sb.groups[gid] = group
        else:
            group = current
        return self._single(request, group)

    def _apply(self, work: dict[str, Any], raw: Any) -> None:
        if not isinstance(raw, dict):
            raise ScimError(400, "Each operation must be a JSON object", "invalidSyntax")
        op = str(raw.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise ScimError(400, f"Unknown PATCH op '{raw.get('op')}'", "invalidSyntax")
        path, value = raw.get("path"), raw.get("value")
        if path is None or (isinstance(path, str) and not path.strip()):
            if op == "remove":
                raise ScimError(400, "'remove' requires a path", "noTarget")
            if not isinstance(value, dict):
                raise ScimError(400, "A PATCH operation without path needs an object value", "invalidValue")
            for key, v in value.items():
                top = _strip_group_urn(str(key)).lower()
                if top in ("id", "meta", "schemas"):
                    continue
                self._set(work, op, top, v)
            return
        if not isinstance(path, str):
            raise ScimError(400, "'path' must be a string", "invalidPath")
        stripped = _strip_group_urn(path.strip())
        low = stripped.lower()
        if low.startswith("members[") and low.endswith("]"):
            self._filtered_members(work, op, stripped[len("members[") : -1], value)
            return
        if op != "remove" and value is None:
            raise ScimError(400, f"'{op}' requires a value", "invalidValue")
        self._set(work, op, low, value)

    def _set(self, work: dict[str, Any], op: str, top: str, value: Any) -> None:
        if top == "displayname":
            if op == "remove":
                raise ScimError(400, "'displayName' cannot be removed", "mutability")
            name = _str(value, "displayName").strip()
            if name.lower() != work["displayName"].lower():
                raise ScimError(400, RENAME_DETAIL, "mutability")
            return
        if top == "externalid":
            if op == "remove" or value is None:
                work.pop("externalId", None)
            else:
                work["externalId"] = _str(value, "externalId")
            return
        if top == "members":
            current = list(work.get("members") or [])
            if op == "remove":
                if value is None:
                    work["members"] = []
                else:  # Entra: remove with a value list removes those members
                    gone = {m["value"] for m in self._members_loose(value)}
                    work["members"] = [m for m in current if m["value"] not in gone]
                return
            new = self._members(value)
            if op == "replace":
                work["members"] = new
            else:
                known = {m["value"] for m in current}
                work["members"] = current + [m for m in new if m["value"] not in known]
            return
        if top in ("id", "meta", "schemas"):
            raise ScimError(400, f"'{top}' is read-only", "mutability")
        if top == "roles":
            raise ScimError(400, ROLES_DETAIL, "invalidValue")
        raise ScimError(400, f"Unknown group attribute '{top}'", "invalidPath")

    @staticmethod
    def _members_loose(value: Any) -> list[dict[str, Any]]:
        """Members named for removal: only `value` matters (they may no longer exist as users)."""
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                raise ScimError(400, "Each member to remove needs a 'value' (a User id)", "invalidValue")
            out.append({"value": item["value"]})
        return out

    def _filtered_members(self, work: dict[str, Any], op: str, filt: str, value: Any) -> None:
        """`members[value eq "id"]` (RFC 7644 §3.5.2.2): remove (or, on replace, swap) matching members."""
        try:
            pred = parse_filter(filt, _member_filter_attr)
        except ScimError as exc:
            raise ScimError(400, f"Invalid value filter: {exc.detail}", "invalidFilter") from exc
        current = list(work.get("members") or [])
        if op == "remove":
            work["members"] = [m for m in current if not pred(m)]
            return
        if op == "replace":
            if not any(pred(m) for m in current):
                raise ScimError(400, f"No member matches the filter '{filt}'", "noTarget")
            kept = [m for m in current if not pred(m)]
            new = self._members(value)
            known = {m["value"] for m in kept}
            work["members"] = kept + [m for m in new if m["value"] not in known]
            return
        raise ScimError(400, "Use 'add' with path 'members' to add members", "invalidPath")


def _member_filter_attr(path: str) -> tuple[Callable[[dict[str, Any]], list[Any]], str, bool]:
    p = path.lower()
    if p == "value":
        return (lambda m: [m.get("value")], "string", True)
    if p == "display":
        return (lambda m: [m.get("display")], "string", False)
    if p == "type":
        return (lambda m: [m.get("type")], "string", False)
    raise ScimError(400, f"Unknown member sub-attribute '{path}'", "invalidFilter")
