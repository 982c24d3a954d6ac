"""Sandbox fidelity: answers the sandbox gives exactly as Stripe documents them (issue 9).

Each test talks to a real sandbox over loopback HTTP and checks the state at the sandbox too, so a
rejected request is proven not to have changed anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, serve_in_thread
from stripe_identity_mcp.sandbox.app import PAYMENT_METHOD_TYPES
from stripe_identity_mcp.sandbox.seed import JANE_ID, JANE_PM_ID
from tests import loopback

from .conftest import client

FAST: dict[str, Any] = {"rate_limit": None, "live_rate_limit": None, "search_lag_s": 0.0}


def stripe_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["request-id"].startswith("req_")
    return r.json()["error"]  # type: ignore[no-any-return]


def arm(sb: SandboxHandle, **rule: Any) -> None:
    r = loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 200, r.text


def count(sb: SandboxHandle) -> int:
    return sb.sandbox.stores["test"].live_customer_count()  # type: ignore[no-any-return]


@pytest.fixture()
def limited() -> Iterator[SandboxHandle]:
    """A sandbox whose test-mode key gets 2 requests per second (the real token bucket)."""
    with serve_in_thread(SandboxConfig(rate_limit=2.0, live_rate_limit=None, search_lag_s=0.0)) as h:
        yield h


# ------------------------------------------------------------------ Stripe-Version


@pytest.mark.parametrize(
    "version",
    ["2019-2-19", "latest", "2023-02-30", "2999-01-01", "2010-12-31", "2018-11-21 accounts_upgrade=true", "2024-09-30.Acacia"],
)
def test_invalid_stripe_version_is_stripes_400(fresh: SandboxHandle, version: str) -> None:
    n0 = count(fresh)
    with client(fresh) as c:
        r = c.post("/v1/customers", data={"email": "v@example.com"}, headers={"Stripe-Version": version})
    e = stripe_error(r, 400)
    assert e["message"] == f"Invalid Stripe API version: {version}"
    assert e["type"] == "invalid_request_error" and "param" not in e and "code" not in e
    assert r.headers["stripe-version"] == "2023-08-16"  # answered in the account's version, not the bad one
    assert count(fresh) == n0  # nothing was created


@pytest.mark.parametrize(
    "version", ["2023-08-16", "2011-01-01", "2024-06-20", "2025-03-31.basil", "2024-09-30.acacia; feature_beta=v3"]
)
def test_valid_stripe_versions_are_accepted_and_echoed(sandbox: SandboxHandle, version: str) -> None:
    with client(sandbox) as c:
        r = c.get(f"/v1/customers/{JANE_ID}", headers={"Stripe-Version": version})
    assert r.status_code == 200 and r.headers["stripe-version"] == version


def test_api_key_is_checked_before_the_version(fresh: SandboxHandle) -> None:
    with client(fresh, key="sk_test_nope") as c:
        r = c.get("/v1/customers", headers={"Stripe-Version": "latest"})
    assert stripe_error(r, 401)["message"].startswith("Invalid API Key provided")


# ------------------------------------------------------------------ 429s: lock timeout vs rate limit


@pytest.mark.parametrize("kind", ["lock_timeout", "409"])
def test_lock_timeout_is_a_429_that_asks_for_a_retry(fresh: SandboxHandle, kind: str) -> None:
    arm(fresh, kind=kind, path="/v1/customers", method="POST")
    listed = loopback.get(f"{fresh.base_url}/_sandbox/faults").json()["rules"]
    assert [r["kind"] for r in listed] == ["lock_timeout"]  # "409" is stored under its Stripe name
    n0 = count(fresh)
    with client(fresh) as c:
        r = c.post("/v1/customers", data={"email": "lock@example.com"})
        again = c.post("/v1/customers", data={"email": "lock@example.com"})
    e = stripe_error(r, 429)
    assert e["code"] == "lock_timeout" and e["type"] == "invalid_request_error"
    assert e["message"].startswith("This object cannot be accessed right now because another API request")
    assert e["doc_url"] == "https://stripe.com/docs/error-codes/lock-timeout"
    assert r.headers["stripe-should-retry"] == "true" and "retry-after" not in r.headers
    assert count(fresh) == n0 + 1 and again.status_code == 200  # only the retry created the customer


def test_rate_limit_429_does_not_ask_for_a_retry(limited: SandboxHandle) -> None:
    n0 = count(limited)
    with client(limited) as c:
        answers = [c.post("/v1/customers", data={"email": "burst@example.com"}) for _ in range(6)]
    limited_answers = [r for r in answers if r.status_code == 429]
    assert limited_answers, [r.status_code for r in answers]
    for r in limited_answers:
        e = stripe_error(r, 429)
        assert e["code"] == "rate_limit" and e["type"] == "invalid_request_error"
        assert e["message"].startswith("Request rate limit exceeded.")
        assert "stripe-should-retry" not in r.headers and "retry-after" not in r.headers
    assert count(limited) == n0 + len(answers) - len(limited_answers)  # a 429 changed nothing


def test_injected_rate_limit_fault_looks_like_the_real_one(fresh: SandboxHandle) -> None:
    arm(fresh, kind="429", path="/v1/customers")
    with client(fresh) as c:
        r = c.get("/v1/customers")
    assert stripe_error(r, 429)["code"] == "rate_limit"
    assert "stripe-should-retry" not in r.headers and "retry-after" not in r.headers


# ------------------------------------------------------------------ expand[]=sources / tax_ids


def _empty_list(body: Any, url: str) -> None:
    assert body == {"object": "list", "data": [], "has_more": False, "url": url}


def test_expand_sources_and_tax_ids_on_retrieve_create_and_list(fresh: SandboxHandle) -> None:
    with client(fresh) as c:
        plain = c.get(f"/v1/customers/{JANE_ID}").json()
        expanded = c.get(f"/v1/customers/{JANE_ID}", params={"expand[]": ["sources", "tax_ids"]}).json()
        created = c.post("/v1/customers", data={"email": "exp@example.com", "expand[]": "tax_ids"}).json()
        listed = c.get("/v1/customers", params={"limit": 3, "expand[]": "data.sources"}).json()
        bad = c.get(f"/v1/customers/{JANE_ID}", params={"expand[]": "sources.data.owner"})
    # Since 2020-08-27 both lists are absent unless expanded
    assert "sources" not in plain and "tax_ids" not in plain
    _empty_list(expanded["sources"], f"/v1/customers/{JANE_ID}/sources")
    _empty_list(expanded["tax_ids"], f"/v1/customers/{JANE_ID}/tax_ids")
    assert expanded["email"] == plain["email"] == "jane@acme.com"
    _empty_list(created["tax_ids"], f"/v1/customers/{created['id']}/tax_ids")
    assert "sources" not in created and created["id"] in fresh.sandbox.stores["test"].customers
    assert len(listed["data"]) == 3
    for cus in listed["data"]:
        _empty_list(cus["sources"], f"/v1/customers/{cus['id']}/sources")
        assert "tax_ids" not in cus
    assert stripe_error(bad, 400)["param"] == "expand"


# ------------------------------------------------------------------ payment_methods?type=


@pytest.mark.parametrize("bad", ["bogus", "Card", "cards"])
def test_payment_method_type_outside_the_enum_is_a_400_with_param(sandbox: SandboxHandle, bad: str) -> None:
    with client(sandbox) as c:
        r = c.get(f"/v1/customers/{JANE_ID}/payment_methods", params={"type": bad})
    e = stripe_error(r, 400)
    assert e["param"] == "type" and e["type"] == "invalid_request_error" and e["code"] == "parameter_invalid"
    assert e["message"] == "Invalid type: must be one of " + ", ".join(PAYMENT_METHOD_TYPES[:-1]) + ", or zip"
    assert bad not in e["message"].split(": ", 1)[1].split(", ")


def test_payment_method_type_in_the_enum_filters(sandbox: SandboxHandle) -> None:
    with client(sandbox) as c:
        cards = c.get(f"/v1/customers/{JANE_ID}/payment_methods", params={"type": "card"}).json()
        sepa = c.get(f"/v1/customers/{JANE_ID}/payment_methods", params={"type": "sepa_debit"})
        every = c.get(f"/v1/customers/{JANE_ID}/payment_methods").json()
    assert [p["id"] for p in cards["data"]] == [p["id"] for p in every["data"]] and JANE_PM_ID in [p["id"] for p in every["data"]]
    assert sepa.status_code == 200 and sepa.json()["data"] == []
    assert len(PAYMENT_METHOD_TYPES) == 31 and "card" in PAYMENT_METHOD_TYPES  # Stripe's OpenAPI enum


# ------------------------------------------------------------------ SCIM: deactivation deletes (Stripe's guide)

SCIM_TOKEN = "scim_sandbox"
SCIM_PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def scim(sb: SandboxHandle) -> httpx.Client:
    headers = {"Authorization": f"Bearer {SCIM_TOKEN}", "Content-Type": "application/scim+json"}
    return loopback.Client(base_url=sb.scim_base, headers=headers, timeout=10)


def by_email(c: httpx.Client, email: str) -> list[dict[str, Any]]:
    r = c.get("/Users", params={"filter": f'userName eq "{email}"'})
    assert r.status_code == 200, r.text
    return r.json()["Resources"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": False},
        {"op": "Replace", "value": {"active": "False"}},  # Entra's casing and string boolean
    ],
    ids=["path-form", "value-form"],
)
def test_scim_deactivation_deletes_the_member_by_default(fresh: SandboxHandle, operation: dict[str, Any]) -> None:
    from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS

    omar = SCIM_FIXED_IDS["omar@globex.com"]
    total = len(fresh.sandbox.scim.users)
    with scim(fresh) as c:
        off = c.patch(f"/Users/{omar}", json={"schemas": [SCIM_PATCH], "Operations": [operation]})
        gone = c.get(f"/Users/{omar}")
        listed = by_email(c, "omar@globex.com")
        again = c.post("/Users", json={"schemas": [SCIM_USER], "userName": "omar@globex.com"})
    assert off.status_code == 204 and off.content == b""
    assert gone.status_code == 404 and listed == []
    assert omar not in fresh.sandbox.scim.users and len(fresh.sandbox.scim.users) == total  # -1, then +1 below
    assert again.status_code == 201 and again.json()["id"] != omar  # re-provisioning makes a new member


def test_default_seed_has_no_inactive_members_and_the_keep_option_has_them() -> None:
    from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS

    with serve_in_thread(SandboxConfig(**FAST)) as default, serve_in_thread(SandboxConfig(**FAST, scim_keep_inactive=True)) as keep:
        with scim(default) as c:
            assert by_email(c, "jane@acme.com") == []
            assert c.get("/Users", params={"filter": "active eq false"}).json()["totalResults"] == 0
        with scim(keep) as c:
            (jane,) = by_email(c, "jane@acme.com")
            inactive = c.get("/Users", params={"filter": "active eq false", "count": 100}).json()
        kept, deleted = keep.sandbox.scim.users, default.sandbox.scim.users
    assert jane["id"] == SCIM_FIXED_IDS["jane@acme.com"] and jane["active"] is False
    assert {u["id"] for u in inactive["Resources"]} == {i for i, u in kept.items() if u["active"] is False}
    # The default seed is the keep seed minus its inactive members, with the same ids and content
    assert deleted == {i: u for i, u in kept.items() if u["active"] is True} and len(kept) > len(deleted) > 0


def test_keep_inactive_option_keeps_a_deactivated_member() -> None:
    from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS

    omar = SCIM_FIXED_IDS["omar@globex.com"]
    with serve_in_thread(SandboxConfig(**FAST, scim_keep_inactive=True)) as keep, scim(keep) as c:
        off = c.patch(f"/Users/{omar}", json={"schemas": [SCIM_PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]})
        assert off.status_code == 200 and off.json()["active"] is False
        assert keep.sandbox.scim.users[omar]["active"] is False


def test_scim_put_with_active_false_deletes_too(fresh: SandboxHandle) -> None:
    from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS

    priya = SCIM_FIXED_IDS["priya@umbrella.com"]
    with scim(fresh) as c:
        renamed = c.put(f"/Users/{priya}", json={"schemas": [SCIM_USER], "userName": "priya@umbrella.com", "displayName": "P. Raman"})
        off = c.put(f"/Users/{priya}", json={"schemas": [SCIM_USER], "userName": "priya@umbrella.com", "active": False})
        gone = c.get(f"/Users/{priya}")
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "P. Raman"  # other PUTs update
    assert off.status_code == 204 and off.content == b"" and gone.status_code == 404
    assert priya not in fresh.sandbox.scim.users


@pytest.mark.anyio
async def test_through_mcp_the_default_team_has_no_inactive_members(fresh: SandboxHandle) -> None:
    from tests.conftest import make_settings, mcp_client

    async with mcp_client(make_settings(fresh)) as mcp:
        listed = await mcp.call_tool("list_team_members", {"count": 100})
        jane = await mcp.call_tool("list_team_members", {"email": "jane@acme.com"})
    assert not listed.is_error and not jane.is_error, listed.content[0].text
    members = listed.structured_content["members"]
    assert members and all(m["active"] is True for m in members)
    assert {m["id"] for m in members} == set(fresh.sandbox.scim.users)
    assert jane.structured_content["total"] == 0 and jane.structured_content["members"] == []
