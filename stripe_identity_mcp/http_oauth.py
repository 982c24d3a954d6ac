"""The HTTP transport as an OAuth 2.1 resource server (MCP authorization): what `transport_http` adds
when `--oauth-issuer` is set.

* Protected Resource Metadata (RFC 9728) at `/.well-known/oauth-protected-resource` and its
  path-suffixed form `/.well-known/oauth-protected-resource/mcp` (the SDK's model and handler):
  `resource` (the public URL of /mcp), `authorization_servers` ([issuer]), `scopes_supported`
  (what means something on this process), `bearer_methods_supported` (["header"]). Public, CORS-open:
  browser-based clients (Inspector) read it before they have a token.
* Challenges: every 401 is `WWW-Authenticate: Bearer resource_metadata="<metadata URL>"`, plus
  `error="invalid_token"` and a fixed `error_description` when a token was presented, so clients
  learn where to sign in. An issuer we cannot reach is a 503 (the token may be fine).
* One MCP server per distinct capability set (`oauth_scopes.Capabilities`), built on first use and
  cached: people with the same scopes share one, tools outside their scopes are not registered at
  all (so not listed, not callable). The person is per request: the SDK's `AuthContextMiddleware`
  sets the validated token in its context variable, which the SDK carries into the tool's task, so
  the audit caller (`person_caller`) and the request-state principal binding read it there. Session
  ownership is the SDK's: a session opened by one person is a 404 for another.
* Step-up (SEP-835): a `tools/call` for a tool the process serves but the token's scopes do not
  allow is answered HTTP 403 `WWW-Authenticate: Bearer error="insufficient_scope",
  scope="<needed>"` before the MCP server sees it. The SDK has no hook that can set the HTTP status
  of a tools/call (the tool is simply absent from this person's server: it would answer a JSON-RPC
  "unknown tool"), so `peek_tool_calls` reads the POST body here (up to the transport's 1 MiB limit;
  the buffered body is replayed to the SDK unchanged) and looks at the JSON-RPC method and tool name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive

from stripe_identity_mcp.oauth_jwt import JwtVerifier
from stripe_identity_mcp.oauth_scopes import Capabilities, ToolInfo

METADATA_PATH = "/.well-known/oauth-protected-resource"
MAX_CLAIM_CHARS = 128
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\s\"\\]+")


def _quoted(text: str) -> str:
    """A quoted-string for WWW-Authenticate (RFC 9110): our texts, with `"` and `\\` escaped anyway."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class OAuthResource:
    """This server as a protected resource: identity, metadata, verifier, and the tool catalogue."""

    resource: str  # the public URL of /mcp: the `aud` tokens must carry and the metadata's `resource`
    issuer: str
    verifier: JwtVerifier
    scopes: list[str]
    catalogue: dict[str, ToolInfo] = field(default_factory=dict)  # filled by the front lifespan

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))

    @cached_property
    def metadata_app(self) -> Router:
        """The RFC 9728 document at both well-known paths (built once: nothing in it changes while we run)."""
        # Strings, validated by the model (which keeps a path-less issuer without a trailing slash:
        # clients compare issuers as exact strings).
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource,
                "authorization_servers": [self.issuer],
                "scopes_supported": self.scopes,
                "bearer_methods_supported": ["header"],
                "resource_name": "stripe-identity-mcp",
            }
        )
        endpoint = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
        return Router(
            routes=[
                Route(METADATA_PATH, endpoint=endpoint, methods=["GET", "OPTIONS"]),
                Route(METADATA_PATH + "/mcp", endpoint=endpoint, methods=["GET", "OPTIONS"]),
            ]
        )

    def unauthorized(self, description: str | None = None) -> Response:
        """401 with the RFC 9728 pointer; `invalid_token` when a token was presented (`description`)."""
        challenge = f"Bearer resource_metadata={_quoted(self.metadata_url)}"
        if description is None:
            body = {"error": "unauthorized", "message": "sign in: send Authorization: Bearer <access token>"}
        else:
            challenge += f', error="invalid_token", error_description={_quoted(description)}'
            body = {"error": "invalid_token", "message": description}
        body["resource_metadata"] = self.metadata_url
        return JSONResponse(body, 401, headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"})

    def forbidden(self, needed: str, description: str) -> Response:
        """403 insufficient_scope naming the scope(s) to ask the IdP for (step-up authorization)."""
        challenge = (
            f'Bearer error="insufficient_scope", scope={_quoted(needed)}, '
            f"resource_metadata={_quoted(self.metadata_url)}, error_description={_quoted(description)}"
        )
        body = {"error": "insufficient_scope", "scope": needed, "message": description}
        return JSONResponse(body, 403, headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"})

    @staticmethod
    def unavailable(problem: str) -> Response:
        body = {"error": "temporarily_unavailable", "message": f"cannot validate tokens now: {problem}"}
        return JSONResponse(body, 503, headers={"Retry-After": "5", "Cache-Control": "no-store"})


def _clean(value: object) -> str:
    return _UNSAFE.sub("_", str(value))[:MAX_CLAIM_CHARS]


def person_caller() -> str:
    """The audit caller for the current request's validated token: the person and the client they used.

    `user:<sub> [email=<email>] [username=<preferred_username>] client=<client id>`; claims come from
    the IdP-signed token, still cleaned of whitespace and control characters (it is one log field).
    """
    token = get_access_token()
    if token is None:  # pragma: no cover - OAuth servers are only reached with a validated token
        return "user:unknown"
    claims = token.claims or {}
    parts = [f"user:{_clean(token.subject)}"]
    for claim, label in (("email", "email"), ("preferred_username", "username")):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            parts.append(f"{label}={_clean(value)}")
    parts.append(f"client={_clean(token.client_id)}")
    return " ".join(parts)


async def peek_tool_calls(receive: Receive, limit: int) -> tuple[list[str] | None, Receive]:
    """Read the request body (at most `limit` + 1 bytes) and return the tools/call names in it.

    Returns (None, …) when the body is over the limit or not JSON: the SDK answers those (413/400).
    The returned `receive` replays what was read, then continues with the original.
    """
    buffered: list[Message] = []
    size = 0
    while True:
        message = await receive()
        buffered.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break

    async def replay() -> Message:
        if buffered:
            return buffered.pop(0)
        return await receive()

    if size > limit or buffered[-1]["type"] != "http.request":
        return None, replay
    body = b"".join(m.get("body", b"") for m in buffered if m["type"] == "http.request")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return None, replay
    items = payload if isinstance(payload, list) else [payload]
    names = []
    for item in items:
        if isinstance(item, dict) and item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str):
                names.append(name)
    return names, replay


@dataclass
class CapabilityRoute:
    server: MCPServer[Any]
    tools: frozenset[str]


@dataclass
class CapabilityServers:
    """The MCP servers for capability sets seen so far, each built (and its session manager started) once.

    Bounded by construction: capability sets are subsets of the process's toolsets × read/write.
    """

    build: Callable[[Capabilities], Awaitable[CapabilityRoute]]
    _routes: dict[Capabilities, CapabilityRoute] = field(default_factory=dict)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _tasks: TaskGroup | None = None

    def attach(self, tasks: TaskGroup) -> None:
        """Session managers run in the front lifespan's task group (not in the request that built them)."""
        self._tasks = tasks

    async def get(self, caps: Capabilities) -> CapabilityRoute:
        route = self._routes.get(caps)
        if route is not None:
            return route
        async with self._lock:
            route = self._routes.get(caps)
            if route is None:
                if self._tasks is None:  # pragma: no cover - the front lifespan attaches it first
                    raise RuntimeError("the HTTP front is not running")
                route = await self.build(caps)
                await self._tasks.start(_run_session_manager, route.server)
                self._routes[caps] = route
        return route


async def _run_session_manager(server: MCPServer[Any], *, task_status: TaskStatus[None]) -> None:
    async with server.session_manager.run():
        task_status.started()
        await anyio.sleep_forever()
