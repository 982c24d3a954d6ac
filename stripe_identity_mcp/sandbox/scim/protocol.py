"""SCIM 2.0 on the wire (RFC 7644): message schemas, the error type and shape, JSON bodies, ETags."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
SCIM_MEDIA_TYPE = "application/scim+json"
MAX_RESULTS = 100


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scim_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type=SCIM_MEDIA_TYPE)


def error_response(exc: ScimError) -> Response:
    payload: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(exc.status)}
    if exc.scim_type:
        payload["scimType"] = exc.scim_type
    payload["detail"] = exc.detail
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if exc.status == 401 else None
    return scim_json(payload, exc.status, headers)


def list_response(total: int, start: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


async def json_body(request: Request) -> Any:
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in (SCIM_MEDIA_TYPE, "application/json") and not ctype.endswith("+json"):
        raise ScimError(415, f"Unsupported content type '{ctype}'; use {SCIM_MEDIA_TYPE}")
    if not raw.strip():
        raise ScimError(400, "Request body is empty", "invalidSyntax")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ScimError(400, "Request body is not valid JSON", "invalidSyntax") from exc


async def json_object(request: Request, what: str) -> dict[str, Any]:
    """The request body, which must be a JSON object (``what`` names it in the 400)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ScimError(400, f"{what} must be a JSON object", "invalidSyntax")
    return body


def base_url(request: Request) -> str:
    root = request.scope.get("root_path", "") or ""
    return str(request.url.replace(path=root, query="", fragment="")).rstrip("/")


def etag(resource: dict[str, Any]) -> str:
    content = {k: v for k, v in resource.items() if k != "meta"}
    raw = json.dumps(content, sort_keys=True) + (resource.get("meta") or {}).get("lastModified", "")
    return 'W/"' + hashlib.sha256(raw.encode()).hexdigest()[:20] + '"'


def check_if_match(request: Request, resource: dict[str, Any]) -> None:
    wanted = request.headers.get("if-match")
    if not wanted:
        return
    tags = [t.strip() for t in wanted.split(",")]
    current = resource["meta"]["version"]
    if "*" not in tags and current not in tags and current.removeprefix("W/") not in [t.removeprefix("W/") for t in tags]:
        raise ScimError(412, "The resource has changed since it was read (If-Match failed)")
