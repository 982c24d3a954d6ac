"""Billing toolset: payment methods and portal sessions through a real MCP client and the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

PM_FIELDS = {"id", "type", "brand", "last4", "exp"}


def writes(sb: Any, tmp_path: Any, **overrides: Any) -> Any:
    return make_settings(sb, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl", **overrides)


def default_pm(sb: Any, customer_id: str, mode: str = "test") -> Any:
    return sb.sandbox.stores[mode].customers[customer_id].get("default_pm")


async def test_list_payment_methods_is_read_only_and_shows_no_more_than_brand_last4_exp(sandbox):
    jane = FIXED_IDS["jane"]
    async with mcp_client(make_settings(sandbox, scim_token=None)) as client:  # read-only server
        r = await client.call_tool("list_customer_payment_methods", {"customer_id": jane})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["default_payment_method"] == FIXED_IDS["jane_pm"]
    [pm] = out["payment_methods"]
    assert set(pm) <= PM_FIELDS
    assert pm["id"] == FIXED_IDS["jane_pm"] and pm["last4"] == "4242" and pm["brand"] == "visa"
    assert "fingerprint" not in json.dumps(out)


async def test_attach_sets_invoice_default_unless_told_not_to(sandbox, tmp_path):
    omar = FIXED_IDS["omar"]
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        first = await client.call_tool("attach_payment_method", {"customer_id": omar, "payment_method": "pm_card_visa"})
        assert not first.is_error, first.content[0].text
        visa = first.structured_content["payment_method"]["id"]
        assert visa.startswith("pm_") and first.structured_content["is_default"] is True
        assert default_pm(sandbox, omar) == visa
        second = await client.call_tool(
            "attach_payment_method",
            {"customer_id": omar, "payment_method": "pm_card_mastercard", "make_default": False},
        )
        listed = await client.call_tool("list_customer_payment_methods", {"customer_id": omar})
    assert not second.is_error, second.content[0].text
    assert default_pm(sandbox, omar) == visa  # attaching alone does not change the default
    assert "previous default" in second.structured_content["note"]
    ids = {pm["id"] for pm in listed.structured_content["payment_methods"]}
    assert {visa, second.structured_content["payment_method"]["id"]} <= ids


@pytest.mark.parametrize(
    ("pm", "needle"),
    [
        ("4242424242424242", "card number"),
        ("4242 4242 4242 4242", "card number"),
        ("card_123", "must be a PaymentMethod id"),
        ("tok_visa", "must be a PaymentMethod id"),
    ],
)
async def test_attach_refuses_anything_but_a_pm_id(sandbox, tmp_path, pm, needle):
    omar = FIXED_IDS["omar"]
    before = dict(sandbox.sandbox.stores["test"].pms)
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("attach_payment_method", {"customer_id": omar, "payment_method": pm})
    assert r.is_error and needle in r.content[0].text
    assert "Nothing was sent to Stripe" in r.content[0].text
    assert "4242424242424242" not in r.content[0].text.replace(" ", "") or pm != "4242424242424242"
    assert sandbox.sandbox.stores["test"].pms.keys() == before.keys()
    assert "4242424242424242" not in (tmp_path / "audit.jsonl").read_text()


async def test_detach_with_confirmation_then_pm_is_gone_from_the_list(sandbox, tmp_path):
    jane, pm = FIXED_IDS["jane"], FIXED_IDS["jane_pm"]
    async with mcp_client(writes(sandbox, tmp_path)) as client:  # this client cannot elicit
        r = await client.call_tool("detach_payment_method", {"payment_method": pm, "confirm": pm})
        again = await client.call_tool("detach_payment_method", {"payment_method": pm, "confirm": pm})
        listed = await client.call_tool("list_customer_payment_methods", {"customer_id": jane})
    assert not r.is_error, r.content[0].text
    assert r.structured_content["customer"] == jane
    assert listed.structured_content["payment_methods"] == []
    assert again.is_error and "not attached" in again.content[0].text


async def test_portal_session_happy_path(sandbox, tmp_path):
    jane = FIXED_IDS["jane"]
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("create_portal_session", {"customer_id": jane, "return_url": "https://acme.example/account"})
        local = await client.call_tool("create_portal_session", {"customer_id": jane, "return_url": "http://localhost:3000/x"})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["url"].startswith("https://") and out["customer"] == jane and out["id"].startswith("bps_")
    assert out["configuration"].startswith("bpc_")
    assert not local.is_error


@pytest.mark.parametrize(
    "url", ["http://acme.example/account", "javascript:alert(1)", "ftp://x", "acme.example", "http://localhost.evil.com/"]
)
async def test_portal_return_url_must_be_https_or_localhost(sandbox, tmp_path, url):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("create_portal_session", {"customer_id": FIXED_IDS["jane"], "return_url": url})
    assert r.is_error and "https://" in r.content[0].text and "Nothing was sent to Stripe" in r.content[0].text


async def test_portal_without_configuration_says_where_to_create_one(sandbox, tmp_path):
    live = writes(sandbox, tmp_path, api_key="sk_live_sandbox", allow_live_writes=True)
    live_customer = next(c["id"] for c in sandbox.sandbox.stores["live"].customers.values() if not c.get("deleted"))
    async with mcp_client(live) as client:
        r = await client.call_tool(
            "create_portal_session", {"customer_id": live_customer, "return_url": "https://acme.example/account"}
        )
    assert r.is_error
    text = r.content[0].text
    assert "no Customer portal configuration in sandbox live mode" in text
    assert "Settings → Billing → Customer portal" in text and "(in live mode)" in text
    assert "request_id=req_" in text
    [line] = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert line["outcome"].startswith("error: 400") and line["request_id"].startswith("req_")


async def test_restricted_key_portal_and_attach_name_the_permission(sandbox, tmp_path):
    jane = FIXED_IDS["jane"]
    async with mcp_client(writes(sandbox, tmp_path, api_key="rk_test_sandbox")) as client:
        portal = await client.call_tool("create_portal_session", {"customer_id": jane, "return_url": "https://a.example"})
        attach = await client.call_tool("attach_payment_method", {"customer_id": jane, "payment_method": "pm_card_visa"})
    assert portal.is_error and "Customer portal: Write" in portal.content[0].text
    assert attach.is_error and "PaymentMethods: Write" in attach.content[0].text
