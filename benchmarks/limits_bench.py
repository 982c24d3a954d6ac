"""Rate-limit benchmark: a live-mode export next to the merchant's production traffic on the same key.

The sandbox (separate process) enforces Stripe's live limits — 100 r/s per key, 25 r/s per endpoint
— with injected latency. While `stripe-identity-mcp export` runs with its default live budget (a
quarter of the key), this process sends "production" traffic at --prod-rate r/s spread evenly over
four other endpoints (GET /v1/customers/{id}, /v1/subscriptions, /v1/accounts,
/v1/customers/{id}/payment_methods), on a fixed schedule (open loop: production does not slow down
for the export). 429s are counted by the sandbox per endpoint. Pass: production sees no 429 and
the export < 1 % of its requests, at ≥ 95 % of the endpoint ceiling (25 × 100 customers/s).

    python benchmarks/limits_bench.py                         # N=20 000, 150 ms, 60 r/s, both profiles
    python benchmarks/limits_bench.py --n 2000 --latency-ms 20   # quick

Bounded: the export subprocess has --timeout; production stops when the export ends.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import ROOT, sandbox_stats, wait_listening
from procs import free_port, stop_all

KEY = "sk_live_sandbox"
EXPORT_ENDPOINT = "GET /v1/customers"
MAX_IN_FLIGHT = 200


async def production(base: str, rate: float, stop: anyio.Event, ids: list[str]) -> dict[str, int]:
    """Requests at `rate` r/s, round-robin over four endpoints, until `stop`; status counts."""
    paths = [
        lambda i: f"/v1/customers/{ids[i % len(ids)]}",
        lambda i: "/v1/subscriptions",
        lambda i: "/v1/accounts",
        lambda i: f"/v1/customers/{ids[i % len(ids)]}/payment_methods",
    ]
    statuses: dict[str, int] = {}
    in_flight = [0]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:

        async def one(i: int) -> None:
            in_flight[0] += 1
            try:
                path = paths[i % len(paths)](i // len(paths))
                r = await http.get(path, params={"limit": 3} if path.count("/") != 3 else None)
                key = str(r.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            finally:
                in_flight[0] -= 1
            statuses[key] = statuses.get(key, 0) + 1

        async with anyio.create_task_group() as tg:
            start = time.monotonic()
            i = 0
            while not stop.is_set():
                due = start + i / rate
                now = time.monotonic()
                if due > now:
                    with anyio.move_on_after(due - now):
                        await stop.wait()
                    continue
                if in_flight[0] < MAX_IN_FLIGHT:  # open loop, but bounded: a stalled sandbox must not pile up
                    tg.start_soon(one, i)
                else:
                    statuses["skipped"] = statuses.get("skipped", 0) + 1
                i += 1
                await anyio.lowlevel.checkpoint()
    return statuses


async def run_profile(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "stripe_identity_mcp", "sandbox", "--port", str(port), "--customers", "0",
         "--live-customers", str(args.n), "--latency-ms", str(args.latency_ms), "--live-rate-limit", "100",
         "--endpoint-rate-limit", "25", "--search-lag", "0", "--created-profile", profile],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_listening(port, sandbox, timeout=max(60.0, args.n / 1000))
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as http:
            ids = [c["id"] for c in (await http.get("/v1/customers", params={"limit": 100})).json()["data"]]
        total = sandbox_stats(base)["customers"]["live"]
        httpx.post(base + "/_sandbox/reset-stats")
        stop = anyio.Event()
        result: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="limits-bench-") as tmp:
            cmd = [sys.executable, "-m", "stripe_identity_mcp", "export", "--out", str(Path(tmp) / "x.jsonl"),
                   "--quiet", "--api-key", KEY, "--api-base", base]  # fmt: skip
            env_export = {k: v for k, v in env.items() if not k.startswith("STRIPE_")}

            async def export() -> None:
                try:
                    proc = await anyio.run_process(cmd, env=env_export, check=False)
                    result["export"] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    result["export"] = {"error": proc.stderr.decode()[-300:]}
                finally:
                    stop.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(export)
                with anyio.fail_after(args.timeout):
                    result["production"] = await production(base, args.prod_rate, stop, ids)
        stats = sandbox_stats(base)
    finally:
        stop_all([sandbox])
    limited = stats.get("rate_limited_by_endpoint", {})
    by_endpoint = stats.get("by_endpoint", {})
    export_requests = by_endpoint.get(EXPORT_ENDPOINT, 0)
    prod_requests = sum(v for k, v in by_endpoint.items() if k != EXPORT_ENDPOINT)
    return {
        "profile": profile,
        "total": total,
        "export": result.get("export", {}),
        "export_requests": export_requests,
        "export_429": limited.get(EXPORT_ENDPOINT, 0),
        "prod_requests": prod_requests,
        "prod_429": sum(v for k, v in limited.items() if k != EXPORT_ENDPOINT),
        "reasons": stats.get("rate_limited", {}),
        "statuses": result.get("production", {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000, help="live customers seeded")
    p.add_argument("--latency-ms", type=float, default=150.0)
    p.add_argument("--prod-rate", type=float, default=60.0, help="production requests/s on other endpoints")
    p.add_argument("--profiles", default="uniform,bursty")
    p.add_argument("--timeout", type=float, default=150.0, help="seconds allowed per profile")
    args = p.parse_args(argv)
    rows = [anyio.run(run_profile, args, prof.strip()) for prof in args.profiles.split(",") if prof.strip()]
    ceiling = 25 * 100
    print(
        f"\nlimits benchmark: live key, sandbox 100 r/s global / 25 r/s per endpoint, latency {args.latency_ms:g} ms, "
        f"production {args.prod_rate:g} r/s on 4 other endpoints"
    )
    header = (
        f"{'profile':<8} {'customers':>9} {'seconds':>7} {'cust/s':>7} {'% ceil':>6} {'exp req':>7} {'min req':>7} "
        f"{'exp 429':>7} {'exp 429 %':>9} {'prod req':>8} {'prod 429':>8}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for r in rows:
        e = r["export"]
        if "count" not in e:
            print(f"{r['profile']:<8} export failed: {e.get('error', '?')}")
            ok = False
            continue
        per_s = e["count"] / max(e["seconds"], 1e-9)
        share = 100 * r["export_429"] / max(1, r["export_requests"])
        ok = ok and r["prod_429"] == 0 and share < 1 and e["count"] == r["total"]
        print(
            f"{r['profile']:<8} {e['count']:>9,} {e['seconds']:>7.2f} {per_s:>7,.0f} {100 * per_s / ceiling:>5.1f}% "
            f"{r['export_requests']:>7} {-(-r['total'] // 100):>7} {r['export_429']:>7} {share:>8.2f}% "
            f"{r['prod_requests']:>8} {r['prod_429']:>8}"
        )
        print(f"{'':<8} production answers by status: {r['statuses']}; 429s by reason: {r['reasons'] or 'none'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
