"""Connection guard for the HTTP transport: no lock-out by silent, slow or numerous sockets.

Why this exists: uvicorn's H11 protocol arms its keep-alive timer only after a first response, so a
connection that never sends a byte (or trickles its headers) is held forever, and its
`limit_concurrency` counts every open connection, so ~512 such sockets — no token needed — turned
`/healthz` and every authenticated call into 503. This module replaces that with limits that an
unauthenticated client cannot use to starve others:

* Header timeout. A connection must complete a request's headers within `header_timeout_s` of being
  accepted; on a kept-alive connection, within `header_timeout_s` of the first byte of the next
  request (silence before that is ended by the keep-alive timeout). Bytes that arrive after a
  response while no new request has started (e.g. a body trickled after a 401) count the same way.
  Silent connections are closed without a response, partial headers get `408`.
* Write timeout. A connection whose output has been backed up (asyncio paused writing: the client is
  not reading) for `write_timeout_s` is aborted, so a slow reader — who could otherwise keep a
  request "in progress" forever, and requests in progress are never evicted — frees its slot.
* Per-address cap. At most `max_per_address` open connections per client IP address (IPv6: per /64,
  the block one host or subscriber usually gets, so it cannot spread over 2^64 addresses). A newcomer
  from an address at its cap replaces that address's oldest connection without a request in
  progress (so a flood from one address only churns its own sockets, and a busy bot host's idle
  keep-alive connections make room for its new ones); if all of them are serving requests, the
  newcomer gets `503` and is closed.
* Total cap with a reserve. At most `max_connections` open connections. Connections that are not
  inside a request ("pending": still sending headers, or idle between requests) may hold at most
  `max_connections - reserved`; when a new connection would exceed that (or the total), the OLDEST
  pending connection is closed to make room. A real client completes its headers within
  milliseconds and then is no longer pending, so a flood of silent sockets evicts its own older
  sockets (and idle keep-alive connections, which clients reopen), never a request in progress:
  authenticated requests and `/healthz` keep being served. Only when every slot holds a request in
  progress is a new connection refused (`503`).

Requests in progress are not limited here beyond `max_connections` (h11 serves one request per
connection at a time, so that also bounds uvicorn's request tasks). Unauthenticated requests are
answered (401/404/421) without reading their body, so they return to "pending" at once.

Hooks used: `uvicorn.Config(http=<protocol class>)` accepts a protocol class; ours subclasses
`H11Protocol` and overrides its asyncio `Protocol` callbacks plus `handle_events` /
`on_response_complete` (the points where a request starts and ends) and reads `cycle` / `conn`.
Those two methods are uvicorn internals (checked against uvicorn 0.54): tests/http/test_http_lockout.py
fails if an upgrade changes them. WebSocket upgrades must be off
(`ws="none"`): an upgrade swaps the protocol and would bypass `connection_lost` accounting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Descriptors kept free for everything that is not a client connection (listening socket, Stripe
# and SCIM client pools, audit log, export files, the event loop's own).
FD_MARGIN = 256

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
)
_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
)


def _response(head: bytes, body: bytes) -> bytes:
    return head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


REFUSED_PER_ADDRESS = _response(
    _REFUSED,
    b'{"error":"too_many_connections","message":"too many open connections from your address; '
    b'close idle ones or reuse them"}',
)
REFUSED_FULL = _response(
    _REFUSED, b'{"error":"server_busy","message":"every connection slot is serving a request; retry shortly"}'
)
REQUEST_TIMEOUT = _response(
    _TIMEOUT, b'{"error":"request_timeout","message":"request headers were not completed in time"}'
)


def address_key(host: str) -> str:
    """What the per-address cap counts: the IPv4 address (also when IPv4-mapped), an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # not an IP (e.g. a Unix socket): one shared bucket per name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LimitsError(ValueError):
    """Limits that cannot work together; the message names the setting to fix."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 5.0
    keep_alive_s: int = 15
    max_connections: int = 1024
    max_per_address: int = 128
    reserved: int = 128
    write_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.reserved < self.max_connections:
            raise LimitsError(
                f"reserved connections ({self.reserved}) must be at least 0 and below max connections "
                f"({self.max_connections})"
            )

    @property
    def max_pending(self) -> int:
        return self.max_connections - self.reserved


def fit_to_fd_limit(limits: ConnectionLimits) -> tuple[ConnectionLimits, str | None]:
    """Raise the soft descriptor limit so `max_connections` sockets fit; shrink the limits if they cannot.

    Without this, accept() fails with EMFILE and asyncio stops accepting for a second at a time: a
    lock-out of its own. Returns the limits to use and a note for stderr when they were reduced.
    """
    needed = limits.max_connections + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits, None
    fitting = max(8, soft - FD_MARGIN)
    reserved = min(limits.reserved, fitting // 4)
    reduced = replace(limits, max_connections=fitting, reserved=reserved)
    note = (
        f"the open-file limit ({soft}) leaves room for {fitting} connections, not {limits.max_connections}: "
        f"serving at most {fitting} ({reserved} reserved). Raise `ulimit -n` to allow more."
    )
    return reduced, note


class ConnectionGuard:
    """Book-keeping shared by every connection of one server (single event loop, no locking)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[GuardedH11Protocol] = set()
        self.per_address: Counter[str] = Counter()
        # Insertion order = age in the pending state; the first entry is evicted first. Kept overall
        # and per address (so that an address at its cap makes room among its own connections).
        self.pending: OrderedDict[GuardedH11Protocol, None] = OrderedDict()
        self.pending_by_address: dict[str, OrderedDict[GuardedH11Protocol, None]] = {}
        # Counters (tests and benchmarks read them; never reset).
        self.refused_per_address = 0
        self.refused_full = 0
        self.evicted = 0
        self.timed_out = 0
        self.write_stalled = 0

    def admit(self, conn: GuardedH11Protocol) -> bytes | None:
        """Account a new connection; returns the refusal to send instead, or None when admitted."""
        if self.per_address[conn.address] >= self.limits.max_per_address:
            own = self.pending_by_address.get(conn.address)
            if not own:  # every connection of this address is serving a request
                self.refused_per_address += 1
                return REFUSED_PER_ADDRESS
            self._evict(next(iter(own)))
        while len(self.pending) >= self.limits.max_pending or len(self.open) >= self.limits.max_connections:
            if not self.pending:
                self.refused_full += 1
                return REFUSED_FULL
            self._evict(next(iter(self.pending)))
        self.open.add(conn)
        self.per_address[conn.address] += 1
        self.mark_pending(conn)
        return None

    def _evict(self, conn: GuardedH11Protocol) -> None:
        self.evicted += 1
        self.release(conn)
        conn.drop(None)

    def release(self, conn: GuardedH11Protocol) -> None:
        """Forget a connection (idempotent: eviction releases before asyncio reports the close)."""
        if conn not in self.open:
            return
        self.open.discard(conn)
        self.mark_busy(conn)
        self.per_address[conn.address] -= 1
        if self.per_address[conn.address] <= 0:
            del self.per_address[conn.address]

    def mark_pending(self, conn: GuardedH11Protocol) -> None:
        if conn in self.open:
            self.pending[conn] = None
            self.pending.move_to_end(conn)
            own = self.pending_by_address.setdefault(conn.address, OrderedDict())
            own[conn] = None
            own.move_to_end(conn)

    def mark_busy(self, conn: GuardedH11Protocol) -> None:
        self.pending.pop(conn, None)
        own = self.pending_by_address.get(conn.address)
        if own is not None:
            own.pop(conn, None)
            if not own:
                del self.pending_by_address[conn.address]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's H11 protocol plus the guard's admission, header timeout and pending/busy tracking."""

    guard: ConnectionGuard  # set on the per-server subclass made by `guarded_protocol`

    address: str = ""
    _header_timer: asyncio.TimerHandle | None = None
    _write_timer: asyncio.TimerHandle | None = None
    _partial = False  # bytes arrived while pending (a request started but its headers are incomplete)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = address_key(self.client[0]) if self.client else ""
        refusal = self.guard.admit(self)
        if refusal is not None:
            self.drop(refusal)
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_write_timer()
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self in self.guard.pending:
            self._partial = True
            if self._header_timer is None:  # first byte after an idle keep-alive period
                self._arm_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # h11 produced a Request: its headers are complete
            self._cancel_header_timer()
            self._partial = False
            self.guard.mark_busy(self)

    def on_response_complete(self) -> None:
        # Pending again BEFORE uvicorn looks for a pipelined request (which marks it busy again); a
        # connection that is closing anyway is not worth a pending slot.
        if not self.transport.is_closing():
            self.guard.mark_pending(self)
        super().on_response_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.guard.limits.write_timeout_s, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_write_timer()

    def drop(self, response: bytes | None) -> None:
        """Close now, optionally after a final response. Unsent output is discarded (abort) so a
        client that does not read cannot keep the socket open through `close()`'s flush — also
        when a close is already under way (e.g. uvicorn's keep-alive close waiting for a flush)."""
        self._cancel_header_timer()
        if response is not None and not self.transport.is_closing():
            self.transport.write(response)
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.guard.limits.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        self.guard.write_stalled += 1
        self.transport.abort()

    def _header_timeout(self) -> None:
        self._header_timer = None
        self.guard.timed_out += 1
        # 408 only where a client is waiting for an answer: partial headers of a new request (h11 still
        # IDLE for them). A body trickled after a finished response just gets the connection closed.
        self.drop(REQUEST_TIMEOUT if self._partial and self.conn.their_state is h11.IDLE else None)


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class bound to one server's guard (uvicorn instantiates the class per connection)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
