"""What resumable streams cost a tool call: the same server with and without `--redis-url`.

One process: the sandbox (no rate limit, --latency-ms of upstream latency, default 5 ms), a
redis-server of its own on a free loopback port (no persistence), and two stateful HTTP servers on
loopback built by `prepare_http` — one with the Redis event store (every SSE event is an XADD
pipeline before it is sent), one without. Rounds alternate between them (so drift on a shared
machine hits both alike): each round is one MCP session (`mcp.Client`, legacy handshake, so the
2025-11-25 priming events are stored too) making --calls sequential `list_customers` calls.
Printed: median and p90 per call for each server, their ratio, and the events Redis holds.
Bounded: --timeout seconds for the whole run. Exit code 1 when a call failed.

    python benchmarks/stream_bench.py                 # 8 rounds × 25 calls per server
    python benchmarks/stream_bench.py --rounds 2 --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "sk_test_sandbox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded: until it answers PING
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def serve(settings: Any) -> tuple[str, Any, threading.Thread]:
    from stripe_identity_mcp.transport_http import HttpOptions, prepare_http

    ready = threading.Event()
    prepared = prepare_http(settings, HttpOptions(port=0), on_ready=ready.set)
    server = prepared.server()
    thread = threading.Thread(target=lambda: asyncio.run(prepared.serve(server)), daemon=True)
    thread.start()
    if not ready.wait(20):
        sys.exit("server did not start")
    return prepared.url, server, thread


async def one_round(url: str, calls: int) -> tuple[list[float], int]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    times, errors = [], 0
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:  # type: ignore[arg-type]
            for _ in range(calls):
                start = time.perf_counter()
                result = await client.call_tool("list_customers", {"limit": 10})
                times.append(time.perf_counter() - start)
                errors += bool(result.is_error)
    return times, errors


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--calls", type=int, default=25)
    p.add_argument("--latency-ms", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()

    import redis

    from stripe_identity_mcp.sandbox import SandboxConfig, serve_in_thread
    from stripe_identity_mcp.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    proc, redis_url = start_redis(scratch)
    try:
        config = SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0, latency_ms=args.latency_ms)
        with serve_in_thread(config) as sb:
            base: dict[str, Any] = {
                "api_key": KEY, "api_base": sb.base_url, "scim_base": sb.scim_base, "scim_token": "scim_sandbox",
                "test_rate": 1000.0, "endpoint_rate": 1000.0, "sandbox": True, "audit_log": scratch / "audit.jsonl",
                "export_dir": scratch / "exports",
            }  # fmt: skip
            servers = {
                "without Redis": serve(Settings(_env_file=None, **base)),  # type: ignore[call-arg]
                "with Redis": serve(Settings(_env_file=None, redis_url=redis_url, **base)),  # type: ignore[call-arg]
            }
            times: dict[str, list[float]] = {name: [] for name in servers}
            errors = 0

            async def run() -> None:
                nonlocal errors
                with_timeout = asyncio.timeout(args.timeout)
                async with with_timeout:
                    for _ in range(args.rounds):
                        for name, (url, _server, _thread) in servers.items():
                            got, failed = await one_round(url, args.calls)
                            times[name] += got
                            errors += failed

            asyncio.run(run())
            for _url, server, thread in servers.values():
                server.should_exit = True
                thread.join(timeout=15)
    finally:
        held = sum(
            redis.Redis.from_url(redis_url).xlen(k) for k in redis.Redis.from_url(redis_url).scan_iter(match="sim:ev:*:*")
        )
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{args.rounds} rounds × {args.calls} sequential list_customers calls per server, upstream latency "
          f"{args.latency_ms:g} ms")  # fmt: skip
    print(f"{'server':<15} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8}")
    p50 = {}
    for name, values in times.items():
        values.sort()
        p50[name] = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:<15} {len(values):>6} {p50[name] * 1000:>8.1f} {p90 * 1000:>8.1f}")
    print(f"ratio p50 with/without = {p50['with Redis'] / p50['without Redis']:.3f}; events held in Redis: {held}; "
          f"errors: {errors}")  # fmt: skip
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
