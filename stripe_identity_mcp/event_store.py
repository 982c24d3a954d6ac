"""The SDK's `EventStore` on Redis Streams: resumable streamable-HTTP streams shared by replicas.

Design (see README "Several replicas" → "Streams")

* What is stored. In stateful mode the SDK calls `store_event(stream_id, message)` for every message
  it sends on a request's SSE stream (`stream_id` is the JSON-RPC request id; the standalone GET
  stream has its own id) and for the priming event (`message=None`) that opens each stream. Each
  becomes one entry of a Redis stream: fields `s` (the SDK's stream id), `k` (`p` priming, `r` the
  JSON-RPC response or error that ends the stream, `o` anything else), `n` (its number, see "No
  silent gaps") and `m` (the message as JSON, exactly what the SSE `data:` line carries).
* Which session. The SDK's stream ids are request ids, so they repeat across sessions ("2" in every
  session); the store does not get the session. `StreamScope` supplies it: the front app sets
  `CURRENT_SCOPE` for every /mcp request before the SDK sees it — a new scope for an initialize
  request (a random namespace `ns` plus the hash of the authenticated principal), the session's scope
  for later requests. The SDK runs a session in a task started from its initialize request, and an
  asyncio task copies the context it was started in, so everything the session stores later sees the
  scope of its initialize request. A scope's `ns` is independent of the `Mcp-Session-Id` (which the
  front only learns from the initialize response's headers, possibly after the first event was
  stored); the front records the session's hash in the scope when it sees that header.
* Keys (prefix `sim:ev`): `sim:ev:<ns>:<h>` the stream (h = 16 hex digits of sha256 of the SDK's
  stream id), `sim:ev:<ns>` a hash with `p` = sha256 of the principal and `s` = sha256 of the session
  id. Never a bearer token, API key or session id in clear: only those hashes and the messages the
  client itself receives (tool results are the client's own data).
* Event ids: `<ns>.<h>.<redis entry id>`, so `replay_events_after` and another replica find the
  stream from the id alone.
* Bounded retention: `XADD … MAXLEN ~ max_events` (Redis trims whole nodes of up to 100 entries,
  so a stream holds at most about max_events + 100) and `EXPIRE ttl_s` on the stream and on the
  session hash, refreshed by every event: a stream is dropped ttl_s after its last event.
* Bounded waits, failing soft. Every Redis command has a `TIMEOUT_S` socket and connect timeout and
  no retries. When Redis fails, `store_event` returns "" (the SDK then sends the event without an
  `id:` line, so the client does not try to resume it) and logs one WARNING per outage (the URL
  without its password); for `RETRY_AFTER_S` it does not try again, so an outage costs at most one
  timeout per few seconds, never a failed tool call.
* No silent gaps. Each entry carries `n`, its number in its stream counting the events that could
  not be stored too, so a reader sees where one is missing: a resume from before a gap is refused
  (`Resolution.LOST`) instead of replaying a stream with a hole, and a follow ends at one.
* Replay. `replay_events_after` (the SDK's path, when the session lives on this replica) replays the
  entries after the given one if the id belongs to the caller's scope. `resolve` and `follow` serve
  the front app's own path for a session held by another replica (`stream_resume`).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, jsonrpc_message_adapter

logger = logging.getLogger(__name__)

PREFIX = "sim:ev"
TIMEOUT_S = 1.0  # per Redis command (socket and connect); no retries
RETRY_AFTER_S = 5.0  # after a failure, Redis is not tried again for this long
FOLLOW_BLOCK_MS = 1000  # one XREAD BLOCK while following a stream another replica writes
PAGE = 200  # entries per XRANGE while replaying
DEFAULT_MAX_EVENTS = 1000
DEFAULT_TTL_S = 900.0

CURRENT_SCOPE: contextvars.ContextVar[StreamScope | None] = contextvars.ContextVar("stream_scope", default=None)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def principal_hash(principal: str) -> str:
    return digest("stripe-identity-mcp principal\0" + principal)


def session_hash(session_id: str) -> str:
    return digest("stripe-identity-mcp session\0" + session_id)


def safe_url(url: str) -> str:
    """The Redis URL for a log line: the password (and user name) replaced."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(eq=False)
class StreamScope:
    """One MCP session's namespace in Redis and whose it is (see the module docstring)."""

    principal: str  # principal_hash(...) of the authenticated caller
    ns: str = field(default_factory=lambda: secrets.token_hex(12))
    session: str | None = None  # session_hash(Mcp-Session-Id) once the front has seen the header
    # Events numbered per stream (1, 2, …), lost ones included, so a reader sees a gap; a stream's
    # counter is dropped once its response is stored (only streams in progress are held).
    sequence: dict[str, int] = field(default_factory=dict)
    # Numbering and appending are one step per session: the SDK stores a stream's priming event from
    # the request's task and the rest from the session's, and the numbers must follow Redis's order.
    lock: anyio.Lock = field(default_factory=anyio.Lock)


@dataclass(frozen=True)
class EventRef:
    """A parsed event id."""

    ns: str
    key_hash: str
    entry: str

    @property
    def meta_key(self) -> str:
        return f"{PREFIX}:{self.ns}"

    @property
    def stream_key(self) -> str:
        return f"{PREFIX}:{self.ns}:{self.key_hash}"

    def event_id(self, entry: str) -> str:
        return f"{self.ns}.{self.key_hash}.{entry}"


def parse_event_id(event_id: str) -> EventRef | None:
    parts = event_id.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    ns, key_hash, entry = parts
    if not (ns.isalnum() and key_hash.isalnum() and entry.replace("-", "").isdigit()):
        return None
    return EventRef(ns, key_hash, entry)


class Resolution(Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such stream, expired, or another principal's / session's (answered alike)
    EVICTED = "evicted"  # the stream is the caller's, but the given event is no longer retained
    LOST = "lost"  # an event after the given one could not be stored (Redis was unreachable)
    UNAVAILABLE = "unavailable"  # Redis did not answer


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_decode(k): _decode(v) for k, v in raw.items()}


class RedisEventStore(EventStore):
    """Redis Streams behind the SDK's EventStore interface; `open()`/`aclose()` from the front lifespan."""

    def __init__(self, url: str, *, max_events: int = DEFAULT_MAX_EVENTS, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._url = url
        self.max_events = max_events
        self.ttl_s = ttl_s
        self._redis: Any = None  # redis.asyncio.Redis, created in open() (on the serving event loop)
        self._follow: Any = None  # a second client whose socket timeout covers one XREAD BLOCK
        self._down_until = 0.0
        self._outage = False

    async def open(self) -> None:
        # Imported here: the package serves without redis installed unless --redis-url is used.
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        def client(read_timeout: float) -> Any:
            return Redis.from_url(
                self._url,
                socket_timeout=read_timeout,
                socket_connect_timeout=TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                decode_responses=False,
            )

        self._redis = client(TIMEOUT_S)
        self._follow = client(TIMEOUT_S + FOLLOW_BLOCK_MS / 1000)

    async def aclose(self) -> None:
        for c in (self._redis, self._follow):
            if c is not None:
                with anyio.move_on_after(TIMEOUT_S):
                    await c.aclose()
        self._redis = self._follow = None

    # -- health ---------------------------------------------------------------------------------

    def _available(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        if not self._outage:
            self._outage = True
            logger.warning(
                "Redis event store at %s is unreachable (%s): streams are served without resumability "
                "until it answers (retrying every %.0fs)", safe_url(self._url), type(exc).__name__, RETRY_AFTER_S,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning("Redis event store at %s answers again: streams are resumable", safe_url(self._url))

    # -- the SDK's interface --------------------------------------------------------------------

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Append one event; "" (no resumability for it) when there is no scope or Redis fails."""
        scope = CURRENT_SCOPE.get()
        if scope is None:
            return ""
        ref = EventRef(scope.ns, digest(stream_id)[:16], "")
        if message is None:
            kind, data = "p", ""
        else:
            kind = "r" if isinstance(message, JSONRPCResponse | JSONRPCError) else "o"
            data = message.model_dump_json(by_alias=True, exclude_unset=True)
        async with scope.lock:
            return await self._append(scope, ref, stream_id, kind, data)

    async def _append(self, scope: StreamScope, ref: EventRef, stream_id: str, kind: str, data: str) -> EventId:
        key = ref.stream_key
        number = scope.sequence.get(key, 0) + 1
        if kind == "r":
            scope.sequence.pop(key, None)
        else:
            scope.sequence[key] = number
        if not self._available():
            return ""
        meta: dict[str, str] = {"p": scope.principal}
        if scope.session is not None:
            meta["s"] = scope.session
        ttl = max(1, int(self.ttl_s))
        try:
            with anyio.fail_after(2 * TIMEOUT_S):  # the socket timeouts bound it already; this bounds the rest
                async with self._redis.pipeline(transaction=True) as pipe:
                    fields = {"s": stream_id, "k": kind, "n": str(number), "m": data}
                    pipe.xadd(key, fields, maxlen=self.max_events, approximate=True)
                    pipe.expire(key, ttl)
                    pipe.hset(ref.meta_key, mapping=meta)
                    pipe.expire(ref.meta_key, ttl)
                    results = await pipe.execute()
        except Exception as exc:  # any Redis or socket failure: serve on without resumability
            self._failed(exc)
            return ""
        self._recovered()
        return ref.event_id(_decode(results[0]))

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """The SDK's replay (session on this replica): the caller's own stream only, else None."""
        scope = CURRENT_SCOPE.get()
        ref = parse_event_id(last_event_id)
        if scope is None or ref is None or ref.ns != scope.ns or not self._available():
            return None
        try:
            at = await self._entry_at(ref)
            if at is None:
                return None
            async for entry, fields in self._contiguous_after(ref, at):
                if fields["k"] != "p":
                    await send_callback(EventMessage(_message(fields["m"]), ref.event_id(entry)))
        except Exception as exc:
            self._failed(exc)
            return None
        return at["s"]

    # -- the front app's cross-replica path -----------------------------------------------------

    async def resolve(self, ref: EventRef, principal: str, session: str | None) -> Resolution:
        """May this principal (and session) resume from `ref`, and is the event still retained?"""
        if not self._available():
            return Resolution.UNAVAILABLE
        try:
            with anyio.fail_after(2 * TIMEOUT_S):
                meta = _fields(await self._redis.hgetall(ref.meta_key))
                if not meta or meta.get("p") != principal or session is None or meta.get("s") != session:
                    return Resolution.UNKNOWN
                at = await self._entry_at(ref)
                if at is None:
                    # Gone only if it is older than what the stream still holds; an id after it, or in
                    # a stream that no longer exists (expired), never was (or is no longer) resumable.
                    first = await self._redis.xrange(ref.stream_key, min="-", max="+", count=1)
                    if first and _entry_order(ref.entry) < _entry_order(_decode(first[0][0])):
                        return Resolution.EVICTED
                    return Resolution.UNKNOWN
            expected = int(at["n"]) + 1
            async for _entry, fields in self._entries_after(ref):  # the tail is bounded by the retention
                if int(fields["n"]) != expected:
                    return Resolution.LOST
                expected += 1
        except Exception as exc:
            self._failed(exc)
            return Resolution.UNAVAILABLE
        self._recovered()
        return Resolution.OK

    async def follow(self, ref: EventRef, deadline: float) -> AsyncIterator[dict[str, str] | None]:
        """SSE events after `ref`: the stored ones, then new ones until the stream's response, the
        deadline (monotonic), the stream's expiry, or a Redis failure; `None` after each silent wait."""
        last = ref.entry
        try:
            at = await self._entry_at(ref)
            if at is None or at["k"] == "r":  # gone, or the stream's response: nothing follows it
                return
            expected = int(at["n"]) + 1
            async for entry, fields in self._entries_after(ref):
                if int(fields["n"]) != expected:
                    return  # an event was lost (its replica could not store it): a resume now says so
                last, expected = entry, expected + 1
                if fields["k"] == "p":
                    continue
                yield {"id": ref.event_id(entry), "event": "message", "data": fields["m"]}
                if fields["k"] == "r":
                    return
            while time.monotonic() < deadline:
                block = int(min(FOLLOW_BLOCK_MS, max(1.0, (deadline - time.monotonic()) * 1000)))
                answer = await self._follow.xread({ref.stream_key: last}, count=PAGE, block=block)
                if not answer:
                    if not await self._redis.exists(ref.stream_key):
                        return  # expired (TTL): nothing more will come
                    yield None
                    continue
                for entry_raw, raw in answer[0][1]:
                    last, fields = _decode(entry_raw), _fields(raw)
                    if int(fields["n"]) != expected:
                        return
                    expected += 1
                    if fields["k"] == "p":
                        continue
                    yield {"id": ref.event_id(last), "event": "message", "data": fields["m"]}
                    if fields["k"] == "r":
                        return
        except Exception as exc:  # Redis failed mid-follow: end the response; the client may resume later
            self._failed(exc)

    # -- helpers --------------------------------------------------------------------------------

    async def _entries_after(self, ref: EventRef) -> AsyncIterator[tuple[str, dict[str, str]]]:
        start = "(" + ref.entry
        while True:
            with anyio.fail_after(2 * TIMEOUT_S):
                page = await self._redis.xrange(ref.stream_key, min=start, max="+", count=PAGE)
            for entry_raw, raw in page:
                entry = _decode(entry_raw)
                yield entry, _fields(raw)
                start = "(" + entry
            if len(page) < PAGE:
                return

    async def _contiguous_after(self, ref: EventRef, at: dict[str, str]) -> AsyncIterator[tuple[str, dict[str, str]]]:
        """The entries after `ref` up to the first gap in their numbers (a lost event)."""
        expected = int(at["n"]) + 1
        async for entry, fields in self._entries_after(ref):
            if int(fields["n"]) != expected:
                return
            expected += 1
            yield entry, fields

    async def _entry_at(self, ref: EventRef) -> dict[str, str] | None:
        """The fields of the entry `ref` names, None when that entry is gone."""
        with anyio.fail_after(2 * TIMEOUT_S):
            page = await self._redis.xrange(ref.stream_key, min=ref.entry, max=ref.entry, count=1)
        return _fields(page[0][1]) if page else None


def _entry_order(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _message(data: str) -> JSONRPCMessage:
    return jsonrpc_message_adapter.validate_json(data)
