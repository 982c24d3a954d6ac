"""The Stripe client: form encoding, retries, pacing and error mapping — against the sandbox over loopback."""

from __future__ import annotations

import socket

import httpx
import pytest

from stripe_identity_mcp.clients.errors import (
    ApiConnectionError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
)
from stripe_identity_mcp.clients.http import TokenBucket
from stripe_identity_mcp.clients.stripe import StripeClient, encode_form, idempotency_key_for
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client

pytestmark = pytest.mark.anyio


def faults(sb, *rules: dict) -> None:
    loopback.post(sb.base_url + "/_sandbox/faults", json={"rules": list(rules)}).raise_for_status()


def client(http: httpx.AsyncClient, sb, key: str = SANDBOX_KEY, retries: int = 3) -> StripeClient:
    return StripeClient(
        http,
        api_key=key,
        base_url=sb.base_url,
        api_version="2023-08-16",
        bucket=TokenBucket(1000),
        max_retries=retries,
        deadline_s=20,
    )


# Form encoding -------------------------------------------------------------------------------------


def test_encode_form_matches_stripe_libraries():
    params = {
        "email": "a@b.com",
        "metadata": {"crm_id": "881", "old": ""},
        "address": {"line1": "1 Main St", "city": "Springfield"},
        "expand": ["subscriptions", "invoice_settings.default_payment_method"],
        "items": [{"price": "price_1"}, {"price": "price_2", "quantity": 2}],
        "invoice_settings": {"default_payment_method": "pm_1"},
        "tax_exempt": None,
        "livemode": False,
    }
    assert encode_form(params) == [
        ("email", "a@b.com"),
        ("metadata[crm_id]", "881"),
        ("metadata[old]", ""),
        ("address[line1]", "1 Main St"),
        ("address[city]", "Springfield"),
        ("expand[]", "subscriptions"),
        ("expand[]", "invoice_settings.default_payment_method"),
        ("items[0][price]", "price_1"),
        ("items[1][price]", "price_2"),
        ("items[1][quantity]", "2"),
        ("invoice_settings[default_payment_method]", "pm_1"),
        ("livemode", "false"),
    ]


def test_empty_mapping_never_clears_metadata_by_accident():
    assert encode_form({"metadata": {}}) == []
    assert encode_form({"metadata": ""}) == [("metadata", "")]


def test_derived_idempotency_key_is_stable_and_request_specific():
    a = idempotency_key_for("POST", "/v1/customers", {"email": "a@b.com"})
    assert a == idempotency_key_for("POST", "/v1/customers", {"email": "a@b.com"})
    assert a != idempotency_key_for("POST", "/v1/customers", {"email": "b@b.com"})


async def test_nested_params_round_trip_through_the_sandbox(empty_sandbox):
    async with loopback.AsyncClient() as http:
        stripe = client(http, empty_sandbox)
        created = await stripe.create_customer(
            {
                "email": "form@example.com",
                "name": "Ünïcode & Co = +1",
                "metadata": {"crm_id": "881", "note": "a&b=c"},
                "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
            }
        )
        assert created.metadata == {"crm_id": "881", "note": "a&b=c"}
        assert created.address is not None and created.address.city == "Springfield"
        updated = await stripe.update_customer(created.id, {"metadata": {"note": ""}, "description": "vip"})
        assert updated.metadata == {"crm_id": "881"}  # metadata[k]='' deletes one key
        assert updated.description == "vip"
        cleared = await stripe.update_customer(created.id, {"description": ""})
        assert cleared.description is None  # empty string unsets
        fetched = await stripe.retrieve_customer(created.id)
        assert fetched.name == "Ünïcode & Co = +1"


# Retries ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "429", "409", "reset"])
async def test_transient_faults_are_retried_and_the_tool_succeeds(empty_sandbox, kind):
    faults(empty_sandbox, {"kind": kind, "method": "GET", "path": "/v1/customers", "count": 2})
    async with mcp_client(make_settings(empty_sandbox)) as mcp:
        r = await mcp.call_tool("list_customers", {"limit": 5})
    assert not r.is_error, r.content[0].text
    stats = loopback.get(empty_sandbox.base_url + "/_sandbox/stats").json()
    assert stats["faults_injected"] == 2


async def test_retries_exhausted_is_a_clear_tool_error(empty_sandbox):
    faults(empty_sandbox, {"kind": "500", "method": "GET", "path": "/v1/customers", "count": 50})
    async with mcp_client(make_settings(empty_sandbox, max_retries=2)) as mcp:
        r = await mcp.call_tool("list_customers", {})
    assert r.is_error
    text = r.content[0].text
    assert "gave up after 3 attempts" in text and "status=500" in text and "retries=2" in text


async def test_rate_limited_beyond_budget_says_so(empty_sandbox):
    faults(empty_sandbox, {"kind": "429", "path": "/v1/customers", "count": 50})
    async with mcp_client(make_settings(empty_sandbox, max_retries=1)) as mcp:
        r = await mcp.call_tool("get_customer", {"customer_id": "cus_abc"})
    assert r.is_error
    assert "rate limited" in r.content[0].text and "status=429" in r.content[0].text


async def test_post_retry_reuses_one_idempotency_key_so_nothing_doubles(empty_sandbox):
    faults(empty_sandbox, {"kind": "drop_after_commit", "method": "POST", "path": "/v1/customers", "count": 1})
    async with loopback.AsyncClient() as http:
        stripe = client(http, empty_sandbox)
        created = await stripe.call("POST", "/v1/customers", {"email": "once@example.com"})
        listed = await stripe.list_customers(email="once@example.com", limit=10)
    assert [c.id for c in listed.data] == [created["id"]]


async def test_should_retry_false_is_honoured(empty_sandbox):
    async with loopback.AsyncClient() as http:
        stripe = client(http, empty_sandbox)
        with pytest.raises(NotFoundError):
            await stripe.retrieve_customer("cus_missing")
        assert stripe.stats.retries == 0
        with pytest.raises(BadRequestError) as info:
            await stripe.list_customers(limit=0)
        assert info.value.param == "limit" and info.value.request_id.startswith("req_")


# Errors ----------------------------------------------------------------------------------------------


async def test_rejected_key_is_a_401_without_the_key(empty_sandbox):
    bad = "sk_test_not_a_real_key_0000"
    async with loopback.AsyncClient() as http:
        with pytest.raises(AuthenticationError) as info:
            await client(http, empty_sandbox, key=bad).list_customers()
    assert bad not in info.value.message
    async with mcp_client(make_settings(empty_sandbox, api_key=bad)) as mcp:
        r = await mcp.call_tool("list_customers", {})
    assert r.is_error and "status=401" in r.content[0].text and "rejected" in r.content[0].text
    assert bad not in r.content[0].text


async def test_unreachable_api_is_a_connection_error_that_says_what_was_tried(empty_sandbox):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        settings = make_settings(empty_sandbox, api_base=f"http://127.0.0.1:{port}", max_retries=1)
        async with mcp_client(settings) as mcp:
            r = await mcp.call_tool("list_customers", {})
    assert r.is_error
    text = r.content[0].text
    assert f"could not reach Stripe at http://127.0.0.1:{port}" in text and "gave up after 2 attempts" in text


async def test_connection_error_type_is_typed(empty_sandbox):
    async with loopback.AsyncClient() as http:
        stripe = client(http, empty_sandbox, retries=0)
        stripe.base_url = "http://127.0.0.1:9"
        with pytest.raises(ApiConnectionError):
            await stripe.list_customers()


def test_rate_limit_headers_tighten_the_bucket():
    bucket = TokenBucket(rate=100)
    bucket.observe(httpx.Headers({"Stripe-Ratelimit-Limit": "25", "Stripe-Ratelimit-Remaining": "1"}))
    snap = bucket.snapshot()
    assert snap["rate_per_s"] == 25 and snap["server_remaining"] == 1 and snap["tokens_now"] == 0



async def test_last_request_id_is_per_task_when_calls_interleave(empty_sandbox):
    import anyio

    async with loopback.AsyncClient() as http:
        stripe = client(http, empty_sandbox)
        a_done, b_done = anyio.Event(), anyio.Event()
        seen: dict[str, tuple[str | None, str | None]] = {}

        async def task_a() -> None:
            await stripe.call("POST", "/v1/customers", {"email": "a@example.com"})
            first = stripe.last_request_id
            a_done.set()
            await b_done.wait()  # B's call lands in between
            seen["a"] = (first, stripe.last_request_id)

        async def task_b() -> None:
            await a_done.wait()
            await stripe.call("POST", "/v1/customers", {"email": "b@example.com"})
            seen["b"] = (stripe.last_request_id, None)
            b_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(task_a)
            tg.start_soon(task_b)
    assert seen["a"][0] and seen["a"][0] == seen["a"][1]
    assert seen["b"][0] and seen["b"][0] != seen["a"][0]


def test_redaction_hides_credentials_but_not_prose():
    from stripe_identity_mcp.clients.errors import redact

    assert redact("Invalid API Key provided: sk_test_abc123") == "Invalid API Key provided: sk_test_…[redacted]"
    assert redact("Authorization: Bearer scim_0123456789abcdef") == "Authorization: Bearer [redacted]"
    assert redact("the SCIM bearer token was rejected") == "the SCIM bearer token was rejected"
    assert redact("token is hunter2-secret", ["hunter2-secret"]) == "token is [redacted]"
