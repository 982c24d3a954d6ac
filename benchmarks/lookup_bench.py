"""Lookup latency in Stripe round trips: find_customers_by_email and resolve_identity.

The sandbox (in a thread) adds --latency-ms to every Stripe and SCIM request. Each tool is called
through a real MCP client (in-process server) --repeat times; the median is divided by the median
of `get_customer` (exactly one Stripe round trip through the same stack). Side by side, the two
email passes run one after the other (the old way) through the same client.

    python benchmarks/lookup_bench.py                  # 150 ms, 9 repeats (about 15 s)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EMAIL = "jane@acme.com"


async def median_s(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await fn()  # warm-up: imports, connections
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> int:
    from mcp import Client

    from stripe_identity_mcp.deps import open_deps
    from stripe_identity_mcp.sandbox import FIXED_IDS, SandboxConfig, serve_in_thread
    from stripe_identity_mcp.server import build_server
    from stripe_identity_mcp.settings import Settings
    from stripe_identity_mcp.toolsets.customers import LIST_EXPAND, case_variants, exact_email_matches

    config = SandboxConfig(latency_ms=args.latency_ms, search_lag_s=0.0)
    with serve_in_thread(config) as sb:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, api_key="sk_test_sandbox", api_base=sb.base_url, scim_base=sb.scim_base,
            scim_token="scim_sandbox", sandbox=True,
        )  # fmt: skip
        cid = FIXED_IDS["jane"]
        async with Client(build_server(settings), mode="legacy") as client:  # type: ignore[arg-type]

            async def call(name: str, arguments: dict[str, Any]) -> None:
                r = await client.call_tool(name, arguments)
                if r.is_error:
                    raise SystemExit(f"{name} failed: {r.content[0].text}")

            one = await median_s(lambda: call("get_customer", {"customer_id": cid}), args.repeat)
            find = await median_s(lambda: call("find_customers_by_email", {"email": EMAIL}), args.repeat)
            resolve = await median_s(lambda: call("resolve_identity", {"email": EMAIL}), args.repeat)
        async with open_deps(settings) as app:

            async def sequential() -> None:
                exact, _ = await exact_email_matches(app.stripe, EMAIL, LIST_EXPAND)
                await case_variants(app.stripe, EMAIL, {c.id for c in exact})

            async def single() -> None:
                await app.stripe.retrieve_customer(cid)

            raw_one = await median_s(single, args.repeat)
            seq = await median_s(sequential, args.repeat)
    print(f"\nlookup benchmark: {args.latency_ms:g} ms injected latency, median of {args.repeat}")
    print(f"{'call':<40} {'ms':>7} {'round trips':>11}")
    print("-" * 60)
    print(f"{'get_customer (1 round trip, via MCP)':<40} {one * 1000:>7.0f} {1.0:>11.2f}")
    print(f"{'find_customers_by_email':<40} {find * 1000:>7.0f} {find / one:>11.2f}")
    print(f"{'resolve_identity':<40} {resolve * 1000:>7.0f} {resolve / one:>11.2f}")
    print(f"{'client: 1 retrieve (direct)':<40} {raw_one * 1000:>7.0f} {1.0:>11.2f}")
    print(f"{'client: exact then search (old way)':<40} {seq * 1000:>7.0f} {seq / raw_one:>11.2f}")
    return 0 if find / one <= 1.3 and resolve / one <= 1.3 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latency-ms", type=float, default=150.0)
    p.add_argument("--repeat", type=int, default=9)
    args = p.parse_args(argv)
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
