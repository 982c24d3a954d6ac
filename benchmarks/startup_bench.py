"""Start-up cost: spawn → initialize → tools/list, ours vs a trivial one-tool MCPServer, same run.

    python benchmarks/startup_bench.py [--runs 7]

Both servers are real stdio subprocesses driven by mcp.Client; runs are interleaved so machine noise
hits both alike. Prints medians and the ratio (SPEC §13 target: ours within 15 % of the trivial one).
Ours is configured with every toolset and writes on (the largest catalogue); no network is used —
tools/list does not call Stripe.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

TRIVIAL = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer
    mcp = MCPServer("trivial", log_level="WARNING")
    @mcp.tool()
    def ping() -> str:
        "Reply pong."
        return "pong"
    mcp.run()
    """
)


async def time_once(params: StdioServerParameters) -> tuple[float, int]:
    start = time.perf_counter()
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
    return time.perf_counter() - start, len(tools)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    ours_env = {
        **env,
        "STRIPE_API_KEY": "sk_test_sandbox",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_SCIM_TOKEN": "scim_sandbox",
        "STRIPE_SCIM_BASE": "http://127.0.0.1:9/scim/v2",
        "STRIPE_IDENTITY_MCP_ALLOW_WRITES": "true",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(TRIVIAL)
    trivial = StdioServerParameters(command=sys.executable, args=[f.name], env=env)
    ours = StdioServerParameters(command=sys.executable, args=["-m", "stripe_identity_mcp", "serve"], env=ours_env)
    await time_once(trivial)  # warm the file cache for both before measuring
    await time_once(ours)
    samples: dict[str, list[float]] = {"trivial": [], "ours": []}
    counts = {}
    for _ in range(args.runs):
        for name, params in (("trivial", trivial), ("ours", ours)):
            seconds, count = await time_once(params)
            samples[name].append(seconds)
            counts[name] = count
    os.unlink(f.name)
    t, o = statistics.median(samples["trivial"]), statistics.median(samples["ours"])
    print(f"{'server':10} {'tools':>5} {'median s':>9} {'min s':>7}")
    for name in ("trivial", "ours"):
        print(f"{name:10} {counts[name]:>5} {statistics.median(samples[name]):>9.3f} {min(samples[name]):>7.3f}")
    print(f"ratio ours/trivial = {o / t:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    anyio.run(main)
