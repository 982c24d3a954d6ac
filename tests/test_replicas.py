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
import pytest

from stripe_identity_mcp.clients.redis_limiter import RedisLimiter
from stripe_identity_mcp.sandbox import FIXED_IDS
from tests import loopback
from tests.conftest import SANDBOX_KEY, SCRATCH, make_settings, mcp_client, running_sandbox
from tests.redis_server import RedisServer, require_redis_server

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
LIST = "GET /v1/customers"
CID = FIXED_IDS["jane"]
# Tests that need Redis to stay "up" give it more than the 250 ms default: a loaded CI machine must not
# turn a slow answer into a fallback there (the fallback itself is tested on a Redis really gone).
TIMEOUT = 2.0


def stats(sb: Any) -> dict[str, Any]:
    return loopback.get(sb.base_url + "/_sandbox/stats", timeout=10).json()  # type: ignore[no-any-return]


def redis_dump(url: str) -> list[tuple[bytes, bytes]]:
    """Every key of the Redis database with its DUMP (the serialized value, whatever its type)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return [(k, client.dump(k) or b"") for k in client.scan_iter(count=1000)]
    finally:
        client.close()


def assert_no_key_in(entries: list[tuple[bytes, bytes]]) -> int:
    secret, body = SANDBOX_KEY.encode(), SANDBOX_KEY.split("_", 2)[-1].encode()  # the key and its body
    for key, value in entries:
        assert secret not in key and body not in key, key
        assert secret not in value and body not in value, key
    return len(entries)


async def test_one_take_takes_from_both_buckets_or_from_neither(redis_server):
    limiter = RedisLimiter(redis_server.url, SANDBOX_KEY, "test", timeout_s=TIMEOUT)
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
        assert assert_no_key_in(redis_dump(redis_server.url)) >= 4  # global, a, b and d's slow-down
    finally:
        await limiter.aclose()


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
        env["STRIPE_IDENTITY_MCP_REDIS_TIMEOUT"] = str(TIMEOUT)  # sharing is tested here, not the fallback
    return subprocess.Popen(
        [sys.executable, "-m", "stripe_identity_mcp", "export", "--out", str(out), "--quiet"],
        env=env, cwd=str(SCRATCH), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def two_exports(redis_url: str | None) -> tuple[dict[str, Any], float, list[tuple[bytes, bytes]]]:
    """Two export processes of one key at once against a sandbox enforcing 20 global / 10 per endpoint;
    with Redis, also every Redis key and value seen while they run (bucket keys expire soon after)."""
    seen: dict[bytes, bytes] = {}
    with running_sandbox(customers=3000, rate_limit=20.0, endpoint_rate_limit=10.0) as sb:
        work = Path(tempfile.mkdtemp(dir=SCRATCH))
        started = time.monotonic()
        procs = [export_run(sb, work / f"r{i}.jsonl", redis_url) for i in range(2)]
        deadline = time.monotonic() + 120
        while redis_url and any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            seen.update(redis_dump(redis_url))
            time.sleep(0.1)  # a sampling interval, not a synchronisation
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            assert "Redis unreachable" not in err, err[-2000:]  # a fallback would not be sharing
        elapsed = time.monotonic() - started
        counts = {len((work / f"r{i}.jsonl").read_text().splitlines()) for i in range(2)}
        assert len(counts) == 1 and counts.pop() > 2500  # both complete (deleted customers are not listed)
        return stats(sb), elapsed, list(seen.items())


def test_two_processes_share_the_budget_through_redis(redis_server):
    s, elapsed, entries = two_exports(redis_server.url)
    sent = s["by_endpoint"][LIST]
    # 10 r/s for both together (plus the sandbox's own one-second burst), and not a single 429.
    assert s["rate_limited"] == {}, s
    assert sent <= 10 * elapsed + 10 + 2, (sent, elapsed)
    assert assert_no_key_in(entries) > 0


def test_two_processes_without_redis_exceed_the_limit():
    """The same setup without Redis: each process paces to the full limit, so together they get 429s."""
    s, _, _ = two_exports(None)
    assert s["rate_limited"].get("endpoint-rate", 0) > 0, s


async def test_redis_killed_mid_run_falls_back_to_the_local_share_then_recovers(tmp_path):
    require_redis_server()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=1000.0) as sb:
            settings = make_settings(
                sb,
                scim_token=None,
                test_rate=40.0,
                endpoint_rate=40.0,
                replicas=4,
                redis_url=redis.url,
                redis_timeout_s=TIMEOUT,
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
                    entries = redis_dump(redis.url)  # the buckets just used (they expire a second after)
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
                    assert (await access())["budget"].startswith("shared")
        assert assert_no_key_in(entries) >= 2  # the global bucket and get_customer's
    finally:
        redis.stop()


def two_clients(sb: Any, pacer: Any) -> tuple[Any, Any]:
    """Two Stripe clients sharing one pacer: a patient one and one that gives up after 0.5 s."""
    from stripe_identity_mcp.clients.http import LazyHttpClient, RetryPolicy
    from stripe_identity_mcp.clients.stripe import StripeClient

    def client(deadline: float) -> StripeClient:
        return StripeClient(
            LazyHttpClient(), api_key=SANDBOX_KEY, base_url=sb.base_url, api_version="2024-06-20", pacer=pacer,
            policy=RetryPolicy(max_retries=0, deadline_s=deadline),
        )  # fmt: skip

    return client(10.0), client(0.5)


async def refund_scenario(pacer: Any) -> int:
    """One slot, two tokens, a slow Stripe: A holds the slot; B takes the second token, finds no slot in
    time and fails; once A is done, C (0.5 s to spare, a token every 10 s) goes only if B's came back."""
    from stripe_identity_mcp.clients.errors import LocalRateLimitError

    with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=1000.0, latency_ms=1500) as sb:
        patient, hasty = two_clients(sb, pacer)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(patient.retrieve_customer, CID)
                while pacer.concurrency.in_flight == 0:  # bounded by fail_after: A holds the slot
                    await anyio.sleep(0.01)
                with pytest.raises(LocalRateLimitError, match="in flight"):
                    await hasty.retrieve_customer(CID)
                loopback.post(sb.base_url + "/_sandbox/config", json={"latency_ms": 0}, timeout=10)  # C fits in 0.5 s
            await hasty.retrieve_customer(CID)  # C: sent at once, with B's refunded token
        return int(stats(sb)["by_endpoint"]["GET /v1/customers/{id}"])


async def test_a_request_that_finds_no_concurrency_slot_gives_its_tokens_back():
    from stripe_identity_mcp.clients.pacing import Pacer, TokenBucket

    assert await refund_scenario(Pacer(TokenBucket(0.1, burst=2.0), max_concurrency=1)) == 2


async def test_a_request_that_finds_no_concurrency_slot_gives_its_shared_tokens_back(redis_server):
    from stripe_identity_mcp.clients.shared_pacing import SharedPacer

    pacer = SharedPacer(RedisLimiter(redis_server.url, SANDBOX_KEY, "test", timeout_s=TIMEOUT), 0.1, max_concurrency=1)
    pacer.global_bucket.burst = 2.0  # the scenario needs two tokens at once (the default burst is 1 at 0.1 r/s)
    try:
        assert await refund_scenario(pacer) == 2
    finally:
        await pacer.aclose()


async def test_unreachable_redis_says_so_once_and_never_shows_its_password(caplog):
    from tests.redis_server import free_port

    password = "pw-Redis-Secret-4711"
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"  # nothing listens there
    with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=1000.0) as sb:
        settings = make_settings(sb, scim_token=None, test_rate=30.0, endpoint_rate=30.0, replicas=3, redis_url=url)
        assert url in settings.secrets() and password in settings.secrets()  # redacted from every log
        caplog.set_level("INFO", logger="stripe_identity_mcp")
        async with mcp_client(settings) as client:
            with anyio.fail_after(30):
                answers = [await client.call_tool("get_customer", {"customer_id": CID}) for _ in range(6)]
                report = await client.call_tool("describe_access", {})
    assert all(not a.is_error for a in answers)
    budget = report.structured_content["rate_limit"]  # type: ignore[index]
    assert budget["budget"].startswith("fallback: local 1/3 share") and budget["global"]["rate_per_s"] == 10.0
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "Redis" in r.getMessage()]
    assert len(warnings) == 1 and "1/3 of every limit" in warnings[0].getMessage()
    shown = str(report.structured_content) + "".join(r.getMessage() for r in caplog.records)
    assert password not in shown and url not in shown


def test_the_package_serves_without_redis_installed():
    """redis is an optional extra: imported only when a Redis URL is configured."""
    code = (
        "import sys, anyio\n"
        "sys.modules['redis'] = None  # as if not installed: importing it raises ImportError\n"
        "from stripe_identity_mcp.deps import make_pacer\n"
        "from stripe_identity_mcp.settings import ConfigError, Settings\n"
        "s = Settings(_env_file=None, api_key='sk_test_x')\n"
        "print(type(make_pacer(s)).__name__)\n"
        "try:\n"
        "    make_pacer(Settings(_env_file=None, api_key='sk_test_x', redis_url='redis://127.0.0.1:1/0'))\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
        "from stripe_identity_mcp.cli import main\n"
        "try:\n"
        "    main(['serve', '--api-key', 'sk_test_x', '--redis-url', 'redis://127.0.0.1:1/0'])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=SCRATCH)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Pacer"
    assert "install stripe-identity-mcp[redis]" in r.stdout
    assert r.stdout.splitlines()[-1] == "exit 2" and "install stripe-identity-mcp[redis]" in r.stderr  # serve refuses


async def test_a_429_slows_every_replica_sharing_the_key(redis_server):
    """Replica A is told `endpoint-rate`: B waits on that endpoint only; `global-rate`: on every one."""
    from stripe_identity_mcp.clients.errors import LocalRateLimitError
    from stripe_identity_mcp.clients.shared_pacing import SharedPacer

    def replica() -> SharedPacer:
        return SharedPacer(
            RedisLimiter(redis_server.url, SANDBOX_KEY, "test", timeout_s=TIMEOUT), 100.0, endpoint_rate=25.0
        )

    a, b = replica(), replica()
    one, other = "GET /v1/customers/{id}", "GET /v1/customers"
    try:
        with anyio.fail_after(10):
            await a.react(one, "endpoint-rate", 1.0)
            with pytest.raises(LocalRateLimitError, match="replicas share"):
                await b.acquire(one, max_wait=0.2)
            await b.acquire(other, max_wait=0.2)  # the other endpoint is not slowed
            await a.react(other, "global-rate", 1.0)
            with pytest.raises(LocalRateLimitError):
                await b.acquire("GET /v1/subscriptions", max_wait=0.2)  # the whole key waits
            assert a.shared and b.shared and a.limited == {"endpoint-rate": 1, "global-rate": 1}
    finally:
        await a.aclose()
        await b.aclose()
