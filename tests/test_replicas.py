"""Several replicas, one key: the rate budget shared through a real redis-server (issue 18).

Counted at the sandbox, which enforces the limits and counts requests and 429s per endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from stripe_identity_mcp.clients.redis_limiter import RedisLimiter
from stripe_identity_mcp.sandbox import FIXED_IDS
from tests.conftest import SANDBOX_KEY, SCRATCH, make_settings, mcp_client, running_sandbox
from tests.redis_server import RedisServer, require_redis_server

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
LIST = "GET /v1/customers"
CID = FIXED_IDS["jane"]


def stats(sb: Any) -> dict[str, Any]:
    return httpx.get(sb.base_url + "/_sandbox/stats", timeout=10).json()  # type: ignore[no-any-return]


def redis_dump(url: str) -> list[tuple[bytes, bytes]]:
    """Every key of the Redis database with its DUMP (the serialized value, whatever its type)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return [(k, client.dump(k) or b"") for k in client.scan_iter(count=1000)]
    finally:
        client.close()


def assert_no_key_in(url: str) -> int:
    entries = redis_dump(url)
    secret, body = SANDBOX_KEY.encode(), SANDBOX_KEY.split("_", 2)[-1].encode()  # the key and its body
    for key, value in entries:
        assert secret not in key and body not in key, key
        assert secret not in value and body not in value, key
    return len(entries)


async def test_one_take_takes_from_both_buckets_or_from_neither(redis_server):
    limiter = RedisLimiter(redis_server.url, SANDBOX_KEY, "test")
    try:
        # Global: 1 r/s, burst 3. Endpoint A: 1 r/s, burst 2.
        a = [(None, 1.0, 3.0), ("GET /v1/a", 1.0, 2.0)]
        b = [(None, 1.0, 3.0), ("GET /v1/b", 1.0, 2.0)]
        assert await limiter.take(a) == 0 and await limiter.take(a) == 0
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(redis_server.url)
        global_key = limiter.bucket_keys(None)[0]
        before = await client.get(global_key)
        wait = await limiter.take(a)  # A is empty: refused, with how long to wait ...
        assert 0 < wait <= 1.0
        assert await client.get(global_key) == before  # ... and the global bucket was not touched
        assert await limiter.take(b) == 0  # so the global token is still there for another endpoint
        # Now the global bucket is empty: an untouched endpoint is refused and gets no state at all.
        c = [(None, 1.0, 3.0), ("GET /v1/c", 1.0, 2.0)]
        assert await limiter.take(c) > 0
        assert await client.exists(limiter.bucket_keys("GET /v1/c")[0]) == 0
        # A slow-down key stops every take from that bucket for its TTL.
        await limiter.slow("GET /v1/d", 0.5)
        assert await limiter.take([(None, 1000.0, 10.0), ("GET /v1/d", 1000.0, 10.0)]) > 0.2
        await client.aclose()
    finally:
        await limiter.aclose()
    assert assert_no_key_in(redis_server.url) >= 4


def export_run(sb: Any, out: Path, redis_url: str | None) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STRIPE_IDENTITY_MCP_"))},
        "PYTHONPATH": str(ROOT),
        "STRIPE_API_KEY": SANDBOX_KEY,
        "STRIPE_API_BASE": sb.base_url,
        "STRIPE_IDENTITY_MCP_TEST_RATE": "20",
        "STRIPE_IDENTITY_MCP_ENDPOINT_RATE": "10",
        "STRIPE_IDENTITY_MCP_RETRY_DEADLINE": "60",
    }
    if redis_url:
        env["STRIPE_IDENTITY_MCP_REDIS_URL"] = redis_url
    return subprocess.Popen(
        [sys.executable, "-m", "stripe_identity_mcp", "export", "--out", str(out), "--quiet"],
        env=env, cwd=str(SCRATCH), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def two_exports(redis_url: str | None) -> tuple[dict[str, Any], float]:
    """Two export processes of one key at once against a sandbox enforcing 20 global / 10 per endpoint."""
    with running_sandbox(customers=3000, rate_limit=20.0, endpoint_rate_limit=10.0) as sb:
        work = Path(tempfile.mkdtemp(dir=SCRATCH))
        started = time.monotonic()
        procs = [export_run(sb, work / f"r{i}.jsonl", redis_url) for i in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
        elapsed = time.monotonic() - started
        counts = {len((work / f"r{i}.jsonl").read_text().splitlines()) for i in range(2)}
        assert len(counts) == 1 and counts.pop() > 2500  # both complete (deleted customers are not listed)
        return stats(sb), elapsed


def test_two_processes_share_the_budget_through_redis(redis_server):
    s, elapsed = two_exports(redis_server.url)
    sent = s["by_endpoint"][LIST]
    # 10 r/s for both together (plus the sandbox's own one-second burst), and not a single 429.
    assert s["rate_limited"] == {}, s
    assert sent <= 10 * elapsed + 10 + 2, (sent, elapsed)
    assert assert_no_key_in(redis_server.url) > 0


def test_two_processes_without_redis_exceed_the_limit():
    """The same setup without Redis: each process paces to the full limit, so together they get 429s."""
    s, _ = two_exports(None)
    assert s["rate_limited"].get("endpoint-rate", 0) > 0, s


async def test_redis_killed_mid_run_falls_back_to_the_local_share_then_recovers(tmp_path):
    require_redis_server()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=1000.0) as sb:
            settings = make_settings(
                sb, scim_token=None, test_rate=40.0, endpoint_rate=40.0, replicas=4, redis_url=redis.url
            )
            async with mcp_client(settings) as client:

                async def access() -> dict[str, Any]:
                    r = await client.call_tool("describe_access", {})
                    assert not r.is_error
                    return r.structured_content["rate_limit"]  # type: ignore[index,no-any-return]

                async def calls(n: int) -> None:
                    for _ in range(n):
                        r = await client.call_tool("get_customer", {"customer_id": CID})
                        assert not r.is_error, r.content[0].text  # type: ignore[union-attr]

                with anyio.fail_after(60):
                    await calls(5)
                    assert (await access())["budget"].startswith("shared: Redis")
                    redis.stop()
                    await calls(5)  # no error, no hang: the local share paces them
                    report = await access()
                    assert report["budget"].startswith("fallback: local 1/4 share"), report
                    assert report["global"]["rate_per_s"] == 10.0 and report["redis_fallbacks"] == 1
                    assert redis.url.split("//")[1] not in str(report)  # nothing of the URL
                    redis.start()
                    while not (await access())["budget"].startswith("shared"):  # probed once per second
                        await calls(1)
                    await calls(5)
                    assert (await access())["redis_fallbacks"] == 1
        assert assert_no_key_in(redis.url) > 0
    finally:
        redis.stop()
