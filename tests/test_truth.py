"""Every answer true: writes report only proven outcomes, through a fault proxy of our own.

Server → FaultProxy (tests/faultproxy.py) → sandbox. The proxy answers what a misbehaving world
answers — a 302 to a login page, HTML, `{}`, a lost answer after the upstream committed — and every
test checks the state at the sandbox, not only our answer. Each one failed on the code before this
change (the tool answered success, or "nothing was deleted", while the sandbox said otherwise).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client
from tests.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.anyio

JANE = SCIM_FIXED_IDS["jane@acme.com"]
OMAR = SCIM_FIXED_IDS["omar@globex.com"]
LOGIN = {"Location": "https://login.example.com/sso?next=/scim"}
HTML = "<html><body>Please sign in</body></html>"


def via(proxy: FaultProxy, sb: Any, tmp_path: Any, **overrides: Any) -> Any:
    """Settings whose Stripe and SCIM traffic goes through the proxy."""
    values: dict[str, Any] = {
        "api_base": proxy.url,
        "scim_base": proxy.url + "/scim/v2",
        "allow_writes": True,
        "audit_log": tmp_path / "audit.jsonl",
        "max_retries": 2,
    }
    return make_settings(sb, **(values | overrides))


def audit_lines(tmp_path: Any) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def scim_user(sb: Any, uid: str) -> dict[str, Any] | None:
    return sb.sandbox.scim.users.get(uid)  # type: ignore[no-any-return]


def stripe_customer(sb: Any, cid: str) -> dict[str, Any] | None:
    return sb.sandbox.stores["test"].customers.get(cid)  # type: ignore[no-any-return]


def stripe_post(sb: Any, path: str, data: dict[str, Any]) -> dict[str, Any]:
    r = loopback.post(sb.base_url + path, data=data, headers={"Authorization": f"Bearer {SANDBOX_KEY}"})
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


# --- 1. no success without proof ----------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["delete_team_member", "deactivate_team_member"])
@pytest.mark.parametrize("answer", ["redirect", "empty-object", "html"])
async def test_member_removal_answered_without_proof_is_not_success(sandbox, tmp_path, tool, answer):
    method = "DELETE" if tool == "delete_team_member" else "PATCH"
    status, headers, body = {
        "redirect": (302, LOGIN, ""),
        "empty-object": (200, {"Content-Type": "application/scim+json"}, "{}"),
        "html": (200, {"Content-Type": "text/html"}, HTML),
    }[answer]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule(method, rf"/scim/v2/Users/{OMAR}$", status=status, headers=headers, body=body, count=5))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool(tool, {"member_id": OMAR, "confirm": OMAR})
    text = r.content[0].text
    assert scim_user(sandbox, OMAR) is not None and scim_user(sandbox, OMAR)["active"] is True  # nothing happened
    assert r.is_error, text
    assert "revoked" not in text.replace("NOT revoked", "")
    assert "did NOT take effect" in text and "still ACTIVE" in text, text
    (line,) = audit_lines(tmp_path)
    assert line["outcome"].startswith("error: not done"), line


async def test_removal_committed_but_answered_with_redirect_is_reported_as_done(sandbox, tmp_path):
    """The proxy forwards (the sandbox deletes) and then answers 302: the read-back proves it is gone."""
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", rf"/scim/v2/Users/{OMAR}$", action="after", status=302, headers=LOGIN))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("delete_team_member", {"member_id": OMAR, "confirm": OMAR})
    assert scim_user(sandbox, OMAR) is None
    assert not r.is_error, r.content[0].text
    assert any("reading it back shows the member no longer exists" in w for w in r.structured_content["warnings"])
    assert audit_lines(tmp_path)[0]["outcome"].startswith("ok (answer was RedirectError")


@pytest.mark.parametrize(
    "status,headers,body",
    [(302, LOGIN, ""), (200, {"Content-Type": "application/scim+json"}, "{}"), (200, {"Content-Type": "text/html"}, HTML)],
)
async def test_member_list_of_the_wrong_shape_is_an_error_not_an_empty_list(sandbox, tmp_path, status, headers, body):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", r"/scim/v2/Users$", status=status, headers=headers, body=body, count=20))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            listed = await client.call_tool("list_team_members", {})
            who = await client.call_tool("resolve_identity", {"email": "jane@acme.com"})
    assert listed.is_error and listed.structured_content is None, listed.content[0].text
    report = who.structured_content
    assert report["team_status"] == "error", report  # not "absent": we could not tell
    assert report["notes"]["team_member"].startswith("error:")


async def test_customer_delete_answered_with_redirect_reports_not_deleted(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", rf"/v1/customers/{cid}$", status=302, headers=LOGIN, count=5))
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("delete_customer", {"customer_id": cid, "confirm": cid})
    assert not stripe_customer(sandbox, cid)["deleted"]
    assert r.is_error and "did NOT take effect" in r.content[0].text and "still EXISTS" in r.content[0].text


async def test_customer_delete_answered_with_empty_object_is_verified_by_reading_back(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", rf"/v1/customers/{cid}$", action="after", status=200, body="{}",
                       headers={"Content-Type": "application/json"}))  # fmt: skip
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("delete_customer", {"customer_id": cid, "confirm": cid})
    assert stripe_customer(sandbox, cid)["deleted"]
    assert not r.is_error, r.content[0].text
    assert r.structured_content["deleted"] is True


async def test_update_answered_with_html_is_not_reported_as_changed(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", rf"/v1/customers/{cid}$", status=200, body=HTML, headers={"Content-Type": "text/html"}, count=5))
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("update_customer", {"customer_id": cid, "name": "Renamed"})
    assert stripe_customer(sandbox, cid)["name"] != "Renamed"
    assert r.is_error and "did NOT take effect" in r.content[0].text, r.content[0].text


async def test_provision_answered_with_redirect_is_not_reported_as_provisioned(sandbox, tmp_path):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/scim/v2/Users$", status=302, headers=LOGIN, count=5))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("provision_team_member", {"email": "new.hire@example.com"})
    assert sandbox.sandbox.scim.by_email("new.hire@example.com") is None
    assert r.is_error and "did NOT take effect" in r.content[0].text


# --- 2. lost answers reported truthfully --------------------------------------------------------------


async def test_lost_customer_delete_answer_reports_deleted(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", rf"/v1/customers/{cid}$", action="drop_after"))
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("delete_customer", {"customer_id": cid, "confirm": cid})
        assert proxy.count("DELETE", cid) == 2  # the first answer was lost; the retry met 404
    assert stripe_customer(sandbox, cid)["deleted"]
    assert not r.is_error, r.content[0].text  # not "Nothing was deleted"
    assert "first answer was lost" in r.structured_content["note"]
    assert audit_lines(tmp_path)[0]["outcome"] == "ok (first answer lost; verified by reading it back)"


async def test_lost_detach_answer_reports_detached(sandbox, tmp_path):
    cid = FIXED_IDS["jane"]
    pm = stripe_post(sandbox, "/v1/payment_methods/pm_card_mastercard/attach", {"customer": cid})["id"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", rf"/v1/payment_methods/{pm}/detach$", action="drop_after"))
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("detach_payment_method", {"payment_method": pm, "confirm": pm})
        assert proxy.count("POST", "/detach") == 2
    assert sandbox.sandbox.stores["test"].pms[pm].get("customer") is None
    assert not r.is_error, r.content[0].text
    assert r.structured_content["customer"] == cid


async def test_lost_member_delete_answer_reports_deleted(sandbox, tmp_path):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", rf"/scim/v2/Users/{OMAR}$", action="drop_after"))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("delete_team_member", {"member_id": OMAR, "confirm": OMAR})
    assert scim_user(sandbox, OMAR) is None
    assert not r.is_error, r.content[0].text
    assert any("first answer was lost" in w for w in r.structured_content["warnings"])
    assert audit_lines(tmp_path)[0]["outcome"] == "ok (first answer lost; verified by reading it back)"


async def test_recreating_a_deleted_customer_creates_a_new_one(empty_sandbox, tmp_path):
    args = {"email": "again@example.com", "name": "Again"}
    settings = make_settings(empty_sandbox, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl")
    async with mcp_client(settings) as client:
        first = await client.call_tool("create_customer", args)
        old = first.structured_content["customer"]["id"]
        gone = await client.call_tool("delete_customer", {"customer_id": old, "confirm": old})
        again = await client.call_tool("create_customer", args)
    assert not gone.is_error and not again.is_error, again.content[0].text
    new = again.structured_content["customer"]["id"]
    assert new != old and again.structured_content.get("replayed") is None
    assert stripe_customer(empty_sandbox, old)["deleted"] and not stripe_customer(empty_sandbox, new)["deleted"]


async def test_provision_of_existing_member_after_a_429_is_the_uniqueness_refusal(sandbox, tmp_path):
    before = len(sandbox.sandbox.scim.users)
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/scim/v2/Users$", status=429, headers={"Retry-After": "0"},
                       body='{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429"}'))  # fmt: skip
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            # omar, not jane: jane exists only under scim_keep_inactive since deactivation deletes by default.
            r = await client.call_tool("provision_team_member", {"email": "omar@globex.com"})
        assert proxy.count("POST", "/Users$") == 2
    assert r.is_error, r.content[0].text  # not "recovered"
    assert "already exists" in r.content[0].text
    assert len(sandbox.sandbox.scim.users) == before


# --- 3. no duplicate through a race --------------------------------------------------------------------


async def test_ten_concurrent_creates_with_one_email_make_one_customer(empty_sandbox, tmp_path):
    settings = make_settings(empty_sandbox, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl")
    results: list[Any] = []
    async with mcp_client(settings) as client:

        async def create(i: int) -> None:
            results.append(await client.call_tool("create_customer", {"email": "race@example.com", "name": f"R{i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(create, i)
    store = empty_sandbox.sandbox.stores["test"].customers.values()
    made = [c for c in store if c.get("email") == "race@example.com" and not c.get("deleted")]
    assert len(made) == 1
    ok = [r for r in results if not r.is_error]
    assert len(ok) == 1 and ok[0].structured_content["customer"]["id"] == made[0]["id"]
    assert all("already exists" in r.content[0].text for r in results if r.is_error)


async def test_two_servers_racing_one_email_make_one_customer(empty_sandbox, tmp_path):
    """Two servers (separate processes' state: no shared lock) create one email with other details at
    once; both pre-flights see nothing, the creates are slowed so both are in flight. The idempotency
    key derived from the normalised email lets Stripe make one customer; the other call says so."""
    with FaultProxy(empty_sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/v1/customers$", action="delay", delay_s=0.3, count=2))
        settings = via(proxy, empty_sandbox, tmp_path, scim_token=None)
        results: list[Any] = []
        async with mcp_client(settings) as a, mcp_client(settings) as b:

            async def create(client: Any, name: str) -> None:
                results.append(await client.call_tool("create_customer", {"email": "twice@example.com", "name": name}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(create, a, "A")
                tg.start_soon(create, b, "B")
    store = empty_sandbox.sandbox.stores["test"].customers.values()
    made = [c for c in store if c.get("email") == "twice@example.com" and not c.get("deleted")]
    assert len(made) == 1
    assert sorted(r.is_error for r in results) == [False, True]
    refused = next(r for r in results if r.is_error).content[0].text
    assert "already exists" in refused or "moments ago" in refused, refused


# --- 6. every destructive path confirmed, every attempt audited ---------------------------------------


async def test_unsetting_every_metadata_key_needs_confirmation(empty_sandbox, tmp_path):
    cid = stripe_post(empty_sandbox, "/v1/customers", {"email": "m@example.com", "metadata[a]": "1", "metadata[b]": "2"})["id"]
    settings = make_settings(empty_sandbox, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl")
    async with mcp_client(settings) as client:
        refused = await client.call_tool("update_customer", {"customer_id": cid, "metadata_unset": ["a", "b"]})
        assert stripe_customer(empty_sandbox, cid)["metadata"] == {"a": "1", "b": "2"}
        partial = await client.call_tool("update_customer", {"customer_id": cid, "metadata_unset": ["a"]})
        done = await client.call_tool("update_customer", {"customer_id": cid, "metadata_unset": ["b"], "confirm": cid})
    assert refused.is_error and f"confirm='{cid}'" in refused.content[0].text
    assert not partial.is_error and not done.is_error, done.content[0].text
    assert stripe_customer(empty_sandbox, cid)["metadata"] == {}
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["refused", "ok", "ok"]


@pytest.mark.parametrize(
    "tool,args",
    [
        ("delete_customer", {"customer_id": "not-an-id", "confirm": "not-an-id"}),
        ("create_customer", {"email": "no-at-sign"}),
        ("provision_team_member", {"email": "x@y.z", "given_name": 5}),
    ],
)
async def test_argument_validation_failures_of_write_tools_are_audited(sandbox, tmp_path, tool, args):
    settings = make_settings(sandbox, allow_writes=True, audit_log=tmp_path / "audit.jsonl")
    async with mcp_client(settings) as client:
        r = await client.call_tool(tool, args)
        read = await client.call_tool("get_customer", {"customer_id": "bad"})
    assert r.is_error and read.is_error
    (line,) = audit_lines(tmp_path)  # the write attempt, and not the read
    assert line["tool"] == tool and line["outcome"].startswith("refused: invalid arguments")


# --- 7. honest details -----------------------------------------------------------------------------------


async def test_case_variants_are_shown_with_the_same_fields_as_exact_matches(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        who = await client.call_tool("resolve_identity", {"email": "jane@acme.com"})
        found = await client.call_tool("find_customers_by_email", {"email": "jane@acme.com"})
    exact, variant = who.structured_content["customers"]
    assert (exact["match"], variant["match"]) == ("exact", "case_variant")
    assert "subscriptions" in variant  # expanded like the exact pass (it was missing)
    counts = found.structured_content
    assert (counts["exact_count"], counts["record_count"]) == (1, 2)  # every record of this person counted


async def test_create_answered_with_a_redirect_after_committing_is_read_back(empty_sandbox, tmp_path):
    with FaultProxy(empty_sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/v1/customers$", action="after", status=302, headers=LOGIN))
        async with mcp_client(via(proxy, empty_sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("create_customer", {"email": "made@example.com", "name": "Made"})
    made = [c for c in empty_sandbox.sandbox.stores["test"].customers.values() if c.get("email") == "made@example.com"]
    assert len(made) == 1
    assert not r.is_error, r.content[0].text
    assert r.structured_content["customer"]["id"] == made[0]["id"]
    assert "reading it back shows" in r.structured_content["note"]


async def test_create_answered_with_a_redirect_without_committing_is_not_success(empty_sandbox, tmp_path):
    with FaultProxy(empty_sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/v1/customers$", status=302, headers=LOGIN))
        async with mcp_client(via(proxy, empty_sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("create_customer", {"email": "unmade@example.com"})
    assert not empty_sandbox.sandbox.stores["test"].customers
    assert r.is_error and "did NOT take effect" in r.content[0].text, r.content[0].text


async def test_attach_whose_make_default_fails_says_the_card_is_attached(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", rf"/v1/customers/{cid}$", status=400, headers={"Content-Type": "application/json"},
                       body='{"error":{"type":"invalid_request_error","message":"nope"}}'))  # fmt: skip
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None)) as client:
            r = await client.call_tool("attach_payment_method", {"customer_id": cid, "payment_method": "pm_card_visa"})
    text = r.content[0].text
    assert r.is_error and "IS attached" in text and "invoice default failed" in text, text
    attached = [p for p in sandbox.sandbox.stores["test"].pms.values() if p.get("customer") == cid]
    assert attached  # the attach happened at the sandbox
    (line,) = audit_lines(tmp_path)
    assert line["outcome"] == "partial: attached, default not set"


async def test_a_lost_answer_that_reads_back_unchanged_is_unknown_not_not_done(sandbox, tmp_path):
    """A timed-out write may still be running upstream: the read-back is a snapshot, not a verdict."""
    cid = FIXED_IDS["omar"]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", rf"/v1/customers/{cid}$", action="drop_before", count=10))
        async with mcp_client(via(proxy, sandbox, tmp_path, scim_token=None, max_retries=1)) as client:
            r = await client.call_tool("update_customer", {"customer_id": cid, "name": "Maybe"})
    text = r.content[0].text
    assert r.is_error and "UNKNOWN" in text and "may still complete" in text, text
    assert audit_lines(tmp_path)[0]["outcome"].startswith("unknown: answer lost")


async def test_provision_of_an_existing_member_after_a_lost_attempt_is_not_recovered(sandbox, tmp_path):
    """Attempt 1 answered 502 (it may have committed), attempt 2 met 409: but the member existed before
    this call began (meta.created), so it is the uniqueness refusal, not our own lost create."""
    before = len(sandbox.sandbox.scim.users)
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/scim/v2/Users$", status=502, body="bad gateway"))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("provision_team_member", {"email": "omar@globex.com"})
        assert proxy.count("POST", "/Users$") == 2
    assert r.is_error and "already exists" in r.content[0].text, r.content[0].text
    assert len(sandbox.sandbox.scim.users) == before


# --- portal links: only a session Stripe answered with, never one made up or lost ---------------------

PORTAL_ARGS = {"customer_id": FIXED_IDS["jane"], "return_url": "https://acme.example/account"}


def portal_sessions(sb: Any) -> list[dict[str, Any]]:
    """The portal sessions the sandbox created (each POST it ran is kept under its idempotency key)."""
    bodies = [json.loads(saved[2]) for saved in sb.sandbox.idem.values()]
    return [b for b in bodies if b.get("object") == "billing_portal.session"]


@pytest.mark.parametrize("answer", ["redirect", "empty-object", "html"])
async def test_portal_session_answered_without_proof_hands_out_no_link(sandbox, tmp_path, answer):
    """The sandbox makes the session, the proxy answers a 302 / `{}` / HTML instead (every attempt):
    no link is given out, and none of the sessions Stripe made appears in the answer."""
    status, headers, body = {
        "redirect": (302, {"Location": "https://login.example.com/sso"}, ""),
        "empty-object": (200, {"Content-Type": "application/json"}, "{}"),
        "html": (200, {"Content-Type": "text/html"}, HTML),
    }[answer]
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/v1/billing_portal/sessions$", action="after", status=status, headers=headers,
                       body=body, count=5))  # fmt: skip
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("create_portal_session", PORTAL_ARGS)
    text = r.content[0].text
    made = portal_sessions(sandbox)
    assert made, "the upstream committed (the fault answered after it)"
    assert r.is_error, text
    assert "billing.stripe.com" not in text and not any(s["url"] in text for s in made)
    (line,) = audit_lines(tmp_path)
    assert not line["outcome"].startswith("ok"), line


async def test_lost_portal_session_answer_is_retried_into_the_session_stripe_made(sandbox, tmp_path):
    """The first answer is lost after the sandbox made the session: the retry (same idempotency key)
    replays it, so the link handed out is the one session that exists."""
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("POST", r"/v1/billing_portal/sessions$", action="drop_after"))
        async with mcp_client(via(proxy, sandbox, tmp_path)) as client:
            r = await client.call_tool("create_portal_session", PORTAL_ARGS)
    assert not r.is_error, r.content[0].text
    (made,) = portal_sessions(sandbox)
    assert r.structured_content["url"] == made["url"] and r.structured_content["id"] == made["id"]
