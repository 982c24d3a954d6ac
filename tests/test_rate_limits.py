"""Stripe's rate limits, enforced by the sandbox and respected by the client (issue 14).

The sandbox limits each key globally, per endpoint (method + route template), for search, and by
requests in flight, answering 429 with `Stripe-Rate-Limited-Reason` and Stripe's error body. The
client paces by the same model. Counts are read at the sandbox (`/_sandbox/stats`); nothing here
measures time.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from stripe_identity_mcp.clients.http import TokenBucket
from stripe_identity_mcp.clients.pacing import Pacer, endpoint_of, parse_endpoint_rates
from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.settings import ConfigError, Settings
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client, running_sandbox

pytestmark = pytest.mark.anyio

CID = FIXED_IDS["jane"]
AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def stats(sb: Any) -> dict[str, Any]:
    return loopback.get(f"{sb.base_url}/_sandbox/stats").json()  # type: ignore[no-any-return]


async def concurrent_get_customer(client: Any, n: int) -> list[Any]:
    """`n` get_customer calls started at once on one session (bounded: 30 s); their results."""
    results: list[Any] = []

    async def one() -> None:
        results.append(await client.call_tool("get_customer", {"customer_id": CID}))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    return results


def configure(sb: Any, **values: Any) -> dict[str, Any]:
    r = loopback.post(f"{sb.base_url}/_sandbox/config", json=values)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def burst(sb: Any, path: str, n: int, **params: Any) -> list[httpx.Response]:
    with loopback.Client(base_url=sb.base_url, headers=AUTH) as c:
        return [c.get(path, params=params) for _ in range(n)]


# ---------------------------------------------------------------- sandbox enforcement
def test_sandbox_limits_each_endpoint_on_its_own_and_names_the_limiter():
    with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=3.0) as sb:
        answers = burst(sb, f"/v1/customers/{CID}", 12)
        listed = burst(sb, "/v1/customers", 1, limit=1)[0]  # another endpoint: its own bucket is full
        s = stats(sb)
    limited = [r for r in answers if r.status_code == 429]
    assert answers[0].status_code == 200 and limited, [r.status_code for r in answers]
    assert all(r.headers["stripe-rate-limited-reason"] == "endpoint-rate" for r in limited)
    error = limited[0].json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    assert error["message"].startswith("Request rate limit exceeded.")
    assert "stripe-should-retry" not in limited[0].headers and "retry-after" not in limited[0].headers
    assert listed.status_code == 200
    assert s["rate_limited"] == {"endpoint-rate": len(limited)}
    assert s["rate_limited_by_endpoint"] == {"GET /v1/customers/{id}": len(limited)}


def test_sandbox_global_limit_spans_endpoints():
    with running_sandbox(rate_limit=4.0, endpoint_rate_limit=1000.0) as sb:
        first = burst(sb, f"/v1/customers/{CID}", 4)
        other = burst(sb, "/v1/customers", 3, limit=1)
        s = stats(sb)
    assert [r.status_code for r in first] == [200] * 4
    assert any(r.status_code == 429 for r in other)
    assert {r.headers.get("stripe-rate-limited-reason") for r in other if r.status_code == 429} == {"global-rate"}
    assert set(s["rate_limited"]) == {"global-rate"}


def test_sandbox_search_limit_and_control_api_set_each_limit():
    with running_sandbox(rate_limit=1000.0) as sb:
        cfg = configure(
            sb, search_rate_limit=2.0, endpoint_rate_limit=500.0, endpoint_rate_limits={"GET /v1/customers": 3.0}
        )
        searched = burst(sb, "/v1/customers/search", 6, query="email:'jane@acme.com'")
        listed = burst(sb, "/v1/customers", 8, limit=1)
        fetched = burst(sb, f"/v1/customers/{CID}", 8)
        s = stats(sb)
        bad = loopback.post(f"{sb.base_url}/_sandbox/config", json={"endpoint_rate": 1})
    assert (cfg["search_rate_limit"], cfg["endpoint_rate_limits"]) == (2.0, {"GET /v1/customers": 3.0})
    assert any(r.status_code == 429 for r in searched) and any(r.status_code == 429 for r in listed)
    assert all(r.status_code == 200 for r in fetched)  # 500 r/s: the default for the other endpoints
    assert set(s["rate_limited_by_endpoint"]) == {"GET /v1/customers/search", "GET /v1/customers"}
    assert bad.status_code == 400


async def test_sandbox_concurrency_limit_answers_global_concurrency():
    with running_sandbox(rate_limit=1000.0, concurrency_limit=1, latency_ms=300) as sb:
        codes: list[httpx.Response] = []
        async with loopback.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:

            async def one() -> None:
                codes.append(await c.get(f"/v1/customers/{CID}"))

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(one)
        s = stats(sb)
    assert sorted(r.status_code for r in codes) == [200, 429, 429]
    assert s["rate_limited"] == {"global-concurrency": 2}


def test_unlimited_mode_has_no_endpoint_limits():
    with running_sandbox(rate_limit=None, endpoint_rate_limit=1.0) as sb:
        answers = burst(sb, f"/v1/customers/{CID}", 5)
    assert all(r.status_code == 200 for r in answers)  # a mode without a global limit is unlimited


# ---------------------------------------------------------------- the client's model
def test_endpoint_templates_replace_ids_whatever_their_text():
    assert endpoint_of("GET", "/v1/customers/cus_Abc123") == "GET /v1/customers/{id}"
    assert endpoint_of("get", "/v1/customers/%2E%2E%2Fx?expand[]=y") == "GET /v1/customers/{id}"
    assert endpoint_of("GET", "/v1/customers/search") == "GET /v1/customers/search"
    assert endpoint_of("GET", "/v1/customers/cus_1/payment_methods") == "GET /v1/customers/{id}/payment_methods"
    assert endpoint_of("POST", "/v1/payment_methods/pm_1/detach") == "POST /v1/payment_methods/{id}/detach"
    assert endpoint_of("GET", "/v1/billing_portal/configurations/bpc_1") == (
        "GET /v1/billing_portal/configurations/{id}"
    )


async def test_pacer_slows_what_the_reason_names():
    pacer = Pacer(TokenBucket(100.0), endpoint_rate=25.0, search_rate=20.0, max_concurrency=8)
    ep = "GET /v1/customers/{id}"
    await pacer.acquire(ep, max_wait=1.0)
    pacer.rate_limited(ep, "endpoint-rate", None)
    assert pacer.bucket_for(ep)._tokens < 0 <= pacer.global_bucket._tokens  # the endpoint waits, not the key
    pacer.rate_limited(ep, "global-rate", None)
    assert pacer.global_bucket._tokens < 0
    pacer.rate_limited(ep, "global-concurrency", None)
    assert pacer.concurrency is not None and pacer.concurrency.limit == 4
    other = "GET /v1/subscriptions"
    pacer.rate_limited(other, "resource-specific", None)  # that request alone backs off
    assert pacer.bucket_for(other)._tokens > 0
    assert pacer.rate_for("GET /v1/customers/search") == 20.0 and pacer.rate_for(ep) == 25.0
    assert pacer.limited == {"endpoint-rate": 1, "global-rate": 1, "global-concurrency": 1, "resource-specific": 1}


def test_endpoint_rates_setting_from_env_and_refusals(monkeypatch):
    monkeypatch.setenv("STRIPE_IDENTITY_MCP_ENDPOINT_RATES", "GET /v1/customers=50, GET /v1/customers/cus_x=40")
    s = Settings(_env_file=None, api_key="sk_live_x")  # type: ignore[call-arg]
    assert s.endpoint_rates == {"GET /v1/customers": 50.0, "GET /v1/customers/{id}": 40.0}
    assert s.export_rate() == 25.0  # live default: a quarter of the key's 100 r/s
    assert s.export_rate(80.0) == 50.0  # capped by the list endpoint's own limit
    for bad in ("GET /v1/customers", "FETCH /v1/customers=3", "GET /v1/customers=-1"):
        with pytest.raises(ValueError):
            parse_endpoint_rates(bad)
    from stripe_identity_mcp.cli import settings_from_args

    monkeypatch.setenv("STRIPE_IDENTITY_MCP_ENDPOINT_RATES", "GET /v1/customers=fast")
    with pytest.raises(ConfigError, match="endpoint rate for 'GET /v1/customers' is not a number"):
        settings_from_args(_Args())


class _Args:
    """An argparse namespace with no flags given."""

    def __getattr__(self, name: str) -> None:
        return None


# ---------------------------------------------------------------- through the MCP server
async def test_concurrent_calls_to_one_endpoint_stay_within_its_limit():
    """Test key raised to 100 r/s globally, endpoints at Stripe's 25: 60 concurrent get_customer calls.

    Paced at the key's rate (the old model) they arrive at ~100 r/s and the sandbox refuses a third.
    """
    with running_sandbox(rate_limit=100.0, endpoint_rate_limit=25.0) as sb:
        settings = make_settings(sb, test_rate=100.0, endpoint_rate=25.0, search_rate=20.0, scim_token=None)
        async with mcp_client(settings) as client:
            results = await concurrent_get_customer(client, 60)
            access = (await client.call_tool("describe_access", {})).structured_content["rate_limit"]
        s = stats(sb)
    assert all(not r.is_error for r in results), [r.content[0].text for r in results if r.is_error][:1]
    assert s["by_endpoint"]["GET /v1/customers/{id}"] == 60 and s["rate_limited"] == {}
    assert access["global"]["rate_per_s"] == 100.0 and access["endpoint_default_per_s"] == 25.0
    assert access["endpoints"]["GET /v1/customers/{id}"]["rate_per_s"] == 25.0
    assert access["rate_limited"] == 0


async def test_an_endpoint_rate_429_is_retried_and_reported_by_reason():
    with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=2.0) as sb:
        settings = make_settings(sb, scim_token=None)  # the client believes in 1000 r/s: the sandbox corrects it
        async with mcp_client(settings) as client:
            with anyio.fail_after(30):
                answers = [await client.call_tool("get_customer", {"customer_id": CID}) for _ in range(4)]
            access = (await client.call_tool("describe_access", {})).structured_content["rate_limit"]
        s = stats(sb)
    assert all(not r.is_error for r in answers), answers[0].content[0].text
    limited = s["rate_limited"].get("endpoint-rate", 0)
    assert limited >= 1 and access["rate_limited_by_reason"] == {"endpoint-rate": limited}
    assert s["by_status"]["200"] >= 4


async def test_lock_timeout_is_retried_and_slows_nothing(sandbox):
    r = loopback.post(
        f"{sandbox.base_url}/_sandbox/faults",
        json={"rules": [{"kind": "lock_timeout", "method": "GET", "path": f"/v1/customers/{CID}"}]},
    )
    assert r.status_code == 200
    async with mcp_client(make_settings(sandbox, scim_token=None)) as client:
        got = await client.call_tool("get_customer", {"customer_id": CID})
        access = (await client.call_tool("describe_access", {})).structured_content["rate_limit"]
    assert not got.is_error, got.content[0].text
    assert stats(sandbox)["by_status"]["429"] == 1
    assert (access["lock_timeouts"], access["rate_limited"], access["retries"]) == (1, 0, 1)
    assert "rate_limited_by_reason" not in access


# ---------------------------------------------------------------- lookups in one round trip
async def test_find_customers_by_email_sends_both_passes_at_once():
    """With latency, two requests in flight at once at the sandbox: the exact pass and the search."""
    with running_sandbox(latency_ms=150) as sb:
        async with mcp_client(make_settings(sb, scim_token=None)) as client:
            r = await client.call_tool("find_customers_by_email", {"email": "jane@acme.com"})
        s = stats(sb)
    assert not r.is_error, r.content[0].text
    assert s["by_endpoint"] == {"GET /v1/customers": 1, "GET /v1/customers/search": 1}
    assert s["max_in_flight"] == 2  # sequential passes: 1
    exact = {c["id"] for c in r.structured_content["customers"]}
    assert CID in exact and not exact & {v["id"] for v in r.structured_content["case_variants"]}


async def test_a_failing_search_pass_still_answers_the_exact_matches(sandbox):
    r = loopback.post(
        f"{sandbox.base_url}/_sandbox/faults",
        json={"rules": [{"kind": "500", "method": "GET", "path": "/v1/customers/search", "count": 10}]},
    )
    assert r.status_code == 200
    async with mcp_client(make_settings(sandbox, scim_token=None, max_retries=0)) as client:
        got = await client.call_tool("find_customers_by_email", {"email": "jane@acme.com"})
    assert not got.is_error, got.content[0].text
    assert CID in {c["id"] for c in got.structured_content["customers"]}
    assert any("case-variant pass skipped: search failed" in w for w in got.structured_content["warnings"])


async def test_resolve_identity_sends_every_stripe_part_at_once():
    with running_sandbox(latency_ms=150) as sb:
        async with mcp_client(make_settings(sb)) as client:
            r = await client.call_tool("resolve_identity", {"email": "jane@acme.com"})
        s = stats(sb)
    assert not r.is_error, r.content[0].text
    assert s["max_in_flight"] == 3  # exact list, case-variant search, Connect accounts (SCIM alongside)
    assert set(s["by_endpoint"]) == {"GET /v1/customers", "GET /v1/customers/search", "GET /v1/accounts"}
    assert CID in {c["id"] for c in r.structured_content["customers"]}


def test_every_limit_has_a_flag():
    import argparse

    from stripe_identity_mcp.cli import add_settings_flags, settings_from_args

    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    args = parser.parse_args([
        "--api-key", "sk_live_x", "--live-rate", "200", "--endpoint-rate", "40", "--search-rate", "30",
        "--endpoint-rates", "GET /v1/customers=80", "--max-concurrency", "8",
    ])  # fmt: skip
    s = settings_from_args(args)
    assert (s.rate, s.endpoint_rate, s.search_rate, s.max_concurrency) == (200.0, 40.0, 30.0, 8)
    assert s.endpoint_rates == {"GET /v1/customers": 80.0}
    assert s.export_rate() == 50.0  # live default: a quarter of the key's 200, within the endpoint's 80


async def test_max_concurrency_keeps_requests_in_flight_within_the_key_limit():
    with running_sandbox(rate_limit=1000.0, endpoint_rate_limit=1000.0, concurrency_limit=3, latency_ms=100) as sb:
        settings = make_settings(sb, scim_token=None, max_concurrency=3)
        async with mcp_client(settings) as client:
            results = await concurrent_get_customer(client, 12)
        s = stats(sb)
    assert all(not r.is_error for r in results)
    assert s["rate_limited"] == {} and s["max_in_flight"] == 3 and s["by_endpoint"]["GET /v1/customers/{id}"] == 12
