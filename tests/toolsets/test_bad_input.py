"""Regressions found by tests/test_fuzz_tools.py: hostile inputs get a clear ToolError, never a crash."""

from __future__ import annotations

import json

import pytest

from tests import loopback
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

PREFIX = "Error executing tool {}: "


@pytest.mark.parametrize(
    ("tool", "args", "argument"),
    [
        ("find_duplicate_customers", {"created_lt": 2**63}, "created_lt"),
        ("find_duplicate_customers", {"created_gte": 253402300800}, "created_gte"),
        ("list_customers", {"created_gte": -1}, "created_gte"),
        ("list_customers", {"created_lte": "0001-01-01"}, "created_lte"),
        ("list_connected_accounts", {"created_gte": "²³"}, "created_gte"),
        (
            "export_customers",
            {"format": "csv", "filename": "x.csv", "created_lt": 10**30},
            "created_lt",
        ),
    ],
)
async def test_created_out_of_range_is_a_clear_error_and_sends_nothing(
    sandbox, tmp_path, tool, args, argument
):
    settings = make_settings(sandbox, export_dir=str(tmp_path))
    async with mcp_client(settings) as client:
        before = sandbox.app.state.sandbox.requests
        r = await client.call_tool(tool, args)
        assert r.is_error
        text = r.content[0].text
        assert text.startswith(PREFIX.format(tool) + argument), text
        assert "out of range" in text or "neither unix seconds" in text
        assert sandbox.app.state.sandbox.requests == before
        assert not (tmp_path / "x.csv").exists()
        ok = await client.call_tool(
            tool if tool != "export_customers" else "list_customers",
            {} if tool != "find_duplicate_customers" else {"created_gte": "2020-01-01"},
        )
        assert not ok.is_error, ok.content[0].text


async def test_lone_surrogate_in_text_is_refused_before_sending_and_audited(
    sandbox, tmp_path
):
    """In-process clients can pass a lone UTF-16 surrogate (JSON transports reject it); it must not crash."""
    audit = tmp_path / "audit.jsonl"
    settings = make_settings(
        sandbox, allow_writes=True, confirm="param-only", audit_log=str(audit)
    )
    store = sandbox.app.state.sandbox.stores["test"]
    count = len(store.customers)
    async with mcp_client(settings) as client:
        r = await client.call_tool(
            "create_customer", {"email": "new@example.com", "name": "x\ud800"}
        )
        assert r.is_error
        text = r.content[0].text
        assert text.startswith(
            PREFIX.format("create_customer") + "an argument is not valid Unicode text"
        )
        assert "nothing was sent to Stripe" in text
        r = await client.call_tool(
            "provision_team_member",
            {"email": "new@example.com", "display_name": "\ud800"},
        )
        assert r.is_error and "not valid Unicode text" in r.content[0].text
        r = await client.call_tool(
            "detach_payment_method",
            {"payment_method": "pm_\ud800", "confirm": "pm_\ud800"},
        )
        assert r.is_error and r.content[0].text.startswith(
            PREFIX.format("detach_payment_method")
        )
        ok = await client.call_tool(
            "get_customer", {"customer_id": "cus_SbxJaneDoe0001"}
        )
        assert not ok.is_error
    assert len(store.customers) == count
    assert all(
        u.get("userName") != "new@example.com"
        for u in sandbox.app.state.sandbox.scim.users.values()
    )
    lines = audit.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["tool"] for e in entries] == [
        "create_customer",
        "provision_team_member",
        "detach_payment_method",
    ]
    assert (
        entries[0]["args"]["name"] == "x\ud800"
    )  # escaped in the file, the line is valid JSON
    assert all(e["outcome"] != "ok" for e in entries)


@pytest.mark.parametrize("member_id", ["..", "."])
async def test_dot_segment_member_id_is_refused_not_resolved_to_the_parent_path(
    sandbox, tmp_path, member_id
):
    """`/Users/..` would be normalised to `/scim/v2/` by the URL layer (a path traversal)."""
    settings = make_settings(
        sandbox,
        allow_writes=True,
        confirm="param-only",
        audit_log=str(tmp_path / "a.jsonl"),
    )
    scim = sandbox.app.state.sandbox.scim
    before = {uid: dict(u) for uid, u in scim.users.items()}
    requests = sandbox.app.state.sandbox.requests
    async with mcp_client(settings) as client:
        r = await client.call_tool("get_team_member", {"member_id": member_id})
        assert r.is_error
        assert r.content[0].text.startswith(
            PREFIX.format("get_team_member") + "member_id must not be '.' or '..'"
        )
        for tool in ("deactivate_team_member", "delete_team_member"):
            r = await client.call_tool(
                tool, {"member_id": member_id, "confirm": member_id}
            )
            assert r.is_error
            assert "member_id must not be '.' or '..'" in r.content[0].text
            assert "Nothing was" in r.content[0].text
    assert {uid: dict(u) for uid, u in scim.users.items()} == before
    assert sandbox.app.state.sandbox.requests == requests  # Stripe side untouched too


async def test_an_answer_of_the_wrong_shape_is_a_typed_client_error(sandbox):
    """A 200 that is not the expected object (e.g. a list where a user was asked for) must not crash a tool."""
    from stripe_identity_mcp.clients.errors import UnexpectedResponseError
    from stripe_identity_mcp.deps import open_deps
    from stripe_identity_mcp.models.scim import ScimUser
    from stripe_identity_mcp.models.stripe import Customer

    async with open_deps(make_settings(sandbox)) as app:
        listing = await app.stripe.call("GET", "/v1/customers", {"limit": 1})
        with pytest.raises(
            UnexpectedResponseError,
            match=r"unexpected answer from Stripe: not a Customer \(missing/invalid: id",
        ):
            app.stripe.parse(Customer, listing)
        users = await app.scim.call("GET", "/Users", params={"count": 1})
        with pytest.raises(UnexpectedResponseError, match="not a ScimUser"):
            app.scim.parse(ScimUser, users)
        assert (
            app.stripe.parse(Customer, listing["data"][0]).id
            == listing["data"][0]["id"]
        )


async def test_the_bad_input_list_gets_clear_answers(sandbox, tmp_path):
    """The issues' bad-input list, by hand through the MCP client: each answer says what is wrong."""
    store = sandbox.app.state.sandbox.stores["test"]
    deleted = next(i for i, rec in store.customers.items() if rec.get("deleted"))
    jane = "cus_SbxJaneDoe0001"
    base = {
        "allow_writes": True,
        "confirm": "param-only",
        "export_dir": str(tmp_path),
        "audit_log": str(tmp_path / "a.jsonl"),
    }
    cases = [
        (
            "get_customer",
            {"customer_id": "acct_123"},
            "String should match pattern '^cus_",
        ),
        ("list_customers", {"limit": 0}, "greater than or equal to 1"),
        ("list_customers", {"limit": 101}, "less than or equal to 100"),
        (
            "get_customer",
            {"customer_id": "cus_NOPE123"},
            "nothing with that id in sandbox test mode",
        ),
        ("search_customers", {"query": "email:'x"}, "invalid search query"),
        ("update_customer", {"customer_id": deleted, "name": "X"}, "deleted"),
        (
            "update_customer",
            {"customer_id": jane, "metadata_set": {f"k{i}": "v" for i in range(51)}},
            "Stripe allows 50",
        ),
        (
            "update_customer",
            {"customer_id": jane, "description": "card 4242 4242 4242 4242"},
            "card number",
        ),
        (
            "export_customers",
            {"format": "csv", "filename": "../../etc/x.csv"},
            "refused",
        ),
    ]
    before = dict(store.customers[jane])
    async with mcp_client(make_settings(sandbox, **base)) as client:
        for tool, args, phrase in cases:
            r = await client.call_tool(tool, args)
            assert r.is_error, (tool, args)
            assert (
                r.content[0].text.startswith(PREFIX.format(tool))
                and phrase in r.content[0].text
            ), r.content[0].text
    assert store.customers[jane] == before  # nothing was lost
    assert not list(tmp_path.glob("*.csv"))
    async with mcp_client(make_settings(sandbox, api_key="sk_live_sandbox")) as client:
        r = await client.call_tool("get_customer", {"customer_id": jane})
        assert (
            r.is_error
            and "exists in test mode" in r.content[0].text
            and "other mode" in r.content[0].text
        )
    async with mcp_client(make_settings(sandbox, api_key="sk_test_REVOKED")) as client:
        r = await client.call_tool("get_customer", {"customer_id": jane})
        text = r.content[0].text
        assert (
            r.is_error
            and "status=401" in text
            and "rejected" in text
            and "sk_test_REVOKED" not in text
        )
    async with mcp_client(make_settings(sandbox, scim_token="scim_WRONG")) as client:
        r = await client.call_tool("list_team_members", {})
        assert (
            r.is_error
            and "SCIM token rejected" in r.content[0].text
            and "scim_WRONG" not in r.content[0].text
        )
    async with mcp_client(make_settings(sandbox, scim_token=None)) as client:
        access = await client.call_tool("describe_access", {})
        assert (
            "STRIPE_SCIM_TOKEN" in access.content[0].text
        )  # team toolset absent, and it says why
    faults = loopback.AsyncClient(base_url=sandbox.base_url)
    (
        await faults.post(
            "/_sandbox/faults", json={"rules": [{"kind": "429", "count": 10}]}
        )
    ).raise_for_status()
    try:
        async with mcp_client(
            make_settings(sandbox, max_retries=2, retry_deadline_s=5)
        ) as client:
            r = await client.call_tool("get_customer", {"customer_id": jane})
            assert (
                r.is_error
                and "status=429" in r.content[0].text
                and "retries=2" in r.content[0].text
            )
    finally:
        await faults.delete("/_sandbox/faults")
        await faults.aclose()
    async with mcp_client(
        make_settings(
            sandbox, api_base="http://127.0.0.1:9", max_retries=1, retry_deadline_s=3
        )
    ) as client:
        r = await client.call_tool("get_customer", {"customer_id": jane})
        assert (
            r.is_error
            and "could not reach Stripe" in r.content[0].text
            and "(connection)" in r.content[0].text
        )
