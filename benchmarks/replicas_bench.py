"""Replicas benchmark: N HTTP replicas of one live key, with and without the budget shared in Redis.

Separate processes on loopback:
  * the sandbox enforcing Stripe's live limits (100 r/s global, 25 per endpoint, search 20) with
    --latency-ms of injected latency (default 50);
  * a redis-server of its own on a free port (mode "redis" only);
  * N replicas (default 3): `stripe-identity-mcp serve --transport http` with the live sandbox key
    and `--redis-url` (mode "redis") or without it (mode "local": each paces to the key's limits
    alone, as before issue 18).

Then B bots per replica (default 8), each with its own MCP session over streamable HTTP, call
get_customer / find_customers_by_email / list_customers (or the --tools given) as fast as the
servers let them for --seconds (default 15). Reported per mode, from the sandbox's own counters over that window:
requests/s per endpoint and globally, the share of 429s, and tool errors. Bounded: every tool call
and the whole phase have timeouts. Exit code 1 when the shared mode exceeds a limit by more than
the sandbox's one-second burst, or sees ≥ 1 % 429s or any tool error.

    python benchmarks/replicas_bench.py                    # 3 replicas × 8 bots, 15 s per mode
    python benchmarks/replicas_bench.py --seconds 5 --bots 4
    python benchmarks/replicas_bench.py --tools list_customers   # every bot on GET /v1/customers
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
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

from procs import free_port, read_lines, stop_all, wait_tcp, wait_url  # noqa: E402

KEY = "sk_live_sandbox"
GLOBAL, ENDPOINT, SEARCH = 100.0, 25.0, 20.0  # Stripe's live limits, enforced by the sandbox
TOOLS = ("get_customer", "find_customers_by_email", "list_customers")
ENDPOINTS = ("GET /v1/customers", "GET /v1/customers/{id}", "GET /v1/customers/search")


def start_replica(
    python: str, work: Path, env: dict[str, str], base: str, redis_url: str | None, n: int, deadline: float
) -> tuple[subprocess.Popen[str], str, queue.Queue[str]]:
    cmd = [python, "-m", "stripe_identity_mcp", "serve", "--transport", "http", "--port", "0",
           "--api-base", base, "--tokens-file", str(work / "tokens.toml"), "--audit-log", str(work / "audit.jsonl"),
           "--replicas", str(n)]  # fmt: skip
    if redis_url:
        cmd += ["--redis-url", redis_url]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        return proc, wait_url(proc, lines, deadline, "replica"), lines
    except RuntimeError:
        proc.kill()
        raise


async def run_bots(
    urls: list[str], token: str, bots: int, seconds: float, base: str, tools: list[str]
) -> dict[str, Any]:
    import anyio
    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    calls = 0

    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(urls[0], http_client=http), mode="legacy") as probe:
            listed = await probe.call_tool("list_customers", {"limit": 50})
            if listed.is_error or not isinstance(listed.structured_content, dict):
                raise RuntimeError(f"warm-up list_customers failed: {listed.content}")
            customers = listed.structured_content.get("customers", [])
    ids = [c["id"] for c in customers] or ["cus_missing"]
    emails = [c["email"] for c in customers if c.get("email")] or ["nobody@example.com"]
    stop = anyio.Event()

    async def bot(url: str, index: int) -> None:
        nonlocal calls
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                ready.append(index)
                await started.wait()
                n = index
                while not stop.is_set():
                    n += 1
                    name = tools[n % len(tools)]
                    args: dict[str, Any] = {"limit": 10}
                    if name == "get_customer":
                        args = {"customer_id": ids[n % len(ids)]}
                    elif name == "find_customers_by_email":
                        args = {"email": emails[n % len(emails)]}
                    try:
                        with anyio.fail_after(40):
                            result = await client.call_tool(name, args)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
                        continue
                    calls += 1
                    if result.is_error:
                        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
                        errors.append(f"{name}: {text[:160]}")

    ready: list[int] = []
    started = anyio.Event()
    window = 0.0
    stats: dict[str, Any] = {}
    with anyio.move_on_after(seconds + 120) as scope:
        async with anyio.create_task_group() as tg:
            for r, url in enumerate(urls):
                for b in range(bots):
                    tg.start_soon(bot, url, r * bots + b)
            with anyio.fail_after(60):
                while len(ready) < len(urls) * bots:  # every session open before the clock starts
                    await anyio.sleep(0.05)
            httpx.post(base + "/_sandbox/reset-stats", timeout=10)
            t0 = time.monotonic()
            started.set()
            await anyio.sleep(seconds)
            stats = httpx.get(base + "/_sandbox/stats", timeout=10).json()
            window = time.monotonic() - t0
            stop.set()
    if scope.cancelled_caught:
        errors.append("the bots did not stop in time")
    return {"stats": stats, "window": window, "errors": errors, "calls": calls}


def iter_queue(lines: queue.Queue[str]) -> list[str]:
    out = []
    while True:
        try:
            out.append(lines.get_nowait())
        except queue.Empty:
            return out


def run_mode(args: argparse.Namespace, shared: bool) -> dict[str, Any]:
    import anyio

    from stripe_identity_mcp.http_auth import create_token

    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="replicas_bench_"))
    token = create_token(work / "tokens.toml", "bench-bot", "read-only")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STRIPE_IDENTITY_MCP_"))}
    env.update({"PYTHONPATH": str(ROOT), "STRIPE_API_KEY": KEY})
    procs: list[subprocess.Popen[Any]] = []
    deadline = time.monotonic() + 90
    try:
        redis_url = None
        if shared:
            redis_bin = shutil.which("redis-server")
            if redis_bin is None:
                raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
            port = free_port()
            redis = subprocess.Popen(
                [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(redis)
            wait_tcp(port, deadline, redis)
            redis_url = f"redis://127.0.0.1:{port}/0"
        sb_port = free_port()
        sandbox = subprocess.Popen(
            [python, "-m", "stripe_identity_mcp", "sandbox", "--port", str(sb_port), "--live-rate-limit", str(GLOBAL),
             "--endpoint-rate-limit", str(ENDPOINT), "--search-rate-limit", str(SEARCH), "--search-lag", "0",
             "--latency-ms", str(args.latency_ms), "--live-customers", "200"],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(sandbox)
        wait_tcp(sb_port, deadline, sandbox)
        base = f"http://127.0.0.1:{sb_port}"
        urls, logs = [], []
        for _ in range(args.replicas):
            proc, url, lines = start_replica(python, work, env, base, redis_url, args.replicas, deadline)
            procs.append(proc)
            urls.append(url)
            logs.append(lines)
        result = anyio.run(run_bots, urls, token, args.bots, args.seconds, base, args.tools)
        # A replica that lost Redis says so in its log (one WARNING per state change).
        result["fallback_lines"] = [line for lines in logs for line in iter_queue(lines) if "Redis unreachable" in line]
        result["fallbacks"] = len(result["fallback_lines"])
        return result
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


def summarise(result: dict[str, Any]) -> dict[str, float]:
    s, window = result["stats"], max(result["window"], 1e-9)
    by_status = s.get("by_status", {})
    total = sum(by_status.values())
    row = {"global": s.get("requests", total) / window}
    for ep in ENDPOINTS:
        row[ep] = s.get("by_endpoint", {}).get(ep, 0) / window
    row["429 %"] = 100.0 * by_status.get("429", 0) / total if total else 0.0
    row["tool errors"] = float(len(result["errors"]))
    row["calls/s"] = result["calls"] / window
    row["Redis fallbacks"] = float(result.get("fallbacks", 0))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--bots", type=int, default=8, help="bots (MCP sessions) per replica")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per mode")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per Stripe request")
    parser.add_argument(
        "--tools",
        type=lambda v: [t.strip() for t in v.split(",") if t.strip()],
        default=list(TOOLS),
        help=f"read tools the bots cycle through (default: {','.join(TOOLS)})",
    )
    args = parser.parse_args(argv)
    if not args.tools or any(t not in TOOLS for t in args.tools):
        parser.error(f"--tools: a comma-separated subset of {','.join(TOOLS)}")
    if not (1 <= args.replicas <= 10 and 1 <= args.bots <= 100 and 1 <= args.seconds <= 300):
        parser.error("--replicas 1..10, --bots 1..100, --seconds 1..300")

    shared_run = run_mode(args, True)
    rows = {"redis": summarise(shared_run), "local": summarise(run_mode(args, False))}
    print(f"replicas_bench: {args.replicas} replicas × {args.bots} bots ({','.join(args.tools)}), {args.seconds:g} s per mode, live key, "
          f"sandbox {GLOBAL:g} global / {ENDPOINT:g} per endpoint / {SEARCH:g} search r/s, {args.latency_ms:g} ms latency")  # fmt: skip
    names = ["global", *ENDPOINTS, "429 %", "tool errors", "calls/s", "Redis fallbacks"]
    print(f"  {'':28} {'with Redis':>12} {'without':>12}")
    for name in names:
        label = name + " r/s" if name == "global" or name in ENDPOINTS else name
        print(f"  {label:28} {rows['redis'][name]:12.2f} {rows['local'][name]:12.2f}")
    shared = rows["redis"]
    # The sandbox allows one second's burst on top of each rate over the window.
    slack = 1.0 + 1.0 / args.seconds
    ok = (
        shared["global"] <= GLOBAL * slack
        and all(shared[ep] <= (SEARCH if ep.endswith("search") else ENDPOINT) * slack for ep in ENDPOINTS)
        and shared["429 %"] < 1.0
        and shared["tool errors"] == 0
    )
    for line in shared_run.get("fallback_lines", [])[:3]:
        print(f"  replica log: {line}")
    for line in shared_run["errors"][:5]:
        print(f"  error: {line}")
    print(f"  shared budget within the limits, < 1 % 429s, no tool errors: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
