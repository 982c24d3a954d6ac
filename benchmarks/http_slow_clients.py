"""Slow-client benchmark: authenticated latency with and without 1 000 silent + slow-header sockets held.

Loopback only, three processes besides this one:
  * the sandbox (no rate limit, --latency-ms of injected latency per Stripe request, default 5 ms);
  * the server: `serve --transport http` with a fresh read-only token and the DEFAULT connection limits
    (header timeout 5 s, 1024 connections, 128 reserved, 128 per address) unless --server-arg adds flags;
  * the attacker (this script with --attack): holds --flood sockets (default 1000) from 127.0.0.2 …
    127.0.0.(1+--addresses), half silent, half slow-header (a partial request, then one more header
    line per socket every second, never the blank line). Whatever the server closes is reopened,
    at most --reconnect-rate per second, so the flood is sustained, not a one-off.

Measured twice, first without the attacker ("quiet") and then while it holds its sockets ("flood"):
  * MCP tool calls: --clients sessions × at least --calls calls (describe_access / get_customer), Bearer
    token, sequential per session;
  * fresh-connection GET /healthz, at least --probes (a new TCP connection each, so every one has to
    be admitted);
  each phase going on for at least --phase-seconds (default 12: longer than the header timeout, so
  the flood phase includes its timeouts and reconnect waves).
Printed: p50/p99/max and errors per phase, the flood/quiet p99 ratio, and what the attacker saw
(sockets held, opened, closed by the server). Bounded: at most 20× the counts, every phase has a
deadline (--phase-timeout), the attacker exits by itself after --phase-timeout + 30 s, everything is
torn down in `finally`; about 40 s in all with the defaults. Exit code 1 on any error.

    python benchmarks/http_slow_clients.py
    python benchmarks/http_slow_clients.py --flood 200 --calls 10 --phase-seconds 0   # smoke
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from http_load import percentile  # noqa: E402
from procs import free_port, read_lines, stop_all, wait_tcp  # noqa: E402

KEY = "sk_test_sandbox"
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), to see whether the server is the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --- attacker (separate process: its busy loop must not steal this process's GIL) -----------------


def attack(port: int, count: int, addresses: int, seconds: float, reconnect_rate: float) -> int:
    raise_fd_limit(count + 256)
    sel = selectors.DefaultSelector()
    slow: set[socket.socket] = set()
    opened = closed_by_server = failed = 0
    deadline = time.monotonic() + seconds
    budget = float(count)  # the first fill is immediate; reopening is paced by reconnect_rate
    last = time.monotonic()
    next_trickle = next_report = last

    def open_one(index: int) -> None:
        nonlocal opened, failed
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((f"127.0.0.{2 + index % addresses}", 0))
            sock.settimeout(2)
            sock.connect(("127.0.0.1", port))
            if index % 2:
                sock.sendall(PARTIAL)
                slow.add(sock)
            sock.setblocking(False)
        except OSError:
            failed += 1
            sock.close()
            return
        sel.register(sock, selectors.EVENT_READ, index)
        opened += 1

    def drop(sock: socket.socket) -> None:
        sel.unregister(sock)
        slow.discard(sock)
        sock.close()

    index = 0
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            budget = min(float(count), budget + (now - last) * reconnect_rate)
            last = now
            while len(sel.get_map()) < count and budget >= 1 and time.monotonic() < deadline:
                open_one(index)
                index += 1
                budget -= 1
            for key, _ in sel.select(timeout=0.05):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                # Closed (EOF/reset) or answered (408/503): either way this socket is done.
                closed_by_server += 1
                drop(sock)  # type: ignore[arg-type]
                del data
            if now >= next_trickle:
                next_trickle = now + 1.0
                for sock in list(slow):
                    try:
                        sock.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
            if now >= next_report:
                next_report = now + 0.5
                print(f"held {len(sel.get_map())} opened {opened} closed_by_server {closed_by_server} "
                      f"failed {failed}", flush=True)  # fmt: skip
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
    return 0


# --- measuring client ------------------------------------------------------------------------------


async def measure(
    url: str, token: str, clients: int, calls: int, probes: int, timeout: float, min_seconds: float = 0.0
) -> dict[str, Any]:
    """At least `calls` per session and `probes` probes, and going on for at least `min_seconds`
    (so a flood phase spans the header timeout and the reconnect waves), at most 20× the counts."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from stripe_identity_mcp.sandbox import FIXED_IDS

    calls_s: list[float] = []
    health_s: list[float] = []
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    health_url = url.removesuffix("/mcp") + "/healthz"

    async def one_client(index: int) -> None:
        try:
            await session(index)
        except Exception as exc:  # noqa: BLE001 - a session that cannot even start is an error to report
            errors.append(f"session: {type(exc).__name__}: {_leaf(exc)[:120]}")

    async def session(index: int) -> None:
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                call = -1
                while (call := call + 1) < calls * 20 and (call < calls or time.perf_counter() < until):
                    jane = {"customer_id": FIXED_IDS["jane"]}
                    name, args = ("describe_access", {}) if (index + call) % 2 else ("get_customer", jane)
                    t0 = time.perf_counter()
                    try:
                        result = await client.call_tool(name, args)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
                        continue
                    calls_s.append(time.perf_counter() - t0)
                    if result.is_error:
                        errors.append(f"{name}: tool error")

    async def health_probes() -> None:
        probe = -1
        while (probe := probe + 1) < probes * 20 and (probe < probes or time.perf_counter() < until):
            t0 = time.perf_counter()
            try:
                # A new client per probe: a new TCP connection that the server has to admit.
                async with httpx2.AsyncClient(timeout=30) as http:
                    response = await http.get(health_url)
                if response.status_code != 200:
                    errors.append(f"healthz: {response.status_code}")
                    continue
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"healthz: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            health_s.append(time.perf_counter() - t0)

    started = time.perf_counter()
    until = started + min_seconds
    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as tg:
            for index in range(clients):
                tg.start_soon(one_client, index)
            tg.start_soon(health_probes)
    if scope.cancelled_caught:
        errors.append(f"phase did not finish within {timeout:.0f} s")
    return {"calls": calls_s, "health": health_s, "errors": errors, "wall": time.perf_counter() - started}


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _leaf(exc: BaseException) -> str:
    """The innermost message of an exception group (the SDK wraps transport errors in task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<16} n=0"
    p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    return f"{label:<16} n={len(values):<4} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(values) * 1000:7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=1000, help="sockets the attacker holds (≤ 5000)")
    parser.add_argument("--addresses", type=int, default=40, help="attacker source addresses 127.0.0.2 …")
    parser.add_argument("--reconnect-rate", type=float, default=200.0, help="attacker reopenings per second")
    parser.add_argument("--clients", type=int, default=4, help="concurrent MCP sessions")
    parser.add_argument("--calls", type=int, default=50, help="tool calls per session and phase")
    parser.add_argument("--probes", type=int, default=50, help="fresh-connection /healthz probes per phase")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="sandbox latency per Stripe request")
    parser.add_argument("--phase-seconds", type=float, default=12.0, help="minimum length of each phase (s)")
    parser.add_argument("--phase-timeout", type=float, default=40.0, help="bound per measuring phase (s)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `serve` flag (repeatable)")
    parser.add_argument("--attack", nargs=2, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attack:
        return attack(int(args.attack[0]), args.flood, args.addresses, float(args.attack[1]), args.reconnect_rate)
    bounds = (1 <= args.flood <= 5000, 1 <= args.addresses <= 250, 1 <= args.clients <= 50, 1 <= args.calls <= 500)
    if not all(bounds):
        parser.error("--flood 1..5000, --addresses 1..250, --clients 1..50, --calls 1..500")

    import anyio

    from stripe_identity_mcp.http_auth import create_token

    raise_fd_limit(4096)
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="http_slow_"))
    token = create_token(work / "tokens.toml", "bench-bot", "read-only")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update({"PYTHONPATH": str(ROOT), "STRIPE_API_KEY": KEY, "STRIPE_IDENTITY_MCP_TEST_RATE": "1000"})
    procs: list[subprocess.Popen[str]] = []
    attacker_lines: queue.Queue[str] = queue.Queue()
    started = time.monotonic()
    try:
        sb_port = free_port()
        sandbox = subprocess.Popen(
            [python, "-m", "stripe_identity_mcp", "sandbox", "--port", str(sb_port), "--rate-limit", "0",
             "--live-rate-limit", "0", "--search-lag", "0", "--latency-ms", str(args.latency_ms)],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(sandbox)
        wait_tcp(sb_port, time.monotonic() + 30, sandbox)
        port = free_port()
        server = subprocess.Popen(
            [python, "-m", "stripe_identity_mcp", "serve", "--transport", "http", "--port", str(port),
             "--api-base", f"http://127.0.0.1:{sb_port}", "--tokens-file", str(work / "tokens.toml"),
             "--audit-log", str(work / "audit.jsonl"), *args.server_arg],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(server)
        wait_tcp(port, time.monotonic() + 30, server)
        url = f"http://127.0.0.1:{port}/mcp"

        anyio.run(measure, url, token, 1, 3, 1, args.phase_timeout)  # warm-up (first imports, first session)
        cpu0 = cpu_seconds(server.pid)
        quiet = anyio.run(
            measure, url, token, args.clients, args.calls, args.probes, args.phase_timeout, args.phase_seconds
        )
        quiet["cpu"] = _delta(cpu0, cpu_seconds(server.pid))

        attack_seconds = args.phase_timeout + 30
        attacker = subprocess.Popen(
            [python, __file__, "--attack", str(port), str(attack_seconds), "--flood", str(args.flood),
             "--addresses", str(args.addresses), "--reconnect-rate", str(args.reconnect_rate)],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(attacker)
        threading.Thread(target=read_lines, args=(attacker.stdout, attacker_lines), daemon=True).start()

        def attacker_status(wait: float) -> dict[str, int]:
            status: dict[str, int] = {}
            end = time.monotonic() + wait
            while True:
                try:
                    line = attacker_lines.get(timeout=max(0.0, min(0.5, end - time.monotonic())))
                    status = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}
                except queue.Empty:
                    pass
                if time.monotonic() >= end or attacker.poll() is not None:
                    return status

        # Wait (bounded) until the attacker holds its sockets, then measure while it keeps them.
        status: dict[str, int] = {}
        fill_deadline = time.monotonic() + 20
        while status.get("held", 0) < args.flood * 0.95 and time.monotonic() < fill_deadline:
            status = attacker_status(0.5) or status
        before = status
        cpu0 = cpu_seconds(server.pid)
        flood = anyio.run(
            measure, url, token, args.clients, args.calls, args.probes, args.phase_timeout, args.phase_seconds
        )
        flood["cpu"] = _delta(cpu0, cpu_seconds(server.pid))
        after = attacker_status(0.6) or before
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)  # no temp directory left behind

    print(f"http_slow_clients: {args.clients} MCP sessions × ≥{args.calls} calls + ≥{args.probes} fresh /healthz "
          f"per phase of ≥{args.phase_seconds:g} s; flood {args.flood} sockets (½ silent, ½ slow-header) "
          f"from {args.addresses} addresses, reopened ≤ {args.reconnect_rate:g}/s; "
          f"server flags: {' '.join(args.server_arg) or 'defaults'}")  # fmt: skip
    for name, result in (("quiet", quiet), ("flood", flood)):
        cpu = f"{result['cpu']:.1f} s" if result.get("cpu") is not None else "n/a"
        print(f"[{name}] wall {result['wall']:.1f} s, server CPU {cpu}, errors {len(result['errors'])}")
        print("  " + summary("MCP tool call", result["calls"]))
        print("  " + summary("fresh /healthz", result["health"]))
        for line in result["errors"][:5]:
            print(f"  error: {line}")
    print(f"attacker: held {before.get('held', 0)} when measuring began, {after.get('held', 0)} at the end; "
          f"opened {after.get('opened', 0)}, closed by the server {after.get('closed_by_server', 0)}, "
          f"connect failures {after.get('failed', 0)}")  # fmt: skip
    for label, key in (("MCP tool call", "calls"), ("fresh /healthz", "health")):
        if quiet[key] and flood[key]:
            ratio = percentile(flood[key], 99) / percentile(quiet[key], 99)
            print(f"p99 flood/quiet  {label:<15} {ratio:.2f}")
    print(f"total wall {time.monotonic() - started:.1f} s")
    errors = quiet["errors"] + flood["errors"]
    complete = all(len(r["calls"]) >= args.clients * args.calls for r in (quiet, flood))
    return 1 if errors or not complete else 0


if __name__ == "__main__":
    sys.exit(main())
