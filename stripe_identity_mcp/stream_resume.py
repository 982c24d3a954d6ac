"""The front app's part of resumable streams: scopes per session, and resumption on another replica.

The SDK keeps a session (and answers a GET with `Last-Event-ID` from the event store) only on the
replica that created it; a request naming a session this replica does not hold gets 404. `StreamFront`
sits between our front app (after authentication) and the SDK's session manager:

* Every /mcp request runs with `event_store.CURRENT_SCOPE` set: an initialize (a POST without
  `Mcp-Session-Id`) gets a new `StreamScope` bound to the caller's principal hash; when its response
  carries `Mcp-Session-Id`, the scope learns the session's hash and is remembered under that id, so
  the session's later requests run with the same scope. Remembered weakly: the session's task (whose
  context holds the scope, see event_store) keeps it alive, so a closed or expired session's entry
  goes with it and the map cannot grow beyond the live sessions.
* A GET with `Last-Event-ID`: the id names a stream in Redis; its session hash must be the request's
  `Mcp-Session-Id` and its principal hash the caller's, else 404 like the SDK's (a stranger learns
  nothing, not even that the stream exists). The caller's stream whose event was evicted (retention:
  `--stream-max-events`, `--stream-ttl-s`) or with an event after it that could not be stored (Redis
  was down) → 410 with what to do; Redis not answering → 503 with
  Retry-After. Otherwise: a session of this replica goes to the SDK (its replay, then its live
  stream); another replica's session is answered here from Redis — the events after the given id in
  the SDK's SSE wire format (id / event: message / data), then new ones as the other replica stores
  them, until the stream's JSON-RPC response, or for at most `--stream-ttl-s`, then the response ends.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator

from mcp.server.streamable_http import (
    CONTENT_TYPE_SSE,
    LAST_EVENT_ID_HEADER,
    MCP_SESSION_ID_HEADER,
    check_accept_headers,
)
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripe_identity_mcp.event_store import (
    CURRENT_SCOPE,
    RedisEventStore,
    Resolution,
    StreamScope,
    parse_event_id,
    principal_hash,
    session_hash,
)

PING_EVERY_S = 15.0  # a comment line on a silent stream, so proxies do not cut it (the SDK's streams ping alike)


async def sse_frames(events: AsyncIterator[dict[str, str] | None]) -> AsyncIterator[bytes]:
    """The SDK's SSE wire format: `id:`, `event:`, `data:` lines, a blank line; `None` is a tick.

    The values are our event ids and compact JSON (no line breaks), so each field is one line."""
    last = time.monotonic()
    async for event in events:
        if event is None:
            if time.monotonic() - last < PING_EVERY_S:
                continue
            frame = ": ping\r\n\r\n"
        else:
            frame = "".join(f"{name}: {event[name]}\r\n" for name in ("id", "event", "data")) + "\r\n"
        last = time.monotonic()
        yield frame.encode()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


class StreamFront:
    """Wraps a session manager's `handle_request` for one authenticated principal (see module doc)."""

    def __init__(self, store: RedisEventStore) -> None:
        self.store = store
        self._sessions: weakref.WeakValueDictionary[str, StreamScope] = weakref.WeakValueDictionary()

    async def handle(self, principal: str, handler: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        session_id = headers.get(MCP_SESSION_ID_HEADER)
        owner = principal_hash(principal)
        if scope["method"] == "GET" and headers.get(LAST_EVENT_ID_HEADER):
            await self._resume(owner, session_id, handler, scope, receive, send)
            return
        stream_scope: StreamScope | None
        if session_id is None and scope["method"] == "POST":
            stream_scope = StreamScope(principal=owner)
            send = self._learn_session(stream_scope, send)
        else:
            stream_scope = self._sessions.get(session_id) if session_id else None
            if stream_scope is not None and stream_scope.principal != owner:
                stream_scope = None  # another caller's session: the SDK refuses it; never store into it
        await self._run(stream_scope, handler, scope, receive, send)

    @staticmethod
    async def _run(stream_scope: StreamScope | None, handler: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        token = CURRENT_SCOPE.set(stream_scope)
        try:
            await handler(scope, receive, send)
        finally:
            CURRENT_SCOPE.reset(token)

    def _learn_session(self, stream_scope: StreamScope, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == MCP_SESSION_ID_HEADER.encode():
                        session_id = value.decode("latin-1")
                        stream_scope.session = session_hash(session_id)
                        self._sessions[session_id] = stream_scope
            await send(message)

        return sending

    async def _resume(
        self, owner: str, session_id: str | None, handler: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive)
        if not check_accept_headers(request)[1]:
            await _error(406, "Not Acceptable: Client must accept text/event-stream")(scope, receive, send)
            return
        ref = parse_event_id(request.headers[LAST_EVENT_ID_HEADER])
        outcome = Resolution.UNKNOWN
        if ref is not None:
            outcome = await self.store.resolve(ref, owner, session_hash(session_id) if session_id else None)
        if outcome is Resolution.UNKNOWN or ref is None:
            await _error(404, "Not Found: unknown or expired session or stream")(scope, receive, send)
            return
        if outcome is Resolution.EVICTED:
            message = (
                "Gone: the events after this Last-Event-ID are no longer kept (each stream keeps about its "
                f"last {self.store.max_events} events, for {self.store.ttl_s:g}s after its last one); "
                "send the request again"
            )
            await _error(410, message)(scope, receive, send)
            return
        if outcome is Resolution.LOST:
            message = (
                "Gone: an event of this stream after this Last-Event-ID could not be stored while Redis was "
                "unreachable, so the stream cannot be replayed whole; send the request again"
            )
            await _error(410, message)(scope, receive, send)
            return
        if outcome is Resolution.UNAVAILABLE:
            await _error(503, "the stream store (Redis) is not answering; retry shortly", {"Retry-After": "5"})(
                scope, receive, send
            )
            return
        assert session_id is not None  # resolve() matched the session's hash
        local = self._sessions.get(session_id)
        if local is not None:  # this replica holds the session: the SDK replays and then streams live
            await self._run(local, handler, scope, receive, send)
            return
        deadline = time.monotonic() + self.store.ttl_s
        response = StreamingResponse(  # ends when the client disconnects, too
            sse_frames(self.store.follow(ref, deadline)),
            media_type=CONTENT_TYPE_SSE,
            headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", MCP_SESSION_ID_HEADER: session_id},
        )
        await response(scope, receive, send)
