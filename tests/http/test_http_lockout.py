"""No lock-out of the HTTP transport: silent, slow-header and numerous connections (real sockets on
127.0.0.x against the real server in a thread) cannot starve /healthz or authenticated MCP calls.

Attack sockets bind to 127.0.0.2 … 127.0.0.N (all loopback on Linux) so that they come from other
client addresses than the legitimate httpx / MCP clients on 127.0.0.1, as a flood would. Waiting is
always a bounded poll of a condition (the server's guard counters, or a socket read with a timeout).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.settings import ConfigError
from stripe_identity_mcp.transport_http import HttpOptions, prepare_http
from tests import loopback
from tests.conftest import make_settings
from tests.http.conftest import http_client, http_server, make_tokens

_BOTS = itertools.count()
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: never complete


def raise_fd_limit(needed: int) -> None:
    """Client and server sockets share this process: make room for both (soft limit only)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        pytest.skip(f"needs {needed} open files, the limit is {soft}")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)  # polling interval of a bounded loop; the condition is the synchronisation


def connect_from(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


@contextmanager
def flood(port: int, count: int, addresses: int, partial_every: int = 0) -> Iterator[list[socket.socket]]:
    """`count` idle sockets spread over 127.0.0.2 … 127.0.0.(addresses+1); every `partial_every`-th
    one sends headers that never complete (a slow-header client), the others send nothing."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            sock = connect_from(f"127.0.0.{2 + i % addresses}", port)
            if partial_every and i % partial_every == 0:
                sock.sendall(PARTIAL_HEADERS)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or `timeout` passes (False)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True
    return data, False


def readable(sock: socket.socket, timeout: float) -> bool:
    """The server wrote or closed within `timeout` (poll, not select: fds above 1024 are fine)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(int(timeout * 1000)))


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither closed nor written to the socket (non-blocking check)."""
    return not readable(sock, 0)


def read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One HTTP response with a Content-Length body (the connection stays open)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return head + b"\r\n\r\n" + body


def start_busy_request(address: str, port: int, token: str) -> socket.socket:
    """An authenticated POST /mcp whose body is still on its way: a request in progress for as long
    as the socket stays open (the SDK waits for the body)."""
    sock = connect_from(address, port)
    sock.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        b"Content-Length: 1000\r\n\r\n{" % (port, token.encode())
    )
    return sock


def settings_for(sb: Any, tmp_path: Path, **overrides: Any) -> tuple[Any, str]:
    tokens = tmp_path / "tokens.toml"
    name = f"bot{next(_BOTS)}"
    token = make_tokens(tokens, (name, "read-only"))[name]
    values: dict[str, Any] = {"audit_log": tmp_path / "audit.jsonl", "tokens_file": tokens}
    values.update(overrides)
    return make_settings(sb, **values), token


async def authenticated_call(url: str, token: str, sandbox: Any) -> float:
    """A whole MCP session (handshake, list, a read that reaches the sandbox); returns seconds taken."""
    before = sandbox.app.state.sandbox.requests
    started = time.monotonic()
    async with http_client(url, token) as client:
        tools = await client.list_tools()
        result = await client.call_tool("get_customer", {"customer_id": FIXED_IDS["jane"]})
    elapsed = time.monotonic() - started
    assert "get_customer" in {t.name for t in tools.tools}
    assert not result.is_error, result.content
    assert result.structured_content["id"] == FIXED_IDS["jane"]
    assert sandbox.app.state.sandbox.requests > before  # the call really went to Stripe (the sandbox)
    return elapsed


# --- capacity under a flood ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_600_silent_and_slow_header_connections_do_not_lock_out_healthz_or_mcp(sandbox, tmp_path):
    """The reported failure: ~520 idle sockets made everything 503. A long header timeout here, so
    what keeps the server usable is the admission policy, not the timeout closing the flood."""
    raise_fd_limit(4096)
    settings, token = settings_for(sandbox, tmp_path, http_header_timeout_s=120)
    with http_server(settings) as srv:
        guard = srv.prepared.guard
        with flood(srv.prepared.port, 600, addresses=10, partial_every=2) as socks:
            wait_until(lambda: len(guard.open) >= 600, what="the server to accept 600 connections")
            started = time.monotonic()
            health = loopback.get(srv.base + "/healthz", timeout=10)
            health_s = time.monotonic() - started
            mcp_s = await authenticated_call(srv.url, token, sandbox)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert health_s < 3, health_s
            assert mcp_s < 10, mcp_s
            # Under the cap nothing had to be evicted: the flood is held, not dropped, and not refused.
            assert guard.evicted == 0 and guard.refused_full == 0 and guard.refused_per_address == 0
            assert all(still_open(s) for s in socks)
        # Book-keeping does not leak: once the clients are gone, every slot is free again.
        wait_until(lambda: not guard.open and not guard.pending and not guard.per_address, what="all slots freed")


@pytest.mark.anyio
async def test_a_flood_beyond_the_cap_evicts_its_oldest_sockets_and_authenticated_calls_still_work(sandbox, tmp_path):
    raise_fd_limit(1024)
    settings, token = settings_for(
        sandbox, tmp_path, http_header_timeout_s=120, http_max_connections=64, http_reserved_connections=16
    )
    with http_server(settings) as srv:
        guard = srv.prepared.guard
        with flood(srv.prepared.port, 150, addresses=5, partial_every=3) as socks:
            wait_until(lambda: guard.evicted >= 150 - 48, what="the oldest flood sockets to be evicted")
            assert len(guard.open) <= 64 and len(guard.pending) <= 48
            health = loopback.get(srv.base + "/healthz", timeout=10)
            mcp_s = await authenticated_call(srv.url, token, sandbox)
            assert health.status_code == 200
            assert mcp_s < 10, mcp_s
            # Oldest out first: the first sockets were closed by the server, the newest are held.
            assert read_until_closed(socks[0], timeout=5) == (b"", True)
            assert still_open(socks[-1])
            open_now = [s for s in socks if still_open(s)]
            assert len(open_now) <= 48
            assert guard.refused_full == 0  # nobody legitimate was turned away
        wait_until(lambda: not guard.open and not guard.pending and not guard.per_address, what="all slots freed")


# --- timeouts ------------------------------------------------------------------------------------


def test_a_silent_connection_is_closed_after_the_header_timeout(sandbox, tmp_path):
    settings, _ = settings_for(sandbox, tmp_path, http_header_timeout_s=1.0)
    with http_server(settings) as srv:
        sock = connect_from("127.0.0.2", srv.prepared.port)
        try:
            started = time.monotonic()
            data, closed = read_until_closed(sock, timeout=10)
            elapsed = time.monotonic() - started
        finally:
            sock.close()
        assert closed and data == b""  # EOF, no response: nothing was asked
        assert 0.5 < elapsed < 5, elapsed
        assert srv.prepared.guard.timed_out >= 1


def test_a_slow_header_trickler_is_answered_408_and_closed(sandbox, tmp_path):
    settings, _ = settings_for(sandbox, tmp_path, http_header_timeout_s=1.5)
    with http_server(settings) as srv:
        sock = connect_from("127.0.0.3", srv.prepared.port)
        try:
            started = time.monotonic()
            sock.sendall(PARTIAL_HEADERS)
            answered = False
            for i in range(100):  # one more header line every 0.1 s, for at most 10 s: never complete
                if readable(sock, 0.1):
                    answered = True
                    break
                try:
                    sock.sendall(b"X-Pad-%d: a\r\n" % i)
                except (BrokenPipeError, ConnectionResetError):
                    break
            elapsed = time.monotonic() - started
            data, closed = read_until_closed(sock, timeout=5)
        finally:
            sock.close()
        assert answered, "the trickler was never cut off"
        assert data.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in data
        assert closed
        assert elapsed < 5, elapsed


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(sandbox, tmp_path):
    settings, _ = settings_for(sandbox, tmp_path, http_keep_alive_s=1, http_header_timeout_s=30)
    with http_server(settings) as srv:
        sock = connect_from("127.0.0.1", srv.prepared.port)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = read_response(sock)
            started = time.monotonic()
            rest, closed = read_until_closed(sock, timeout=10)
            elapsed = time.monotonic() - started
        finally:
            sock.close()
        assert response.startswith(b"HTTP/1.1 200 ")
        assert closed and rest == b""
        assert 0.5 < elapsed < 5, elapsed


def test_a_body_trickled_after_a_401_does_not_hold_the_connection(sandbox, tmp_path):
    """The 401 is sent without reading the body; uvicorn would then keep reading a trickled body
    forever (its keep-alive timer is cancelled by every byte)."""
    settings, _ = settings_for(sandbox, tmp_path, http_header_timeout_s=1.0, http_keep_alive_s=30)
    with http_server(settings) as srv:
        sock = connect_from("127.0.0.4", srv.prepared.port)
        try:
            sock.sendall(
                b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                b"Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{" % srv.prepared.port
            )
            response = read_response(sock)
            started = time.monotonic()
            closed = False
            for _ in range(100):  # a body byte every 0.1 s, for at most 10 s
                if readable(sock, 0.1):
                    closed = sock.recv(65536) == b""
                    break
                try:
                    sock.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            elapsed = time.monotonic() - started
        finally:
            sock.close()
        assert response.startswith(b"HTTP/1.1 401 ")
        assert closed, "the body trickle kept the connection open"
        assert elapsed < 5, elapsed


def test_a_client_that_does_not_read_its_responses_is_dropped_after_the_write_timeout(sandbox, tmp_path):
    """A slow reader keeps a request in progress (its response cannot be written), and requests in
    progress are never evicted: without a write timeout it would hold its slot forever."""
    settings, _ = settings_for(sandbox, tmp_path, http_write_timeout_s=1.0, http_header_timeout_s=60)
    with http_server(settings) as srv:
        guard = srv.prepared.guard
        # Small kernel buffers on both ends (accepted sockets inherit the listener's SO_SNDBUF), so the
        # server's output backs up into asyncio after a few hundred responses instead of megabytes.
        srv.prepared.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.5", 0))
        sock.connect(("127.0.0.1", srv.prepared.port))
        try:
            sock.settimeout(5)
            with contextlib.suppress(TimeoutError, OSError):  # the server may stop reading first: fine
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 10000)  # never read
            wait_until(lambda: guard.write_stalled >= 1, timeout=20, what="the write timeout to fire")
            wait_until(lambda: "127.0.0.5" not in guard.per_address, what="the slot to be freed")
            drained, closed = 0, False
            for _ in range(10000):  # bounded: read what was sent before the abort, then EOF or reset
                try:
                    chunk = sock.recv(1 << 16)
                except (ConnectionResetError, TimeoutError):
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                drained += len(chunk)
        finally:
            sock.close()
        assert closed
        assert drained < 150 * 10000  # most responses were never written: the connection was cut


# --- per-address cap -----------------------------------------------------------------------------


def test_connections_per_client_address_are_capped(sandbox, tmp_path):
    """At its cap an address makes room among its own idle sockets (its oldest goes); only when all
    of its connections are serving requests is a newcomer refused. Other addresses never notice."""
    settings, token = settings_for(sandbox, tmp_path, http_max_connections_per_ip=5, http_header_timeout_s=60)
    with http_server(settings) as srv:
        guard = srv.prepared.guard
        port = srv.prepared.port
        idle = [connect_from("127.0.0.7", port) for _ in range(5)]
        try:
            wait_until(lambda: guard.per_address.get("127.0.0.7") == 5, what="5 connections from 127.0.0.7")
            idle.append(connect_from("127.0.0.7", port))
            wait_until(lambda: guard.evicted == 1, what="the address's oldest connection to make room")
            assert read_until_closed(idle[0], timeout=5) == (b"", True)
            assert all(still_open(s) for s in idle[1:])
            assert guard.per_address["127.0.0.7"] == 5 and guard.refused_per_address == 0
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: "127.0.0.7" not in guard.per_address, what="127.0.0.7's slots to be freed")

        busy = [start_busy_request("127.0.0.7", port, token) for _ in range(5)]
        try:
            wait_until(
                lambda: guard.per_address.get("127.0.0.7") == 5 and "127.0.0.7" not in guard.pending_by_address,
                what="5 requests in progress from 127.0.0.7",
            )
            extra = connect_from("127.0.0.7", port)
            refused, closed = read_until_closed(extra, timeout=10)
            extra.close()
            assert refused.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in refused and closed
            assert guard.refused_per_address == 1
            assert all(still_open(s) for s in busy)  # requests in progress are never closed for room
            assert loopback.get(srv.base + "/healthz", timeout=10).status_code == 200  # other addresses: fine
            # A freed slot can be used again.
            busy.pop().close()
            wait_until(lambda: guard.per_address.get("127.0.0.7") == 4, what="the closed slot to be freed")
            again = connect_from("127.0.0.7", port)
            try:
                again.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert read_response(again).startswith(b"HTTP/1.1 200 ")
            finally:
                again.close()
        finally:
            for sock in busy:
                sock.close()


def test_the_per_address_cap_counts_ipv4_addresses_and_ipv6_slash_64_blocks():
    from stripe_identity_mcp.http_guard import address_key

    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4-mapped on a dual-stack socket
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"


# --- configuration -------------------------------------------------------------------------------


def test_limits_come_from_flags_and_environment_and_bad_combinations_are_config_errors(sandbox, tmp_path, monkeypatch):
    import argparse

    from stripe_identity_mcp.cli import add_serve_flags, settings_from_args

    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    args = parser.parse_args(
        ["--header-timeout", "2.5", "--keep-alive", "7", "--write-timeout", "11", "--max-connections", "300",
         "--max-connections-per-ip", "9", "--reserved-connections", "30"]
    )  # fmt: skip
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_sandbox")
    from_flags = settings_from_args(args, _env_file=None)
    assert (from_flags.http_header_timeout_s, from_flags.http_keep_alive_s) == (2.5, 7)
    assert from_flags.http_write_timeout_s == 11
    assert (from_flags.http_max_connections, from_flags.http_max_connections_per_ip) == (300, 9)
    assert from_flags.http_reserved_connections == 30
    monkeypatch.setenv("STRIPE_IDENTITY_MCP_HTTP_MAX_CONNECTIONS_PER_IP", "3")
    assert settings_from_args(parser.parse_args([]), _env_file=None).http_max_connections_per_ip == 3

    settings, _ = settings_for(sandbox, tmp_path, http_max_connections=100, http_reserved_connections=100)
    with pytest.raises(ConfigError, match="reserved"):
        prepare_http(settings, HttpOptions(port=0))
    # An open-file limit that cannot be raised shrinks the limits (with a note) instead of failing accept().
    from stripe_identity_mcp import http_guard

    def cannot_raise(*_: Any) -> None:
        raise ValueError("not permitted")

    monkeypatch.setattr(http_guard.resource, "getrlimit", lambda _which: (300, 300))
    monkeypatch.setattr(http_guard.resource, "setrlimit", cannot_raise)
    reduced, note = http_guard.fit_to_fd_limit(http_guard.ConnectionLimits(max_connections=1024, reserved=128))
    assert (reduced.max_connections, reduced.reserved) == (44, 11)
    assert note is not None and "ulimit -n" in note
    monkeypatch.undo()

    limited, _ = settings_for(sandbox, tmp_path, http_max_connections=100, http_reserved_connections=10)
    prepared = prepare_http(limited, HttpOptions(port=0))
    try:
        assert prepared.guard.limits.max_connections == 100 and prepared.guard.limits.max_pending == 90
        assert prepared.config.limit_concurrency is None  # uvicorn's cap counted idle sockets
    finally:
        prepared.close()


def test_requests_in_progress_are_never_evicted_and_only_a_full_house_refuses(sandbox, tmp_path):
    """Eviction only ever takes connections without a request in progress; when every slot is
    serving one, a newcomer gets 503 server_busy, and a freed slot admits again."""
    settings, token = settings_for(
        sandbox, tmp_path, http_max_connections=8, http_reserved_connections=0, http_header_timeout_s=60
    )
    with http_server(settings) as srv:
        guard = srv.prepared.guard
        port = srv.prepared.port
        busy: list[socket.socket] = []
        try:
            for _ in range(8):
                busy.append(start_busy_request("127.0.0.8", port, token))
            wait_until(lambda: len(guard.open) == 8 and not guard.pending, what="8 requests in progress")
            newcomer = connect_from("127.0.0.9", port)
            refused, closed = read_until_closed(newcomer, timeout=10)
            newcomer.close()
            assert refused.startswith(b"HTTP/1.1 503 ") and b"server_busy" in refused and closed
            assert guard.evicted == 0 and all(still_open(s) for s in busy)
            busy.pop().close()
            wait_until(lambda: len(guard.open) == 7, what="the closed slot to be freed")
            health = loopback.get(srv.base + "/healthz", timeout=10)
            assert health.status_code == 200
        finally:
            for sock in busy:
                sock.close()


def test_slow_clients_benchmark_smoke_run_has_zero_errors():
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "http_slow_clients.py"), "--flood", "120", "--clients", "2",
         "--calls", "5", "--probes", "5", "--phase-seconds", "0", "--phase-timeout", "30"],
        cwd=root, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[quiet] wall" in proc.stdout and "[flood] wall" in proc.stdout
    assert proc.stdout.count("errors 0") == 2
    assert "p99 flood/quiet  MCP tool call" in proc.stdout
