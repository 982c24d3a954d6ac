"""resolve_identity through a real MCP client: three concepts, labelled, traps warned, parts isolated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from stripe_identity_mcp.toolsets import identity
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client, running_sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """Seeded sandbox that keeps deactivated SCIM members (jane@acme.com is a customer AND an inactive team member, one of the traps). They exist only under
    scim_keep_inactive: by default the sandbox deletes on deactivation, as Stripe does."""
    with running_sandbox(scim_keep_inactive=True) as handle:
        yield handle


async def resolve(settings, email: str, mode: str = "legacy") -> dict:
    async with mcp_client(settings, mode=mode) as client:
        r = await client.call_tool("resolve_identity", {"email": email})
    assert not r.is_error, r.content[0].text
    return r.structured_content


def warning(report: dict, needle: str) -> str:
    hits = [w for w in report["warnings"] if needle in w]
    assert hits, f"no warning with {needle!r}: {report['warnings']}"
    return hits[0]


async def test_email_in_all_three_systems_comes_back_labelled_with_the_traps(sandbox, protocol_mode):
    """The issue's "done when": two customers (case variants), a removed member, a Connect account."""
    report = await resolve(make_settings(sandbox), "jane@acme.com", protocol_mode)
    customers = {c["id"]: c for c in report["customers"]}
    assert set(customers) == {FIXED_IDS["jane"], FIXED_IDS["jane_variant"]}
    assert all(c["concept"] == "customer" for c in customers.values())
    assert customers[FIXED_IDS["jane"]]["match"] == "exact"
    assert customers[FIXED_IDS["jane_variant"]] == {
        **customers[FIXED_IDS["jane_variant"]], "match": "case_variant", "email": "Jane@Acme.com"
    }  # fmt: skip
    assert customers[FIXED_IDS["jane"]]["subscriptions"] == 1
    member = report["team_member"]
    assert member == {
        "concept": "team_member", "id": SCIM_FIXED_IDS["jane@acme.com"], "email": "jane@acme.com",
        "name": "Jane Doe", "active": False, "groups": ["Support", "Admins"],  # groups: issue 15
    }  # fmt: skip
    assert report["team_status"] == "inactive"
    [account] = report["connect_accounts"]
    assert account["concept"] == "connect_account" and account["id"] == FIXED_IDS["acct_jane"]
    assert account["business_name"] == "Acme Inc"

    dup = warning(report, "duplicate customers")
    assert FIXED_IDS["jane"] in dup and FIXED_IDS["jane_variant"] in dup and "letter case" in dup
    keys = warning(report, "API keys")
    assert "rotated" in keys and "Developers → API keys" in keys
    assert "test mode" in warning(report, "mode:")
    assert "lags" in report["notes"]["customers"]
    assert set(report["notes"]) == {"customers", "team_member", "connect_accounts"}
    assert len(json.dumps(report)) < 2000  # compact: a support lookup, not a Stripe dump


async def test_no_scim_token_says_not_configured_and_keeps_the_rest(sandbox):
    report = await resolve(make_settings(sandbox, scim_token=None), "jane@acme.com")
    assert report["team_status"] == "not configured" and "team_member" not in report
    assert "STRIPE_SCIM_TOKEN" in report["notes"]["team_member"]
    assert len(report["customers"]) == 2 and len(report["connect_accounts"]) == 1
    assert not any("API keys" in w for w in report["warnings"])  # nothing known about the member


async def test_restricted_key_without_connect_read_degrades_only_the_connect_part(sandbox):
    report = await resolve(make_settings(sandbox, api_key="rk_test_sandbox"), "jane@acme.com")
    note = report["notes"]["connect_accounts"]
    assert note.startswith("error:") and "403" in note and "Connect (Accounts): Read" in note
    assert "rk_test_sandbox" not in json.dumps(report)
    assert report["connect_accounts"] == []
    assert {c["id"] for c in report["customers"]} == {FIXED_IDS["jane"], FIXED_IDS["jane_variant"]}
    assert report["team_status"] == "inactive"


async def test_rejected_scim_token_degrades_only_the_team_part(sandbox):
    report = await resolve(make_settings(sandbox, scim_token="scim_wrong_token"), "jane@acme.com")
    assert report["team_status"] == "error"
    assert report["notes"]["team_member"].startswith("error:") and "401" in report["notes"]["team_member"]
    assert "scim_wrong_token" not in json.dumps(report)
    assert len(report["customers"]) == 2 and len(report["connect_accounts"]) == 1


async def test_customer_api_failing_does_not_fail_team_or_connect(sandbox):
    rule = {"kind": "500", "method": "GET", "path": "/v1/customers", "count": 100}
    loopback.post(f"{sandbox.base_url}/_sandbox/faults", json={"rules": [rule]}).raise_for_status()
    try:
        report = await resolve(make_settings(sandbox, max_retries=0), "jane@acme.com")
    finally:
        loopback.delete(f"{sandbox.base_url}/_sandbox/faults").raise_for_status()
    assert report["customers"] == [] and report["notes"]["customers"].startswith("error:")
    assert "500" in report["notes"]["customers"]
    assert report["team_status"] == "inactive" and len(report["connect_accounts"]) == 1


async def test_exact_duplicates_are_warned(empty_sandbox):
    for name in ("Dup One", "Dup Two"):
        loopback.post(
            f"{empty_sandbox.base_url}/v1/customers",
            data={"email": "dup@example.com", "name": name},
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        ).raise_for_status()
    report = await resolve(make_settings(empty_sandbox), "dup@example.com")
    assert [c["match"] for c in report["customers"]] == ["exact", "exact"]
    assert "2 customer records" in warning(report, "duplicate customers")
    assert report["team_status"] == "absent" and report["connect_accounts"] == []


async def test_active_member_with_connect_account_and_no_customer(sandbox):
    report = await resolve(make_settings(sandbox), "priya@umbrella.com")
    assert report["customers"] == [] and "deleted customers are not listed" in report["notes"]["customers"]
    assert report["team_status"] == "active" and report["team_member"]["active"] is True
    [account] = report["connect_accounts"]
    assert account["past_due"] and account["disabled_reason"] == "requirements.past_due"
    assert not any("API keys" in w or "duplicate" in w for w in report["warnings"])


async def test_unknown_email_is_absent_everywhere(sandbox):
    report = await resolve(make_settings(sandbox), "nobody@nowhere.example")
    assert report["customers"] == [] and report["connect_accounts"] == []
    assert report["team_status"] == "absent" and "team_member" not in report


async def test_connect_match_ignores_letter_case(sandbox):
    report = await resolve(make_settings(sandbox), "JANE@acme.com")
    assert [a["id"] for a in report["connect_accounts"]] == [FIXED_IDS["acct_jane"]]
    assert {c["match"] for c in report["customers"]} == {"case_variant"}


async def test_connect_scan_says_when_it_was_bounded(sandbox, monkeypatch):
    monkeypatch.setattr(identity, "ACCOUNT_PAGE_SIZE", 5)
    monkeypatch.setattr(identity, "MAX_ACCOUNT_PAGES", 2)
    report = await resolve(make_settings(sandbox), "priya@umbrella.com")
    assert "bounded" in report["notes"]["connect_accounts"] and "10" in report["notes"]["connect_accounts"]
    assert "newest 10" in warning(report, "connect:")


async def test_live_key_says_live_mode_was_searched(sandbox):
    report = await resolve(make_settings(sandbox, api_key="sk_live_sandbox"), "jane@acme.com")
    assert report["mode"] == "sandbox live"
    assert "live mode only" in warning(report, "mode:")


async def test_search_lag_hides_a_fresh_case_variant_and_says_so(sandbox_factory):
    with sandbox_factory(search_lag_s=600) as sb:
        loopback.post(
            f"{sb.base_url}/v1/customers",
            data={"email": "OMAR@globex.com"},
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        ).raise_for_status()
        report = await resolve(make_settings(sb), "omar@globex.com")
    assert [c["id"] for c in report["customers"]] == [FIXED_IDS["omar"]]  # the fresh variant is not indexed yet
    assert "lags" in report["notes"]["customers"]


async def test_invalid_email_is_refused_without_calls(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        before = sandbox.app.state.sandbox.requests
        for bad in ("", "not-an-email", "a@b c"):
            r = await client.call_tool("resolve_identity", {"email": bad})
            assert r.is_error, bad
        assert sandbox.app.state.sandbox.requests == before
