"""Streamable HTTP transport for chat-ops bots: bearer tokens with per-token scopes.

Design (decided here; see also SPEC §5, §11)

* One MCPServer per token. Each token entry (see `http_auth`) gets its own `build_server()` with
  settings derived from the process settings (`scoped_settings`): read-only tokens force
  `read_only`, toolsets are intersected with what the process enables, live writes need both the
  token's `live_writes` and the process's `--allow-live-writes`. A token never gets more than the
  process allows, and a write tool its scope does not allow is not registered at all, so it is
  neither listed nor callable. Per token rather than per distinct scope: tokens are few, and this
  way a stateful MCP session can never cross tokens (an unknown session id is a 404 in the other
  token's session manager) and the audit caller is a constant of the server — no per-request
  context variable has to survive the SDK's session tasks.
* Shared clients. The front app's lifespan opens the Stripe/SCIM clients once (`open_deps` with
  the process settings); every per-token server's lifespan yields an `AppDeps` with its scoped
  settings that reuses the same StripeClient (so ONE token bucket paces all bots: Stripe's rate
  limit is per key), the same SCIM client and one shared AuditLog, with
  `caller="token:<name>"` so audit lines name the token.
* The front ASGI app (`FrontApp`): `GET /healthz` → 200 `{"status":"ok"}` (no auth, no secrets);
  `/mcp` → Host/Origin check (421 bad Host, 403 bad Origin; done before auth so a browser attack
  learns nothing), then the bearer check (sha256 + `hmac.compare_digest` against every entry), a
  missing/unknown token → 401 with `WWW-Authenticate: Bearer` and a JSON body, then dispatch to
  that token's session manager (which re-checks Host/Origin, limits bodies to 1 MiB → 413, and
  rejects non-JSON POSTs). Anything else → 404. Every session manager is run
  (`session_manager.run()`) inside the front lifespan.
* Transport security defaults: allowed Hosts = the bound host:port plus localhost / 127.0.0.1 /
  [::1] on that port; allowed Origins = http://<each of those>. `--allowed-host` /
  `--allowed-origin` (repeatable, `:*` port wildcards allowed) add to them. Requests without an
  Origin (bots, curl) pass the Origin check; browsers always send one.
* OAuth 2.1 (`--oauth-issuer`, see `http_oauth`): people's JWT access tokens, alongside the bot
  tokens (a bearer matching no bot token is validated as a JWT). Their servers are built per
  capability set on first use; their session managers run in a task group of the front lifespan.
* Confirmation round trips (2026-07-28 `requestState`) are sealed with one key ring per process
  (`STRIPE_IDENTITY_MCP_STATE_KEYS`, shared by replicas; else a random per-process key) and bound
  to the principal: the bot token's caller, or the person's (client, issuer, subject).
* Without a tokens file or an OAuth issuer: on a loopback host the server runs unauthenticated (warning on stderr,
  audit caller "anonymous"); on any other host it refuses to start (exit 2). A configured but empty
  or invalid tokens file is always an error. Tokens are read at start; restart to apply changes.
* uvicorn: access log off (nothing about requests, let alone Authorization headers, is logged),
  our own logging config (stderr), graceful shutdown 5 s, no Server header, no WebSocket upgrades.
  Connections are admitted and timed by `http_guard` (our H11 protocol subclass), not by uvicorn's
  `limit_concurrency` (which counted idle sockets, so a flood of silent ones meant 503 for all):
  headers within `--header-timeout` (5 s), keep-alive `--keep-alive` (15 s), unread output for at
  most `--write-timeout` (30 s), `--max-connections` (1024) of which `--reserved-connections` (128)
  never go to connections without a request in progress (the oldest such is closed to make room),
  `--max-connections-per-ip` (128).
  `--stateless` sets `stateless_http=True` (no session state: run several replicas behind a load
  balancer).

The socket is bound before anything is served (port 0 works; the real URL is printed on stderr).
`prepare_http(settings, options)` builds everything without serving (tests run it in a thread).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import principal_components
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import RequestStateSecurity, authenticated_principal
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stripe_identity_mcp.audit import AuditLog, audit_path
from stripe_identity_mcp.deps import AppDeps, open_deps
from stripe_identity_mcp.event_store import RedisEventStore
from stripe_identity_mcp.http_auth import TokenEntry, TokenFileError, TokenTable, load_tokens
from stripe_identity_mcp.http_guard import (
    ConnectionGuard,
    ConnectionLimits,
    LimitsError,
    fit_to_fd_limit,
    guarded_protocol,
)
from stripe_identity_mcp.http_oauth import (
    METADATA_PATH,
    CapabilityRoute,
    CapabilityServers,
    OAuthResource,
    peek_tool_calls,
    person_caller,
)
from stripe_identity_mcp.oauth_introspection import IntrospectionPolicy, Introspector
from stripe_identity_mcp.oauth_jwt import IssuerUnavailable, JwtPolicy, JwtVerifier, TokenRejected
from stripe_identity_mcp.oauth_scopes import (
    Capabilities,
    allowed,
    capabilities,
    capability_settings,
    needed_scope,
    scopes_supported,
    tool_catalogue,
)
from stripe_identity_mcp.server import build_server
from stripe_identity_mcp.settings import ConfigError, Settings
from stripe_identity_mcp.stream_resume import StreamFront

MAX_BODY_BYTES = 1024 * 1024
MAX_SESSIONS_PER_TOKEN = 1000
SESSION_IDLE_S = 15 * 60
ANONYMOUS = "anonymous"
REALM = "stripe-identity-mcp"


def log(message: str) -> None:
    print(f"stripe-identity-mcp: {message}", file=sys.stderr, flush=True)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def scoped_settings(settings: Settings, entry: TokenEntry) -> Settings:
    """The process settings narrowed to what `entry` may do (never widened)."""
    update: dict[str, Any] = {"allow_live_writes": settings.allow_live_writes and entry.live_writes}
    if entry.scope == "read-only":
        update["read_only"] = True
    if entry.toolsets is not None:
        allowed = tuple(t for t in settings.enabled_toolsets() if t in entry.toolsets)
        if not allowed:
            raise ConfigError(
                f"token '{entry.name}' allows toolsets {list(entry.toolsets)} but this server enables only "
                f"{list(settings.enabled_toolsets())}: it could use nothing. Fix the token file or the server flags."
            )
        update["toolsets"] = allowed
    return settings.model_copy(update=update)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def security_settings(
    host: str, port: int, allowed_hosts: list[str] | None = None, allowed_origins: list[str] | None = None
) -> TransportSecuritySettings:
    names = [_url_host(host), "127.0.0.1", "localhost", "[::1]"]
    hosts = list(dict.fromkeys(f"{name}:{port}" for name in names))
    hosts += [h for h in allowed_hosts or [] if h not in hosts]
    origins = [f"http://{h}" for h in hosts if "*" not in h or h.endswith(":*")]
    origins += [o for o in allowed_origins or [] if o not in origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


@dataclass
class TokenRoute:
    """One token (or the anonymous loopback caller) and the MCP server built for its scope."""

    caller: str
    settings: Settings
    server: MCPServer[AppDeps]


@dataclass
class Shared:
    """Clients opened once by the front lifespan and reused by every per-token server."""

    deps: AppDeps | None = None
    audit: AuditLog | None = None


def _unauthorized(presented: bool) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if presented:
        challenge += ', error="invalid_token"'
        body = {"error": "invalid_token", "message": "unknown bearer token"}
    else:
        body = {"error": "unauthorized", "message": "send Authorization: Bearer <token>"}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"})


def _bearer(request: Request) -> tuple[bool, str | None]:
    """(an Authorization header was sent, the bearer token in it or None)."""
    header = request.headers.get("authorization")
    if header is None:
        return False, None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return True, None
    return True, value.strip()


@dataclass
class FrontApp:
    """ASGI app: /healthz, Host/Origin + bearer checks on /mcp, dispatch to the token's server."""

    routes: list[TokenRoute]
    table: TokenTable | None  # None: unauthenticated loopback mode (routes has the one anonymous server)
    security: TransportSecuritySettings
    process_settings: Settings
    on_ready: Callable[[], None] | None = None
    shared: Shared = field(default_factory=Shared)
    oauth: OAuthResource | None = None  # set with --oauth-issuer: people's access tokens (see http_oauth)
    people: CapabilityServers | None = None  # the servers for OAuth capability sets, built on first use
    webhooks: Any = None  # WebhookReceiver when --webhook-secret is set (POST /webhooks/stripe)
    streams: StreamFront | None = None  # stateful with --redis-url: resumable streams (see stream_resume)
    _by_caller: dict[str, TokenRoute] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._guard = TransportSecurityMiddleware(self.security)

    def add(self, route: TokenRoute) -> None:
        self.routes.append(route)
        self._by_caller[route.caller] = route

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with open_deps(self.process_settings) as deps, AsyncExitStack() as stack:
            self.shared.deps = deps
            self.shared.audit = AuditLog(audit_path(self.process_settings), self.process_settings.secrets())
            if self.streams is not None:
                await self.streams.store.open()
                stack.push_async_callback(self.streams.store.aclose)
            for route in self.routes:
                await stack.enter_async_context(route.server.session_manager.run())
            if self.oauth is not None and self.people is not None:
                self.oauth.catalogue = await tool_catalogue(self.process_settings)
                stack.push_async_callback(self.oauth.verifier.aclose)
                tasks = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(tasks.cancel_scope.cancel)  # runs first on exit: stops the lazily started managers
                self.people.attach(tasks)
            if self.on_ready is not None:
                self.on_ready()
            yield

    def opener(
        self, caller: str | Callable[[], str]
    ) -> Callable[[Settings], contextlib.AbstractAsyncContextManager[AppDeps]]:
        """`open_app_deps` for one token's server: the shared clients with that token's settings.

        `caller` is a constant (a bot token) or a callable read per audit line (OAuth: the person)."""

        @asynccontextmanager
        async def open_scoped(settings: Settings) -> AsyncIterator[AppDeps]:
            shared = self.shared.deps
            if shared is None:  # pragma: no cover - the front lifespan always opens them first
                raise RuntimeError("shared clients are not open")
            yield AppDeps(
                settings=settings,
                stripe=shared.stripe,
                scim=shared.scim,
                caller=caller,
                audit_log=self.shared.audit,
                create_locks=shared.create_locks,  # one lock per email across tokens, like the one Stripe client
            )

        return open_scoped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        path = scope["path"].rstrip("/") or "/"
        if path == "/healthz":
            if scope["method"] not in ("GET", "HEAD"):
                await Response(status_code=405, headers={"Allow": "GET, HEAD"})(scope, receive, send)
                return
            await JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})(scope, receive, send)
            return
        if path == "/webhooks/stripe" and self.webhooks is not None:
            await self.webhooks(scope, receive, send)  # authenticated by Stripe-Signature, not a token
            return
        if self.oauth is not None and (path == METADATA_PATH or path.startswith(METADATA_PATH + "/")):
            await self.oauth.metadata_app(scope, receive, send)
            return
        if path != "/mcp":
            await JSONResponse({"error": "not_found", "message": "the MCP endpoint is /mcp"}, 404)(scope, receive, send)
            return
        request = Request(scope)
        refused = await self._guard.validate_request(request, is_post=False)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if scope.get("path") != "/mcp":
            scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        if self.table is None and self.oauth is None:
            await self._mcp(ANONYMOUS, self.routes[0].server.session_manager.handle_request, scope, receive, send)
            return
        sent, token = _bearer(request)
        entry = self.table.match(token) if self.table is not None else None
        if entry is not None:
            handler = self._by_caller[entry.caller].server.session_manager.handle_request
            await self._mcp(entry.caller, handler, scope, receive, send)
        elif self.oauth is not None:
            await self._serve_person(scope, receive, send, sent, token)
        else:
            await _unauthorized(sent)(scope, receive, send)

    async def _serve_person(self, scope: Scope, receive: Receive, send: Send, sent: bool, token: str | None) -> None:
        """An OAuth access token: validate it, pick the server for its scopes, refuse calls beyond them."""
        oauth, people = self.oauth, self.people
        assert oauth is not None and people is not None
        if token is None:
            await oauth.unauthorized("send Authorization: Bearer <access token>" if sent else None)(scope, receive, send)
            return
        try:
            access = await oauth.verifier.verify(token)
        except TokenRejected as exc:
            await oauth.unauthorized(exc.description)(scope, receive, send)
            return
        except IssuerUnavailable as exc:
            await oauth.unavailable(str(exc))(scope, receive, send)
            return
        caps = capabilities(access.scopes, self.process_settings)
        if caps.empty:
            needed = " ".join(scopes_supported(self.process_settings)[:1] or ["customers:read"])
            description = "the token has none of this server's scopes (see scopes_supported in the metadata)"
            await oauth.forbidden(needed, description)(scope, receive, send)
            return
        route = await people.get(caps)
        if scope["method"] == "POST":
            names, receive = await peek_tool_calls(receive, MAX_BODY_BYTES)
            refused = self._beyond_scope(names or [], route)
            if refused is not None:
                await refused(scope, receive, send)
                return
        scope = {**scope, "user": AuthenticatedUser(access)}
        principal = "oauth:" + json.dumps(principal_components(access))  # (client, issuer, subject)
        await self._mcp(principal, AuthContextMiddleware(route.server.session_manager.handle_request), scope, receive, send)

    async def _mcp(self, principal: str, handler: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """An authenticated /mcp request to its session manager, through the stream layer when enabled."""
        if self.streams is None:
            await handler(scope, receive, send)
        else:
            await self.streams.handle(principal, handler, scope, receive, send)

    def _beyond_scope(self, names: list[str], route: CapabilityRoute) -> Response | None:
        """403 for a tool this process serves but the token's scopes do not allow (else the SDK answers)."""
        assert self.oauth is not None
        for name in names:
            info = self.oauth.catalogue.get(name)
            if info is not None and name not in route.tools:
                needed = needed_scope(info, self.process_settings)
                return self.oauth.forbidden(needed, f"calling {name} needs scope {needed}")
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":  # pragma: no cover
            return
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()  # lifespan.shutdown
        except BaseException as exc:
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": type(exc).__name__})
            raise
        await send({"type": "lifespan.shutdown.complete"})


@dataclass
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    stateless: bool = False
    allowed_hosts: list[str] | None = None
    allowed_origins: list[str] | None = None
    json_response: bool = False

    @classmethod
    def from_args(cls, args: Any) -> HttpOptions:
        return cls(
            host=getattr(args, "host", None) or "127.0.0.1",
            port=int(getattr(args, "port", 8765)),
            stateless=bool(getattr(args, "stateless", False)),
            allowed_hosts=getattr(args, "allowed_host", None),
            allowed_origins=getattr(args, "allowed_origin", None),
        )


@dataclass
class PreparedHttp:
    """Everything built and the socket bound; `serve()` runs until stopped."""

    app: FrontApp
    sock: socket.socket
    host: str
    port: int
    config: uvicorn.Config
    guard: ConnectionGuard

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}/mcp"

    def server(self) -> uvicorn.Server:
        return uvicorn.Server(self.config)

    async def serve(self, server: uvicorn.Server | None = None) -> None:
        await (server or self.server()).serve(sockets=[self.sock])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP,
    # and without it a keep-alive client waits ~40 ms (delayed ACK) for every response after its first.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The HTTP connection limits from the settings (flags / env). Raises ConfigError."""
    try:
        return ConnectionLimits(
            header_timeout_s=settings.http_header_timeout_s,
            keep_alive_s=settings.http_keep_alive_s,
            write_timeout_s=settings.http_write_timeout_s,
            max_connections=settings.http_max_connections,
            max_per_address=settings.http_max_connections_per_ip,
            reserved=settings.http_reserved_connections,
        )
    except LimitsError as exc:
        raise ConfigError(f"{exc}: fix --reserved-connections / --max-connections") from None


def _fixed_principal(caller: str) -> Callable[[Any], str]:
    """Request-state principal of a bot token's (or the anonymous) server: constant, like its caller."""
    return lambda _ctx: caller


def _public_url(settings: Settings, host: str, port: int) -> str:
    """The URL of /mcp as clients reach it: --public-url (with /mcp appended unless given), else the bound one."""
    base = settings.public_url or f"http://{_url_host(host)}:{port}"
    return base if base.endswith("/mcp") else base.rstrip("/") + "/mcp"


def _require_tls(flag: str, url: str) -> None:
    """OAuth 2.1: the issuer and key URLs are https, except on a loopback host (tests, local IdPs)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
        raise ConfigError(f"{flag} must be an https:// URL (plain http is accepted for loopback hosts only)")


def oauth_resource(settings: Settings, host: str, port: int) -> OAuthResource:
    """The OAuth resource-server setup from the settings. Raises ConfigError."""
    assert settings.oauth_issuer is not None
    _require_tls("--oauth-issuer", settings.oauth_issuer)
    if settings.oauth_jwks_url:
        _require_tls("--oauth-jwks-url", settings.oauth_jwks_url)
    resource = _public_url(settings, host, port)
    audience = settings.oauth_audience or resource
    opaque = None
    if settings.oauth_introspection_url:
        _require_tls("--oauth-introspection-url", settings.oauth_introspection_url)
        if not settings.oauth_client_id or settings.oauth_client_secret is None:
            raise ConfigError(
                "--oauth-introspection-url needs this server's client credentials at the issuer: set "
                "STRIPE_IDENTITY_MCP_OAUTH_CLIENT_ID and STRIPE_IDENTITY_MCP_OAUTH_CLIENT_SECRET"
            )
        opaque = Introspector(
            IntrospectionPolicy(
                url=settings.oauth_introspection_url,
                client_id=settings.oauth_client_id,
                client_secret=settings.oauth_client_secret.get_secret_value(),
                issuer=settings.oauth_issuer,
                audience=audience,
            )
        )
    policy = JwtPolicy(
        issuer=settings.oauth_issuer,
        audience=audience,
        jwks_url=settings.oauth_jwks_url,
        refetch_s=settings.oauth_jwks_refetch_s,
    )
    return OAuthResource(
        resource=resource,
        issuer=settings.oauth_issuer,
        verifier=JwtVerifier(policy, opaque=opaque),
        scopes=scopes_supported(settings),
    )


def prepare_http(settings: Settings, options: HttpOptions, on_ready: Callable[[], None] | None = None) -> PreparedHttp:
    """Validate tokens and scopes, build one server per token, bind the socket. Raises ConfigError."""
    table: TokenTable | None = None
    if settings.tokens_file is not None:
        try:
            table = load_tokens(settings.tokens_file)
        except TokenFileError as exc:
            raise ConfigError(str(exc)) from None
        if len(table) == 0:
            raise ConfigError(
                f"token file {settings.tokens_file} has no tokens; create one with "
                f"`stripe-identity-mcp token create --name NAME --scope read-only --file {settings.tokens_file}`"
            )
    elif not is_loopback(options.host) and settings.oauth_issuer is None:
        raise ConfigError(
            f"refusing to serve on {options.host} without bearer tokens: anyone who can reach it could use the "
            "Stripe key. Create tokens with `stripe-identity-mcp token create --name BOT --scope read-only "
            "--file tokens.toml` and pass --tokens-file tokens.toml (or bind to 127.0.0.1)."
        )

    plans: list[tuple[str, Settings]] = []
    if table is None and settings.oauth_issuer is None:
        plans.append((ANONYMOUS, settings))
    elif table is None:
        pass  # OAuth only: the servers are built per capability set on first use
    else:
        for entry in table.entries:
            scoped = scoped_settings(settings, entry)
            if entry.scope == "writes" and not scoped.writes_enabled:
                log(f"token '{entry.name}' has scope writes but {scoped.writes_off_reason}: it gets read tools only")
            plans.append((entry.caller, scoped))

    limits, note = fit_to_fd_limit(connection_limits(settings))
    if note is not None:
        log(note)
    guard = ConnectionGuard(limits)

    try:
        sock = _bind(options.host, options.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    try:
        oauth = oauth_resource(settings, options.host, port) if settings.oauth_issuer else None
    except BaseException:
        sock.close()
        raise
    extra_hosts = list(options.allowed_hosts or [])
    if oauth is not None and settings.public_url:  # clients reach us by the public name: let its Host in
        extra_hosts.append(urlsplit(settings.public_url).netloc)
    security = security_settings(options.host, port, extra_hosts, options.allowed_origins)
    # One key ring for every server of this process (shared by replicas when configured); each server's
    # state is bound to its principal, so a confirmation cannot move between tokens or people.
    state_keys: list[str | bytes] = list(settings.state_key_list()) or [secrets.token_bytes(32)]

    def state_security(principal: Callable[[Any], str | None]) -> RequestStateSecurity:
        return RequestStateSecurity(keys=state_keys, ttl=settings.confirm_ttl_s, bind_principal=principal)

    # Resumable streams exist only in stateful mode (the SDK passes no event store to stateless
    # transports, and the 2026-07-28 requests are single exchanges without event ids).
    streams: StreamFront | None = None
    if settings.redis_url is not None and not options.stateless:
        store = RedisEventStore(
            settings.redis_url.get_secret_value(), max_events=settings.stream_max_events, ttl_s=settings.stream_ttl_s
        )
        streams = StreamFront(store)

    def serve_http(server: MCPServer[AppDeps]) -> None:
        server.streamable_http_app(
            event_store=streams.store if streams is not None else None,
            json_response=options.json_response,
            stateless_http=options.stateless,
            max_request_body_size=MAX_BODY_BYTES,
            session_idle_timeout=SESSION_IDLE_S,
            max_sessions=MAX_SESSIONS_PER_TOKEN,
            transport_security=security,
            host=options.host,
        )

    front = FrontApp(
        routes=[], table=table, security=security, process_settings=settings, on_ready=on_ready, streams=streams
    )
    if settings.webhook_secrets():
        from stripe_identity_mcp.webhooks import receiver_for

        try:
            front.webhooks = receiver_for(settings, front.shared)
        except BaseException:
            sock.close()
            raise
    try:
        for caller, scoped in plans:
            server = build_server(
                scoped,
                open_app_deps=front.opener(caller),
                request_state_security=state_security(_fixed_principal(caller)),
            )
            serve_http(server)
            front.add(TokenRoute(caller=caller, settings=scoped, server=server))
    except BaseException:
        sock.close()
        raise

    if oauth is not None:

        async def person_server(caps: Capabilities) -> CapabilityRoute:
            scoped = capability_settings(settings, caps)
            server = build_server(
                scoped,
                open_app_deps=front.opener(person_caller),
                without_tools=[name for name, info in oauth.catalogue.items() if not allowed(info, caps)],
                request_state_security=state_security(authenticated_principal),  # (client, iss, sub)
            )
            serve_http(server)
            return CapabilityRoute(server=server, tools=frozenset(t.name for t in await server.list_tools()))

        front.oauth = oauth
        front.people = CapabilityServers(build=person_server)

    config = uvicorn.Config(
        front,
        host=options.host,
        port=port,
        log_config=None,  # keep our stderr logging (and its level)
        log_level=settings.log_level.lower(),
        access_log=False,  # request lines are not needed and must never carry secrets into logs
        lifespan="on",
        http=guarded_protocol(guard),  # admission, header timeout, per-address cap (see http_guard)
        ws="none",  # no WebSocket endpoint; an upgrade would also take the connection out of the guard
        timeout_keep_alive=limits.keep_alive_s,
        # No limit_concurrency: it counts idle and silent sockets too (that was the lock-out). The
        # guard bounds connections, and h11 runs at most one request per connection.
        timeout_graceful_shutdown=5,
        server_header=False,
        proxy_headers=False,
    )
    return PreparedHttp(app=front, sock=sock, host=options.host, port=port, config=config, guard=guard)


def run_http(settings: Settings, args: Any) -> int:
    """`serve --transport http`: blocks until interrupted. Returns the process exit code."""
    import asyncio

    options = HttpOptions.from_args(args)
    try:
        prepared = prepare_http(settings, options)
    except ConfigError as exc:
        log(str(exc))
        return 2
    try:
        if prepared.app.oauth is not None:
            oauth = prepared.app.oauth
            log(
                f"OAuth: access tokens from {oauth.issuer} for {oauth.verifier.policy.audience}; "
                f"metadata {oauth.metadata_url}"
            )
        elif prepared.app.table is None:
            log(
                "WARNING: no --tokens-file: serving WITHOUT authentication (allowed only on a loopback host). "
                "Create tokens with `stripe-identity-mcp token create` for anything shared."
            )
        scopes = ", ".join(
            f"{r.caller}={'writes' if r.settings.writes_enabled else 'read-only'}" for r in prepared.app.routes
        ) or "people by OAuth scopes"
        mode = "stateless" if options.stateless else "stateful"
        log(f"MCP over streamable HTTP ({mode}) at {prepared.url} — health {prepared.url[:-4]}/healthz — {scopes}")
        if not is_loopback(options.host) and not options.allowed_hosts:
            log(
                "note: clients must send Host " + ", ".join(prepared.app.security.allowed_hosts[:1])
                + "; add the names they use with --allowed-host NAME:PORT"
            )
        server = prepared.server()
        asyncio.run(prepared.serve(server))
        return 0 if server.started else 1
    except KeyboardInterrupt:
        return 0
    finally:
        prepared.close()
