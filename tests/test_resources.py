"""stripe:// resource templates through a real MCP client: JSON content, id validation, no traversal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.shared.exceptions import MCPError

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from stripe_identity_mcp.toolsets import identity
from stripe_identity_mcp.toolsets.identity import ID_SHAPES
from tests.conftest import make_settings, mcp_client, running_sandbox

TEMPLATES = {"stripe://customers/{customer_id}", "stripe://team-members/{member_id}", "stripe://accounts/{account_id}"}


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """Seeded sandbox that keeps deactivated SCIM members (the team-member template is read for the seeded inactive jane@acme.com). They exist only under
    scim_keep_inactive: by default the sandbox deletes on deactivation, as Stripe does."""
    with running_sandbox(scim_keep_inactive=True) as handle:
        yield handle


async def read_json(client, uri: str) -> dict:
    result = await client.read_resource(uri)
    [content] = result.contents
    assert content.mime_type == "application/json"
    assert str(content.uri) == uri
    return json.loads(content.text)


@pytest.mark.anyio
async def test_three_templates_are_listed_as_json(sandbox, protocol_mode):
    async with mcp_client(make_settings(sandbox), mode=protocol_mode) as client:
        templates = (await client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == TEMPLATES
    assert all(t.mime_type == "application/json" and t.description for t in templates)


@pytest.mark.anyio
async def test_without_scim_the_team_member_template_is_absent(sandbox):
    async with mcp_client(make_settings(sandbox, scim_token=None)) as client:
        templates = (await client.list_resource_templates()).resource_templates
        with pytest.raises(MCPError):
            await client.read_resource(f"stripe://team-members/{SCIM_FIXED_IDS['jane@acme.com']}")
    assert {t.uri_template for t in templates} == TEMPLATES - {"stripe://team-members/{member_id}"}


@pytest.mark.anyio
async def test_each_template_resolves_to_a_labelled_compact_record(sandbox, protocol_mode):
    async with mcp_client(make_settings(sandbox), mode=protocol_mode) as client:
        customer = await read_json(client, f"stripe://customers/{FIXED_IDS['jane']}")
        member = await read_json(client, f"stripe://team-members/{SCIM_FIXED_IDS['jane@acme.com']}")
        account = await read_json(client, f"stripe://accounts/{FIXED_IDS['acct_jane']}")
    assert customer["concept"] == "customer" and customer["id"] == FIXED_IDS["jane"]
    assert customer["email"] == "jane@acme.com" and customer["subscriptions"] == 1
    assert "visa 4242" in customer["default_payment_method"]
    assert member["concept"] == "team_member" and member["email"] == "jane@acme.com" and member["active"] is False
    assert "API keys" in member["warning"]
    assert account["concept"] == "connect_account" and account["business_name"] == "Acme Inc"


@pytest.mark.anyio
async def test_deleted_customer_is_flagged(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        customer = await read_json(client, f"stripe://customers/{FIXED_IDS['lee_deleted']}")
    assert customer == {"concept": "customer", "id": FIXED_IDS["lee_deleted"], "deleted": True, "match": "exact"}


@pytest.mark.parametrize(
    "uri",
    [
        "stripe://customers/..",
        "stripe://customers/cus_a%2F..%2Fb",
        "stripe://customers/cus_a%2Fb",
        "stripe://customers/%2E%2E",
        "stripe://customers/acct_1SbxAcmeJane0001",
        "stripe://customers/cus_",
        "stripe://customers/cus_a b",
        "stripe://customers/cus_a%00",
        "stripe://accounts/cus_SbxJaneDoe0001",
        "stripe://accounts/acct_..%2F..%2Fv1%2Fcustomers",
        "stripe://team-members/..%2F..%2FUsers",
        "stripe://team-members/a%2Fb",
        "stripe://team-members/%2Fetc%2Fpasswd",
        "stripe://team-members/x_y",
    ],
)
@pytest.mark.anyio
async def test_bad_ids_and_traversal_are_rejected_without_any_call(sandbox, uri):
    sbx = sandbox.app.state.sandbox
    async with mcp_client(make_settings(sandbox)) as client:
        before = sbx.requests
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        assert sbx.requests == before
    assert "sk_test_sandbox" not in str(caught.value)


@pytest.mark.anyio
async def test_unknown_ids_are_errors_with_stripe_details(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        with pytest.raises(MCPError) as missing_customer:
            await client.read_resource("stripe://customers/cus_DoesNotExist1")
        with pytest.raises(MCPError) as missing_member:
            await client.read_resource("stripe://team-members/00000000-0000-0000-0000-000000000000")
    assert "404" in str(missing_customer.value) and "request_id=req_" in str(missing_customer.value)
    assert "404" in str(missing_member.value)


@pytest.mark.anyio
async def test_restricted_key_reading_an_account_names_the_permission(sandbox):
    async with mcp_client(make_settings(sandbox, api_key="rk_test_sandbox")) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"stripe://accounts/{FIXED_IDS['acct_jane']}")
        customer = await read_json(client, f"stripe://customers/{FIXED_IDS['jane']}")
    assert "Connect (Accounts): Read" in str(caught.value) and "rk_test_sandbox" not in str(caught.value)
    assert customer["id"] == FIXED_IDS["jane"]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(ID_SHAPES)), value=st.text(max_size=40))
def test_id_check_accepts_only_plain_ids(kind, value):
    try:
        identity._check_id(kind, value)
    except MCPError as exc:
        assert "invalid" in str(exc)
    else:
        assert ID_SHAPES[kind].fullmatch(value)
        assert not any(bad in value for bad in ("/", "..", "%", "\\", "\0"))
