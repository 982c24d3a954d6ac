"""Read-only customer tools through a real MCP client against the sandbox over loopback."""

from __future__ import annotations

import json

import pytest

from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client

pytestmark = pytest.mark.anyio

READ_TOOLS = {
    "describe_access", "find_customers_by_email", "get_customer", "list_customers", "search_customers", "customer_history",
}


def stripe_post(sb, path: str, data: dict, key: str = SANDBOX_KEY) -> dict:
    r = loopback.post(sb.base_url + path, data=data, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_read_only_server_lists_exactly_read_tools_with_honest_annotations(empty_sandbox, protocol_mode):
    settings = make_settings(empty_sandbox, scim_token=None, toolsets=("customers",))
    async with mcp_client(settings, protocol_mode) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == READ_TOOLS
    for tool in tools:
        a = tool.annotations
        assert (a.read_only_hint, a.destructive_hint, a.open_world_hint) == (True, False, True), tool.name
        assert a.idempotent_hint is True
        assert tool.output_schema is not None


async def test_duplicates_found_with_warning(empty_sandbox, protocol_mode):
    first = stripe_post(empty_sandbox, "/v1/customers", {"email": "dup@example.com", "name": "One"})
    second = stripe_post(empty_sandbox, "/v1/customers", {"email": "dup@example.com", "name": "Two"})
    variant = stripe_post(empty_sandbox, "/v1/customers", {"email": "Dup@Example.com", "name": "Three"})
    stripe_post(empty_sandbox, "/v1/customers", {"email": "other@example.com"})
    async with mcp_client(make_settings(empty_sandbox), protocol_mode) as client:
        r = await client.call_tool("find_customers_by_email", {"email": "dup@example.com"})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["exact_count"] == 2 and out["record_count"] == 3  # 2 exact + 1 case variant
    assert {c["id"] for c in out["customers"]} == {first["id"], second["id"]}
    assert out["case_variants"] == [{"id": variant["id"], "email": "Dup@Example.com"}]
    assert any("2 customers share this email" in w for w in out["warnings"])
    assert any("differs only by case" in w for w in out["warnings"])
    assert out["mode"] == "sandbox test"


async def test_lookup_pages_through_more_than_one_page(empty_sandbox):
    for i in range(105):
        stripe_post(empty_sandbox, "/v1/customers", {"email": "many@example.com", "metadata[i]": str(i)})
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool(
            "find_customers_by_email", {"email": "many@example.com", "include_case_variants": False}
        )
    assert r.structured_content["exact_count"] == 105
    assert len({c["id"] for c in r.structured_content["customers"]}) == 105


async def test_seeded_support_lookup_is_compact(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        r = await client.call_tool("find_customers_by_email", {"email": "jane@acme.com"})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["exact_count"] >= 1
    jane = out["customers"][0]
    assert jane["subscriptions"] >= 1
    assert "visa" in jane["default_payment_method"]
    assert [v["email"] for v in out["case_variants"]] == ["Jane@Acme.com"]
    # A support answer is a few hundred bytes, not a raw Stripe dump, and the text block the model
    # reads is the same JSON without indentation.
    assert len(json.dumps(out, separators=(",", ":"))) < 1500
    assert "\n" not in r.content[0].text and json.loads(r.content[0].text) == out


async def test_unknown_email_says_which_mode(empty_sandbox):
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("find_customers_by_email", {"email": "nobody@example.com"})
    assert not r.is_error
    assert r.structured_content["exact_count"] == 0
    assert any("test mode" in w for w in r.structured_content["warnings"])


async def test_get_customer_and_deleted_flag(empty_sandbox, protocol_mode):
    created = stripe_post(empty_sandbox, "/v1/customers", {"email": "gone@example.com", "metadata[crm]": "7"})
    async with mcp_client(make_settings(empty_sandbox), protocol_mode) as client:
        r = await client.call_tool("get_customer", {"customer_id": created["id"]})
        assert not r.is_error, r.content[0].text
        assert r.structured_content["metadata"] == {"crm": "7"}
        assert r.structured_content["deleted"] is False
        loopback.delete(
            f"{empty_sandbox.base_url}/v1/customers/{created['id']}", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
        ).raise_for_status()
        r = await client.call_tool("get_customer", {"customer_id": created["id"]})
    assert not r.is_error
    assert r.structured_content["deleted"] is True
    assert "permanently deleted" in r.structured_content["note"]


async def test_unknown_customer_is_a_404_tool_error_naming_the_mode(empty_sandbox):
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("get_customer", {"customer_id": "cus_DoesNotExist1"})
    assert r.is_error
    text = r.content[0].text
    assert "No such customer" in text and "status=404" in text and "code=resource_missing" in text
    assert "request_id=req_" in text
    assert "test mode" in text


@pytest.mark.parametrize(
    "args",
    [
        {"customer_id": "acct_123"},
        {"customer_id": "cus_"},
        {"customer_id": "cus_../../v1/accounts"},
        {"customer_id": ""},
    ],
)
async def test_wrong_id_shapes_are_refused_before_calling_stripe(empty_sandbox, args):
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("get_customer", args)
    assert r.is_error
    assert "customer_id" in r.content[0].text
    stats = loopback.get(empty_sandbox.base_url + "/_sandbox/stats").json()
    assert stats["requests"] == 0


async def test_list_customers_paging_and_limits(empty_sandbox, protocol_mode):
    ids = [stripe_post(empty_sandbox, "/v1/customers", {"email": f"p{i}@example.com"})["id"] for i in range(7)]
    async with mcp_client(make_settings(empty_sandbox), protocol_mode) as client:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            args = {"limit": 3, **({"starting_after": cursor} if cursor else {})}
            r = await client.call_tool("list_customers", args)
            assert not r.is_error, r.content[0].text
            seen += [c["id"] for c in r.structured_content["customers"]]
            cursor = r.structured_content.get("next_cursor")
            if not cursor:
                break
        assert seen == list(reversed(ids))  # newest first, nothing lost or doubled
        for bad in (0, 101):
            r = await client.call_tool("list_customers", {"limit": bad})
            assert r.is_error and "limit" in r.content[0].text


async def test_list_customers_created_filter_accepts_iso_dates(empty_sandbox):
    stripe_post(empty_sandbox, "/v1/customers", {"email": "now@example.com"})
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("list_customers", {"created_lte": "2001-01-01"})
        assert r.structured_content["customers"] == []
        r = await client.call_tool("list_customers", {"created_gte": "2001-01-01T00:00:00Z"})
        assert len(r.structured_content["customers"]) == 1
        r = await client.call_tool("list_customers", {"created_gte": "last tuesday"})
        assert r.is_error and "ISO 8601" in r.content[0].text


async def test_search_customers_structured_fields_are_escaped(empty_sandbox):
    stripe_post(empty_sandbox, "/v1/customers", {"email": "ob@example.com", "name": "Conan O'Brien"})
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("search_customers", {"name_contains": "O'Brien"})
        assert not r.is_error, r.content[0].text
        assert [c["email"] for c in r.structured_content["customers"]] == ["ob@example.com"]
        assert any("lags" in w for w in r.structured_content["warnings"])
        r = await client.call_tool("search_customers", {"query": "email:'ob@example.com'"})
        assert [c["name"] for c in r.structured_content["customers"]] == ["Conan O'Brien"]


@pytest.mark.parametrize(
    "query",
    ["email:ob@example.com", "colour:'red'", "email:'a' AND name:'b' OR phone:'c'", "name~'ab'", "   "],
)
async def test_malformed_search_query_is_a_clear_error(empty_sandbox, query):
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("search_customers", {"query": query})
    assert r.is_error
    assert "invalid search query" in r.content[0].text or "give a query" in r.content[0].text


async def test_search_paging_follows_next_page(empty_sandbox):
    for i in range(5):
        stripe_post(empty_sandbox, "/v1/customers", {"email": f"s{i}@example.com", "metadata[batch]": "x1"})
    async with mcp_client(make_settings(empty_sandbox)) as client:
        seen, page = [], None
        for _ in range(10):
            args = {"metadata_key": "batch", "metadata_value": "x1", "limit": 2, **({"page": page} if page else {})}
            r = await client.call_tool("search_customers", args)
            assert not r.is_error, r.content[0].text
            seen += [c["id"] for c in r.structured_content["customers"]]
            page = r.structured_content.get("next_page")
            if not page:
                break
    assert len(seen) == len(set(seen)) == 5


async def test_describe_access_never_shows_the_key(empty_sandbox, protocol_mode):
    async with mcp_client(make_settings(empty_sandbox, scim_token=None), protocol_mode) as client:
        r = await client.call_tool("describe_access", {})
    out = r.structured_content
    assert out["mode"] == "sandbox test" and out["key_kind"] == "secret" and out["writes"] is False
    assert "--allow-writes" in out["writes_note"]
    assert out["scim_configured"] is False and "STRIPE_SCIM_TOKEN" in out["scim_note"]
    assert "team" not in out["toolsets"]
    assert SANDBOX_KEY not in r.content[0].text


async def test_rejected_argument_values_are_not_echoed(empty_sandbox):
    card = "4242 4242 4242 4242"
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("get_customer", {"customer_id": card})
        assert r.is_error
        # the card check runs before schema validation (server.AuditedServer): the refusal names the
        # argument and what it holds, never the value
        assert "'customer_id'" in r.content[0].text and "looks like a card number" in r.content[0].text
        assert card not in r.content[0].text and "4242" not in r.content[0].text
        r = await client.call_tool("get_customer", {"customer_id": "not an id"})
        assert r.is_error and "customer_id" in r.content[0].text and "should match pattern" in r.content[0].text
        assert "not an id" not in r.content[0].text
        r = await client.call_tool("list_customers", {"limit": 101})
        assert r.is_error and "limit" in r.content[0].text and "less than or equal to 100" in r.content[0].text
