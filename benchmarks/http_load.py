"""HTTP load benchmark: N concurrent MCP clients over streamable HTTP against the sandbox.

Two separate processes on loopback:
  * the sandbox: `python -m stripe_identity_mcp sandbox --port P --rate-limit 0 --latency-ms L`
    (no server-side rate limit, L ms of injected latency per Stripe request, default 10 ms);
  * the server: `python -m stripe_identity_mcp serve --transport http --port 0 --tokens-file …`
    with a fresh read-only bearer token and client-side pacing at --stripe-rate requests/s
    (default 1000/s: the point is the transport, not Stripe's 25 r/s test-mode budget, which would
    turn every number into a queueing-delay measurement; pass --stripe-rate 25 to see that).

Then N clients (default 50) each open one MCP session (`mcp.Client` over
`streamable_http_client` with an httpx2 client carrying `Authorization: Bearer …`) and make M tool
calls each (default 20), cycling describe_access, find_customers_by_email, get_customer,
list_customers. Printed: calls/s, latency p50/p90/p99/max (per tool call, session setup excluded
and reported separately), errors (exceptions or isError results), the server's peak RSS (VmHWM
from /proc/<pid>/status) and its current RSS. Bounded: --timeout seconds for the whole run.
Exit code 1 when any call failed or the run did not finish.

    python benchmarks/http_load.py                       # 50 clients × 20 calls
    python benchmarks/http_load.py --clients 5 --calls 3 # smoke
    python benchmarks/http_load.py --stateless --mode auto
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
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
from procs import free_port, read_lines, stop_all, wait_tcp, wait_url  # noqa: E402

KEY = "sk_test_sandbox"
EMAILS = ("jane@acme.com", "omar@globex.com", "nobody@example.com", "lee@initech.com")


def proc_memory_mb(pid: int) -> tuple[float | None, float | None]:
    """(VmHWM, VmRSS) in MiB, or None where /proc is unavailable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None

    def field(name: str) -> float | None:
        m = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) / 1024 if m else None

    return field("VmHWM"), field("VmRSS")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def run_clients(url: str, token: str, clients: int, calls: int, mode: str, timeout: float) -> dict[str, Any]:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    latencies: list[float] = []
    setups: list[float] = []
    errors: list[str] = []
    done = 0
    headers = {"Authorization": f"Bearer {token}"}

    async def one_client(index: int, customer_ids: list[str]) -> None:
        nonlocal done
        started = time.perf_counter()
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                setups.append(time.perf_counter() - started)
                for call in range(calls):
                    kind = (index + call) % 4
                    if kind == 0:
                        name, args = "describe_access", {}
                    elif kind == 1:
                        name, args = "find_customers_by_email", {"email": EMAILS[(index + call) % len(EMAILS)]}
                    elif kind == 2:
                        name, args = "get_customer", {"customer_id": customer_ids[(index * 7 + call) % len(customer_ids)]}
                    else:
                        name, args = "list_customers", {"limit": 10}
                    t0 = time.perf_counter()
                    try:
                        result = await client.call_tool(name, args)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
                        continue
                    latencies.append(time.perf_counter() - t0)
                    if result.is_error:
                        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
                        errors.append(f"{name}: {text[:160]}")
                    done += 1

    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as probe:
            listed = await probe.call_tool("list_customers", {"limit": 20})
            if listed.is_error or not isinstance(listed.structured_content, dict):
                raise RuntimeError(f"warm-up list_customers failed: {listed.content}")
            customer_ids = [c["id"] for c in listed.structured_content.get("customers", [])] or ["cus_missing"]

    started = time.perf_counter()
    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as tg:
            for index in range(clients):
                tg.start_soon(one_client, index, customer_ids)
    wall = time.perf_counter() - started
    if scope.cancelled_caught:
        errors.append(f"run did not finish within {timeout:.0f} s ({done}/{clients * calls} calls done)")
    return {"latencies": latencies, "setups": setups, "errors": errors, "wall": wall, "done": done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20, help="tool calls per client")
    parser.add_argument("--mode", choices=["legacy", "auto"], default="legacy", help="MCP protocol negotiation")
    parser.add_argument("--stateless", action="store_true", help="serve with --stateless")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="sandbox latency per Stripe request")
    parser.add_argument("--stripe-rate", type=float, default=1000.0, help="client pacing, Stripe requests/s")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound for the whole client phase (s)")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 1000 and 1 <= args.calls <= 1000):
        parser.error("--clients and --calls must be within 1..1000")

    import anyio

    from stripe_identity_mcp.http_auth import create_token

    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="http_load_"))
    token = create_token(work / "tokens.toml", "load-bot", "read-only")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STRIPE_IDENTITY_MCP_"))}
    env.update({"PYTHONPATH": str(ROOT), "STRIPE_API_KEY": KEY, "STRIPE_IDENTITY_MCP_TEST_RATE": str(args.stripe_rate)})
    procs: list[subprocess.Popen[str]] = []
    deadline = time.monotonic() + 60
    try:
        sb_port = free_port()
        sandbox = subprocess.Popen(
            [python, "-m", "stripe_identity_mcp", "sandbox", "--port", str(sb_port), "--rate-limit", "0",
             "--live-rate-limit", "0", "--search-lag", "0", "--latency-ms", str(args.latency_ms)],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(sandbox)
        wait_tcp(sb_port, deadline, sandbox)
        base = f"http://127.0.0.1:{sb_port}"
        serve_cmd = [python, "-m", "stripe_identity_mcp", "serve", "--transport", "http", "--port", "0",
                     "--api-base", base, "--tokens-file", str(work / "tokens.toml"),
                     "--audit-log", str(work / "audit.jsonl")]  # fmt: skip
        if args.stateless:
            serve_cmd.append("--stateless")
        server = subprocess.Popen(serve_cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(server)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(server.stderr, lines), daemon=True).start()
        url = wait_url(server, lines, deadline, "server")
        hwm_idle, rss_idle = proc_memory_mb(server.pid)
        result = anyio.run(run_clients, url, token, args.clients, args.calls, args.mode, args.timeout)
        hwm, rss = proc_memory_mb(server.pid)
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)  # the token file and audit log: no temp directory left behind

    lat = result["latencies"]
    total = args.clients * args.calls
    p50, p90, p99 = (percentile(lat, q) * 1000 for q in (50, 90, 99))
    errors = result["errors"]
    state = "stateless" if args.stateless else "stateful"
    print(f"http_load: {args.clients} clients × {args.calls} calls, mode={args.mode}, {state}, "
          f"sandbox latency {args.latency_ms:g} ms, pacing {args.stripe_rate:g} r/s")  # fmt: skip
    print(f"  calls ok       {result['done']}/{total}")
    print(f"  errors         {len(errors)}")
    print(f"  wall           {result['wall']:.2f} s")
    print(f"  calls/s        {len(lat) / result['wall']:.1f}" if result["wall"] > 0 else "  calls/s        n/a")
    if lat:
        print(f"  latency ms     p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(lat) * 1000:.1f}  "
              f"mean {statistics.fmean(lat) * 1000:.1f}")  # fmt: skip
        print(f"  p99/p50        {p99 / p50:.2f}  (target < 10)")
    if result["setups"]:
        print(f"  session setup  p50 {percentile(result['setups'], 50) * 1000:.1f} ms  "
              f"max {max(result['setups']) * 1000:.1f} ms")  # fmt: skip
    fmt = lambda v: f"{v:.1f} MiB" if v is not None else "n/a"  # noqa: E731
    print(f"  server RSS     peak (VmHWM) {fmt(hwm)}  now {fmt(rss)}  (before load: peak {fmt(hwm_idle)}, {fmt(rss_idle)})")
    for line in errors[:10]:
        print(f"  error: {line}")
    return 1 if errors or result["done"] < total else 0


if __name__ == "__main__":
    sys.exit(main())
