"""Customer write tools through a real MCP client against the loopback sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.toolsets import billing, customer_writes
from tests import loopback
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

WRITE_TOOLS = {td.name for td in customer_writes.TOOLSET.write + billing.TOOLSET.write}


def writes(sb: Any, tmp_path: Any, **overrides: Any) -> Any:
    return make_settings(sb, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl", **overrides)


def customers_with_email(sb: Any, email: str) -> list[dict[str, Any]]:
    store = sb.sandbox.stores["test"]
    return [c for c in store.customers.values() if c.get("email") == email and not c.get("deleted")]


def audit_lines(tmp_path: Any) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- registration -------------------------------------------------------------------------------
async def test_write_tools_listed_with_honest_annotations(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert WRITE_TOOLS <= set(tools)
    for name in WRITE_TOOLS:
        a = tools[name].annotations
        assert a.read_only_hint is False, name
        assert a.destructive_hint is (name in ("delete_customer", "detach_payment_method")), name
    assert tools["update_customer"].annotations.idempotent_hint is True
    assert tools["attach_payment_method"].annotations.idempotent_hint is True
    assert tools["create_portal_session"].annotations.idempotent_hint is False
    assert tools["create_customer"].annotations.idempotent_hint is False
    assert tools["list_customer_payment_methods"].annotations.read_only_hint is True
    # the confirmation is not something the model can fill in: only `confirm` is
    assert set(tools["delete_customer"].input_schema["properties"]) == {"customer_id", "confirm"}


@pytest.mark.parametrize(
    "overrides",
    [{}, {"allow_writes": True, "read_only": True}, {"allow_writes": True, "api_key": "sk_live_sandbox"}],
    ids=["default", "read-only", "live-without-second-opt-in"],
)
async def test_no_write_tool_exists_without_the_opt_ins(sandbox, overrides):
    async with mcp_client(make_settings(sandbox, scim_token=None, **overrides)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        called = await client.call_tool("delete_customer", {"customer_id": FIXED_IDS["omar"], "confirm": FIXED_IDS["omar"]})
    assert not names & WRITE_TOOLS
    assert "list_customer_payment_methods" in names
    assert called.is_error
    assert not sandbox.sandbox.stores["test"].customers[FIXED_IDS["omar"]].get("deleted")


async def test_live_key_with_second_opt_in_lists_write_tools(sandbox, tmp_path):
    settings = writes(sandbox, tmp_path, api_key="sk_live_sandbox", allow_live_writes=True)
    async with mcp_client(settings) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert WRITE_TOOLS <= names


# --- create -------------------------------------------------------------------------------------
async def test_create_customer_happy_path_and_audit(empty_sandbox, tmp_path):
    async with mcp_client(writes(empty_sandbox, tmp_path)) as client:
        r = await client.call_tool(
            "create_customer",
            {"email": "new@example.com", "name": "New Person", "metadata": {"crm_id": "7"},
             "address": {"city": "Berlin", "country": "DE"}},
        )  # fmt: skip
    assert not r.is_error, r.content[0].text
    customer = r.structured_content["customer"]
    assert customer["email"] == "new@example.com" and customer["metadata"] == {"crm_id": "7"}
    assert [c["id"] for c in customers_with_email(empty_sandbox, "new@example.com")] == [customer["id"]]
    [line] = audit_lines(tmp_path)
    assert line["tool"] == "create_customer" and line["outcome"] == "ok"
    assert line["target"] == customer["id"] and line["request_id"].startswith("req_")
    assert line["caller"] == "local" and line["time"].endswith("Z")


@pytest.mark.parametrize("email", ["jane@acme.com", "JANE@ACME.COM", "Jane@Acme.com"])
async def test_duplicate_email_refused_including_case_variants(sandbox, tmp_path, email):
    store = sandbox.sandbox.stores["test"]
    before = len(store.customers)
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("create_customer", {"email": email, "name": "Jane again"})
    assert r.is_error
    text = r.content[0].text
    assert FIXED_IDS["jane"] in text and FIXED_IDS["jane_variant"] in text
    assert "allow_duplicate_email=true" in text and "Nothing was created" in text
    assert len(store.customers) == before
    assert audit_lines(tmp_path)[-1]["outcome"] == "refused"


async def test_allow_duplicate_email_creates_a_second_one(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("create_customer", {"email": "omar@globex.com", "allow_duplicate_email": True})
    assert not r.is_error, r.content[0].text
    assert FIXED_IDS["omar"] in r.structured_content["warnings"][0]
    assert len(customers_with_email(sandbox, "omar@globex.com")) == 2


async def test_lost_response_during_create_makes_exactly_one_customer(empty_sandbox, tmp_path):
    rule = {"kind": "drop_after_commit", "method": "POST", "path": "/v1/customers", "count": 1}
    loopback.post(f"{empty_sandbox.base_url}/_sandbox/faults", json={"rules": [rule]}).raise_for_status()
    async with mcp_client(writes(empty_sandbox, tmp_path)) as client:
        r = await client.call_tool("create_customer", {"email": "lost@example.com", "name": "Lost Response"})
    stats = loopback.get(f"{empty_sandbox.base_url}/_sandbox/stats").json()
    assert stats["faults_injected"] == 1  # the response really was dropped after the commit
    assert not r.is_error, r.content[0].text
    found = customers_with_email(empty_sandbox, "lost@example.com")
    assert [c["id"] for c in found] == [r.structured_content["customer"]["id"]]
    assert r.structured_content["replayed"] is True
    # the replay is of this call's own first attempt: it DID create the customer (issue: no false "no new customer")
    assert "created by this call" in r.structured_content["note"]
    assert "no new customer" not in r.structured_content["note"]


async def test_explicit_idempotency_key_replay_is_reported(empty_sandbox, tmp_path):
    args = {"email": "idem@example.com", "idempotency_key": "order-42", "allow_duplicate_email": True}
    async with mcp_client(writes(empty_sandbox, tmp_path)) as client:
        first = await client.call_tool("create_customer", args)
        second = await client.call_tool("create_customer", args)
    assert not first.is_error and not second.is_error, second.content[0].text
    assert first.structured_content.get("replayed") is None
    assert second.structured_content["replayed"] is True
    assert second.structured_content["customer"]["id"] == first.structured_content["customer"]["id"]
    assert len(customers_with_email(empty_sandbox, "idem@example.com")) == 1


async def test_restricted_key_write_names_the_permission(sandbox, tmp_path):
    before = len(sandbox.sandbox.stores["test"].customers)
    async with mcp_client(writes(sandbox, tmp_path, api_key="rk_test_sandbox")) as client:
        r = await client.call_tool("create_customer", {"email": "rk@example.com"})
        d = await client.call_tool("delete_customer", {"customer_id": FIXED_IDS["omar"], "confirm": FIXED_IDS["omar"]})
    assert r.is_error and d.is_error
    for result in (r, d):
        text = result.content[0].text
        assert "rak_customer_write" in text and "Customers: Write" in text and "status=403" in text
        assert "rk_test_sandbox" not in text
    assert len(sandbox.sandbox.stores["test"].customers) == before
    assert not sandbox.sandbox.stores["test"].customers[FIXED_IDS["omar"]].get("deleted")
    lines = audit_lines(tmp_path)
    assert [line["outcome"] for line in lines] == ["error: 403/invalid_request_error"] * 2 or all(
        line["outcome"].startswith("error: 403") for line in lines
    )
    assert all(line["request_id"] for line in lines)


# --- update -------------------------------------------------------------------------------------
async def test_metadata_set_and_unset_keep_other_keys(sandbox, tmp_path):
    jane = FIXED_IDS["jane"]
    store = sandbox.sandbox.stores["test"]
    original = dict(store.customers[jane]["metadata"])
    assert "crm_id" in original
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool(
            "update_customer", {"customer_id": jane, "metadata_set": {"tier": "gold"}, "metadata_unset": ["crm_id"]}
        )
    assert not r.is_error, r.content[0].text
    expected = {k: v for k, v in original.items() if k != "crm_id"} | {"tier": "gold"}
    assert store.customers[jane]["metadata"] == expected
    assert r.structured_content["customer"]["metadata"] == expected
    assert set(r.structured_content["changed"]) == {"metadata.tier", "-metadata.crm_id"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"metadata_set": {"k" * 41: "v"}}, "41 characters; Stripe allows 40"),
        ({"metadata_set": {"note": "x" * 501}}, "501 characters; Stripe allows 500"),
        ({"metadata_set": {"a[b]": "v"}}, "'[' or ']'"),
        ({"metadata_unset": ["a]"]}, "'[' or ']'"),
        ({"metadata_set": {f"k{i}": "v" for i in range(51)}}, "51 keys; Stripe allows 50"),
        ({"metadata_set": {f"k{i}": "v" for i in range(49)}}, "would have 51 metadata keys"),  # + 2 existing
        ({"metadata_set": {"a": "1"}, "metadata_unset": ["a"]}, "both set and unset"),
        ({}, "nothing to update"),
    ],
)
async def test_metadata_limits_checked_before_calling_stripe(sandbox, tmp_path, args, needle):
    jane = FIXED_IDS["jane"]
    store = sandbox.sandbox.stores["test"]
    before = json.dumps(store.customers[jane]["metadata"], sort_keys=True)
    assert len(store.customers[jane]["metadata"]) == 2
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("update_customer", {"customer_id": jane, **args})
    assert r.is_error and needle in r.content[0].text, r.content[0].text
    assert json.dumps(store.customers[jane]["metadata"], sort_keys=True) == before


async def test_clear_all_metadata_needs_confirmation(sandbox, tmp_path):
    omar = FIXED_IDS["omar"]
    store = sandbox.sandbox.stores["test"]
    store.customers[omar]["metadata"] = {"a": "1", "b": "2"}
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        refused = await client.call_tool("update_customer", {"customer_id": omar, "clear_all_metadata": True})
        assert refused.is_error and f"confirm='{omar}'" in refused.content[0].text
        assert store.customers[omar]["metadata"] == {"a": "1", "b": "2"}
        ok = await client.call_tool("update_customer", {"customer_id": omar, "clear_all_metadata": True, "confirm": omar})
        assert not ok.is_error, ok.content[0].text
        assert store.customers[omar]["metadata"] == {}
        store.customers[omar]["metadata"] = {"a": "1"}
        replaced = await client.call_tool(
            "update_customer",
            {"customer_id": omar, "clear_all_metadata": True, "confirm": omar, "metadata_set": {"c": "3"}},
        )
    assert not replaced.is_error
    assert store.customers[omar]["metadata"] == {"c": "3"}


async def test_plain_field_update_and_deleted_customer(sandbox, tmp_path):
    omar, lee = FIXED_IDS["omar"], FIXED_IDS["lee_deleted"]
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("update_customer", {"customer_id": omar, "name": "Omar B.", "phone": "+1 415 555 0100"})
        gone = await client.call_tool("update_customer", {"customer_id": lee, "name": "Back"})
    assert not r.is_error and r.structured_content["customer"]["name"] == "Omar B."
    assert sandbox.sandbox.stores["test"].customers[omar]["name"] == "Omar B."
    assert gone.is_error and "deleted" in gone.content[0].text


# --- audit --------------------------------------------------------------------------------------
async def test_audit_lines_carry_no_secrets(sandbox, tmp_path):
    jane = FIXED_IDS["jane"]
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        await client.call_tool("create_customer", {"email": "a@example.com", "description": "key sk_test_sandbox oops"})
        await client.call_tool("create_customer", {"email": "b@example.com", "description": "4242 4242 4242 4242"})
        await client.call_tool(
            "update_customer", {"customer_id": jane, "metadata_set": {"api_token": "hunter2", "n": "y" * 400}}
        )
        await client.call_tool("delete_customer", {"customer_id": jane})
    raw = (tmp_path / "audit.jsonl").read_text()
    lines = audit_lines(tmp_path)
    assert len(lines) == 4
    assert "sk_test_sandbox" not in raw and "hunter2" not in raw and "4242424242424242" not in raw
    assert "4242 4242 4242 4242" not in raw and "4242 **** **** 4242" in raw
    assert lines[2]["args"]["metadata_set"]["api_token"] == "[redacted]"
    assert len(lines[2]["args"]["metadata_set"]["n"]) < 300
    assert [line["outcome"] for line in lines] == ["ok", "refused", "ok", "refused"]
    assert {"time", "caller", "tool", "target", "args", "outcome", "request_id"} <= set(lines[0])
