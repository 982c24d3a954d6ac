"""Export benchmark: our windowed export vs stripe-python auto_paging_iter vs a naive httpx cursor loop.

One run starts the sandbox in a separate process with N customers, injected latency and a rate limit
(`python -m stripe_identity_mcp sandbox --customers N --latency-ms L --rate-limit R`), then exports
the same data three ways, each in its own subprocess (which reports its own peak RSS via
getrusage). Every method streams full customer objects to a JSONL file, so memory is comparable.
Requests and 429s are counted by the sandbox (`/_sandbox/stats` before/after each method). The
`correct` column compares the sha256 of the sorted exported ids with the sandbox's (re-derived
from the sandbox's deterministic seed, cross-checked against its live customer count).

    python benchmarks/export_bench.py                      # N=20 000, 150 ms, 25 r/s
    python benchmarks/export_bench.py --n 200000 --methods ours   # memory run
    python benchmarks/export_bench.py --n 500 --latency-ms 5      # smoke (seconds)
    python benchmarks/export_bench.py --live --profiles uniform,bursty --methods ours,stripe-python

`--live` exports with a live key against Stripe's live limits (100 r/s global, 25 r/s per endpoint:
the endpoint is the ceiling). `--profiles bursty` seeds imports (thousands of customers in one
`created` second) and long empty stretches; each profile gets its own sandbox, methods side by side.
Ceiling = endpoint rate × 100 customers/s (a full page per request); `min req` = ⌈N/100⌉.
Bounded: each method has --timeout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import free_port, stop_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("ours", "stripe-python", "naive")
KEY = "sk_test_sandbox"


# workers (run in their own process) ---------------------------------------------------------------
def _maxrss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM (ru_maxrss survives exec, so it would report the parent's
    size at fork time when that is larger); elsewhere getrusage's ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def worker_ours(base: str, out: Path, rate: float, key: str) -> dict[str, Any]:
    import anyio

    from stripe_identity_mcp.deps import open_deps
    from stripe_identity_mcp.export.engine import run_export
    from stripe_identity_mcp.settings import Settings

    live = key.startswith("sk_live_")
    rates = {"live_rate": 100.0, "endpoint_rate": rate} if live else {"test_rate": rate, "endpoint_rate": rate}
    settings = Settings(_env_file=None, api_key=key, api_base=base, sandbox=True, **rates)  # type: ignore[arg-type]

    async def go() -> Any:
        async with open_deps(settings) as app:
            return await run_export(
                app.stripe, out, "jsonl", overwrite=True, mode=settings.mode, max_rate=settings.export_rate()
            )

    # The export's own seconds, as its answer and CLI summary report them: from its first request
    # (after the one-off HTTP stack load, `HttpApi.warm()`, and the lock) to its last. The others are
    # timed from their client object to their last record, their own lazy HTTP set-up included
    # (~0.1 s of ~30 s).
    result = anyio.run(go)
    return {"seconds": result.seconds, "count": result.count, "client_retries": result.retries}


def worker_stripe_python(base: str, out: Path, rate: float, key: str) -> dict[str, Any]:
    import stripe

    stripe.enable_telemetry = False
    client = stripe.StripeClient(key, base_addresses={"api": base}, max_network_retries=4)
    started = time.monotonic()
    count = 0
    with open(out, "w") as f:
        for customer in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
            f.write(json.dumps(customer.to_dict(), separators=(",", ":")) + "\n")
            count += 1
    return {"seconds": time.monotonic() - started, "count": count}


def worker_naive(base: str, out: Path, rate: float, key: str) -> dict[str, Any]:
    import httpx

    started = time.monotonic()
    count = 0
    cursor = None
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http, open(out, "w") as f:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["starting_after"] = cursor
            for attempt in range(6):  # the minimum any real loop needs: retry 429/5xx
                r = http.get("/v1/customers", params=params)
                if r.status_code != 429 and r.status_code < 500:
                    break
                time.sleep(0.5 * 2**attempt)
            r.raise_for_status()
            body = r.json()
            for customer in body["data"]:
                f.write(json.dumps(customer, separators=(",", ":")) + "\n")
            count += len(body["data"])
            if not body["has_more"] or not body["data"]:
                break
            cursor = body["data"][-1]["id"]
    return {"seconds": time.monotonic() - started, "count": count}


WORKERS = {"ours": worker_ours, "stripe-python": worker_stripe_python, "naive": worker_naive}


def run_worker(args: argparse.Namespace) -> int:
    result = WORKERS[args.worker](args.base, Path(args.out), args.rate_limit, args.key)
    result["peak_rss_mb"] = _maxrss_mb()  # before anything else touches memory
    print(json.dumps(result))
    return 0


# orchestration ----------------------------------------------------------------------------------
def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"sandbox did not accept connections within {timeout:.0f}s")


def sandbox_stats(base: str) -> dict[str, Any]:
    import httpx

    return httpx.get(base + "/_sandbox/stats", timeout=10).json()  # type: ignore[no-any-return]


def expected_ids(n: int, seed: int, profile: str = "uniform", live: bool = False) -> list[str]:
    from stripe_identity_mcp.sandbox.seed import seed_all
    from stripe_identity_mcp.sandbox.store import ModeStore

    test, live_store = ModeStore(False), ModeStore(True)
    seed_all(test, live_store, seed, 0 if live else n, live_customers=n if live else 5, profile=profile)
    return list(live_store.ids if live else test.ids)


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def file_ids(path: Path) -> list[str]:
    with open(path) as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000, help="customers seeded in the sandbox")
    p.add_argument("--latency-ms", type=float, default=150.0)
    p.add_argument("--rate-limit", type=float, default=25.0, help="sandbox endpoint limit and our client's (r/s)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {','.join(METHODS)}")
    p.add_argument("--profiles", default="uniform", help="comma list of uniform,bursty")
    p.add_argument("--live", action="store_true", help="live key, live limits (100 global, --rate-limit per endpoint)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per method")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--keep", action="store_true", help="keep the output files")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--key", default=KEY, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return run_worker(args)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}")
    profiles = [x.strip() for x in args.profiles.split(",") if x.strip()]
    if set(profiles) - {"uniform", "bursty"}:
        raise SystemExit("profiles: uniform, bursty")
    key = "sk_live_sandbox" if args.live else KEY
    ceiling = args.rate_limit * 100
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for profile in profiles:
        counts[profile] = bench_profile(args, profile, methods, key, rows)
    mode = "live key, 100 r/s global" if args.live else f"test key, {args.rate_limit:g} r/s global"
    print(
        f"\nexport benchmark: N={args.n:,} seeded, latency {args.latency_ms:g} ms, {mode}, "
        f"{args.rate_limit:g} r/s per endpoint → ceiling {ceiling:,.0f} customers/s"
    )
    header = (
        f"{'method':<14} {'profile':<8} {'customers':>9} {'seconds':>8} {'cust/s':>8} {'% ceiling':>9} "
        f"{'requests':>8} {'min req':>7} {'429s':>5} {'peak RSS MB':>11} {'correct':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<14} {r['profile']:<8} error: {r['error']}")
            continue
        print(
            f"{r['method']:<14} {r['profile']:<8} {r['customers']:>9,} {r['seconds']:>8.2f} {r['per_s']:>8,.0f} "
            f"{r['pct']:>8.1f}% {r['requests']:>8,} {-(-counts[r['profile']] // 100):>7,} {r['r429']:>5} "
            f"{r['rss']:>11.1f} {'yes' if r['correct'] else 'NO':>7}"
        )
    ok = all("error" not in r and r["correct"] for r in rows)
    return 0 if ok else 1


def bench_profile(args: argparse.Namespace, profile: str, methods: list[str], key: str, rows: list[dict[str, Any]]) -> int:
    """One sandbox seeded with `profile`; every method exports it in turn. Returns the live customer count."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seeded = ["--customers", "0", "--live-customers", str(args.n)] if args.live else ["--customers", str(args.n)]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "stripe_identity_mcp", "sandbox", "--port", str(port), *seeded,
         "--latency-ms", str(args.latency_ms), "--rate-limit", "25" if args.live else str(args.rate_limit),
         "--endpoint-rate-limit", str(args.rate_limit), "--seed", str(args.seed), "--search-lag", "0",
         "--created-profile", profile],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    mode = "live" if args.live else "test"
    ceiling = args.rate_limit * 100
    try:
        wait_listening(port, sandbox, timeout=max(60.0, args.n / 1000))
        want = expected_ids(args.n, args.seed, profile, args.live)
        live = sandbox_stats(base)["customers"][mode]
        if live != len(want):
            raise SystemExit(f"seed mismatch: sandbox has {live} customers, re-derived {len(want)}")
        want_digest = ids_digest(want)
        del want
        with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
            for method in methods:
                out = Path(tmp) / f"{method}.jsonl"
                before = sandbox_stats(base)
                try:
                    proc = subprocess.run(
                        [sys.executable, __file__, "--worker", method, "--base", base, "--out", str(out),
                         "--rate-limit", str(args.rate_limit), "--key", key],
                        capture_output=True, text=True, timeout=args.timeout, env=env,
                    )  # fmt: skip
                except subprocess.TimeoutExpired:
                    rows.append({"method": method, "profile": profile, "error": f"timed out after {args.timeout:.0f}s"})
                    continue
                after = sandbox_stats(base)
                if proc.returncode != 0:
                    error = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    rows.append({"method": method, "profile": profile, "error": error})
                    continue
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                ids = file_ids(out)
                status_before, status_after = before.get("by_status", {}), after.get("by_status", {})
                rows.append(
                    {
                        "method": method,
                        "profile": profile,
                        "customers": result["count"],
                        "seconds": result["seconds"],
                        "per_s": result["count"] / result["seconds"],
                        "pct": 100 * result["count"] / result["seconds"] / ceiling,
                        "requests": after["requests"] - before["requests"],
                        "r429": int(status_after.get("429", 0)) - int(status_before.get("429", 0)),
                        "rss": result["peak_rss_mb"],
                        "correct": len(ids) == len(set(ids)) and ids_digest(ids) == want_digest,
                    }
                )
                del ids
                if args.keep:
                    keep = Path.cwd() / f"export-bench-{method}-{profile}.jsonl"
                    out.replace(keep)
    finally:
        stop_all([sandbox])
    return live


if __name__ == "__main__":
    sys.exit(main())
