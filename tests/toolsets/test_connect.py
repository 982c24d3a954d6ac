"""Connect toolset through a real MCP client against the sandbox: paging, filters, compact rows, errors."""

from __future__ import annotations

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

COMPACT_KEYS = {
    "concept", "id", "type", "email", "business_name", "country", "created", "charges_enabled",
    "payouts_enabled", "currently_due", "past_due", "disabled_reason",
}  # fmt: skip


def store_accounts(sb) -> list[dict]:
    return sb.app.state.sandbox.stores["test"].accounts


async def test_paging_walks_every_account_once_newest_first(sandbox, protocol_mode):
    seen: list[str] = []
    async with mcp_client(make_settings(sandbox), mode=protocol_mode) as client:
        cursor = None
        for _ in range(50):
            args = {"limit": 7} | ({"starting_after": cursor} if cursor else {})
            r = await client.call_tool("list_connected_accounts", args)
            assert not r.is_error, r.content[0].text
            page = r.structured_content
            assert len(page["accounts"]) <= 7
            seen += [a["id"] for a in page["accounts"]]
            for row in page["accounts"]:
                assert row["concept"] == "connect_account" and row["id"].startswith("acct_")
                assert set(row) <= COMPACT_KEYS
            if not page["has_more"]:
                assert "next_cursor" not in page
                break
            cursor = page["next_cursor"]
        # and back again one page with ending_before
        r = await client.call_tool("list_connected_accounts", {"limit": 3, "ending_before": seen[5]})
        assert [a["id"] for a in r.structured_content["accounts"]] == seen[2:5]
    expected = [a["id"] for a in sorted(store_accounts(sandbox), key=lambda a: (a["created"], a["_seq"]), reverse=True)]
    assert seen == expected and len(set(seen)) == len(seen)


async def test_created_filter_bounds_every_row(sandbox):
    accounts = store_accounts(sandbox)
    middle = sorted(a["created"] for a in accounts)[len(accounts) // 2]
    async with mcp_client(make_settings(sandbox)) as client:
        r = await client.call_tool("list_connected_accounts", {"limit": 100, "created_gte": middle})
        rows = r.structured_content["accounts"]
        r2 = await client.call_tool("list_connected_accounts", {"limit": 100, "created_lte": str(middle)})
    assert rows and len(rows) == sum(1 for a in accounts if a["created"] >= middle)
    assert len(r2.structured_content["accounts"]) == sum(1 for a in accounts if a["created"] <= middle)


async def test_get_connected_account_is_compact_with_requirements(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        jane = (await client.call_tool("get_connected_account", {"account_id": FIXED_IDS["acct_jane"]})).structured_content
        priya = (await client.call_tool("get_connected_account", {"account_id": FIXED_IDS["acct_priya"]}))
    assert jane["concept"] == "connect_account"
    assert jane["email"] == "jane@acme.com" and jane["business_name"] == "Acme Inc"
    assert jane["charges_enabled"] is True and jane["payouts_enabled"] is True
    assert set(jane) <= COMPACT_KEYS  # no raw settings / external_accounts dump
    p = priya.structured_content
    assert p["type"] == "standard" and p["country"] == "GB"
    assert p["past_due"] and p["disabled_reason"] == "requirements.past_due"
    assert len(priya.content[0].text) < 800


async def test_bad_input_is_refused_before_stripe(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        before = sandbox.app.state.sandbox.requests
        for args in (
            {"limit": 0},
            {"limit": 101},
            {"starting_after": "cus_123"},
            {"starting_after": "acct_1", "ending_before": "acct_2"},
            {"created_gte": "not a date"},
        ):
            r = await client.call_tool("list_connected_accounts", args)
            assert r.is_error, args
        for bad in ("cus_123", "acct_../x", "", "acct_1/2"):
            r = await client.call_tool("get_connected_account", {"account_id": bad})
            assert r.is_error, bad
        assert sandbox.app.state.sandbox.requests == before


async def test_unknown_account_is_a_tool_error_with_request_id(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        r = await client.call_tool("get_connected_account", {"account_id": "acct_1DoesNotExist"})
    text = r.content[0].text
    assert r.is_error and "status=404" in text and "resource_missing" in text and "request_id=req_" in text
    assert "sk_test_sandbox" not in text


async def test_restricted_key_without_connect_read_names_the_permission(sandbox):
    async with mcp_client(make_settings(sandbox, api_key="rk_test_sandbox")) as client:
        r = await client.call_tool("list_connected_accounts", {})
    assert r.is_error and "status=403" in r.content[0].text
    assert "Connect (Accounts): Read" in r.content[0].text and "rk_test_sandbox" not in r.content[0].text


async def test_connect_tools_are_read_only_and_labelled(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("list_connected_accounts", "get_connected_account"):
        assert tools[name].annotations.read_only_hint is True
        assert "Connect" in tools[name].description
