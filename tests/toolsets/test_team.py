"""Team toolset (Dashboard team members over SCIM) through a real MCP client against the sandbox.

The sandbox's SCIM store (`sb.sandbox.scim.users`) proves what did and did not change.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from stripe_identity_mcp.toolsets import team
from tests import loopback
from tests.conftest import SCIM_TOKEN, elicitation, make_settings, mcp_client, running_sandbox

pytestmark = pytest.mark.anyio

READ_TOOLS = {td.name for td in team.TOOLSET.read}
WRITE_TOOLS = {td.name for td in team.TOOLSET.write}
ANSWERS = [None, "accept", "decline", "cancel"]  # None: the client cannot elicit
CONFIRMS = ["absent", "wrong", "right_email", "right_id"]
API_KEYS = "does NOT revoke API keys"
JANE = SCIM_FIXED_IDS["jane@acme.com"]
OMAR = SCIM_FIXED_IDS["omar@globex.com"]


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """Seeded sandbox that keeps deactivated SCIM members (the seeded inactive jane@acme.com, deactivated members staying visible). They exist only under
    scim_keep_inactive: by default the sandbox deletes on deactivation, as Stripe does."""
    with running_sandbox(scim_keep_inactive=True) as handle:
        yield handle


def users(sb: Any) -> dict[str, dict[str, Any]]:
    return sb.sandbox.scim.users  # type: ignore[no-any-return]


def new_member(sb: Any, email: str) -> str:
    r = loopback.post(
        f"{sb.scim_base}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "displayName": "T"},
        headers={"Authorization": f"Bearer {SCIM_TOKEN}", "Content-Type": "application/scim+json"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def writes(sb: Any, tmp_path: Any, **overrides: Any) -> Any:
    return make_settings(sb, allow_writes=True, audit_log=tmp_path / "audit.jsonl", **overrides)


def audit_lines(tmp_path: Any) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- registration ---------------------------------------------------------------------------------


async def test_team_tools_listed_with_honest_annotations(sandbox, tmp_path, protocol_mode):
    async with mcp_client(writes(sandbox, tmp_path), protocol_mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert READ_TOOLS | WRITE_TOOLS <= set(tools)
    for name in READ_TOOLS:
        a = tools[name].annotations
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (True, False, True, True)
    provision = tools["provision_team_member"].annotations
    assert (provision.read_only_hint, provision.destructive_hint, provision.idempotent_hint) == (False, False, False)
    for name in ("deactivate_team_member", "delete_team_member", "remove_team_member_from_group"):
        a = tools[name].annotations
        assert (a.read_only_hint, a.destructive_hint) == (False, True), name
        assert "confirm" in tools[name].input_schema["properties"]
        assert "gate" not in tools[name].input_schema["properties"]  # resolved, never model-settable
    for name in READ_TOOLS | WRITE_TOOLS:
        assert tools[name].output_schema is not None, name


async def test_read_only_default_has_only_the_read_team_tools(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert READ_TOOLS <= names and not (WRITE_TOOLS & names)


async def test_without_scim_token_team_tools_absent_and_describe_access_says_why(sandbox, protocol_mode):
    settings = make_settings(sandbox, scim_token=None, allow_writes=True)
    async with mcp_client(settings, protocol_mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        access = (await client.call_tool("describe_access", {})).structured_content
    assert not ((READ_TOOLS | WRITE_TOOLS) & names)
    assert "team" not in access["toolsets"] and access["scim_configured"] is False
    assert "STRIPE_SCIM_TOKEN" in access["scim_note"]


# --- reads ------------------------------------------------------------------------------------------


async def test_list_pages_through_every_member(sandbox):
    seen: list[str] = []
    start, totals = 1, set()
    async with mcp_client(make_settings(sandbox)) as client:
        for _ in range(20):
            r = await client.call_tool("list_team_members", {"start_index": start, "count": 5})
            assert not r.is_error, r.content[0].text
            page = r.structured_content
            assert len(page["members"]) <= 5 and page["start_index"] == start
            totals.add(page["total"])
            seen += [m["id"] for m in page["members"]]
            if page.get("next_start_index") is None:
                break
            start = page["next_start_index"]
    assert len(seen) == len(set(seen))  # no member twice across pages
    assert set(seen) == set(users(sandbox)) and totals == {len(users(sandbox))}


async def test_compact_member_fields_and_email_filter(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        r = await client.call_tool("list_team_members", {"email": "jane@acme.com"})
    assert not r.is_error, r.content[0].text
    assert r.structured_content["total"] == 1
    (jane,) = r.structured_content["members"]
    assert set(jane) == {"id", "email", "display_name", "active", "created", "groups"}  # groups: issue 15
    assert jane == {**jane, "id": JANE, "email": "jane@acme.com", "display_name": "Jane Doe", "active": False}
    assert [g["name"] for g in jane["groups"]] == ["Support", "Admins"]
    assert jane["created"].endswith("Z")


async def test_email_filter_escapes_quotes_and_finds_nothing_for_strangers(sandbox):
    odd = new_member(sandbox, 'o"brien\\x@example.com')
    async with mcp_client(make_settings(sandbox)) as client:
        found = await client.call_tool("list_team_members", {"email": 'o"brien\\x@example.com'})
        none = await client.call_tool("list_team_members", {"email": "nobody@example.com"})
    assert [m["id"] for m in found.structured_content["members"]] == [odd]
    assert none.structured_content["members"] == [] and none.structured_content["total"] == 0


async def test_active_filter_pages_over_the_filtered_list(sandbox):
    expected_inactive = {uid for uid, u in users(sandbox).items() if u.get("active") is False}
    expected_active = set(users(sandbox)) - expected_inactive
    assert JANE in expected_inactive and OMAR in expected_active
    async with mcp_client(make_settings(sandbox)) as client:
        got: dict[bool, list[str]] = {}
        for active in (True, False):
            start, ids = 1, []
            for _ in range(20):
                page = (await client.call_tool(
                    "list_team_members", {"active": active, "start_index": start, "count": 2}
                )).structured_content
                assert all(m["active"] is active for m in page["members"])
                ids += [m["id"] for m in page["members"]]
                if page.get("next_start_index") is None:
                    break
                start = page["next_start_index"]
            got[active] = ids
    assert set(got[True]) == expected_active and len(got[True]) == len(expected_active)
    assert set(got[False]) == expected_inactive and len(got[False]) == len(expected_inactive)


async def test_get_member_by_id_or_email_exactly_one(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        by_id = await client.call_tool("get_team_member", {"member_id": OMAR})
        by_email = await client.call_tool("get_team_member", {"email": "omar@globex.com"})
        jane = await client.call_tool("get_team_member", {"email": "jane@acme.com"})
        both = await client.call_tool("get_team_member", {"member_id": OMAR, "email": "omar@globex.com"})
        neither = await client.call_tool("get_team_member", {})
    assert by_id.structured_content == by_email.structured_content
    assert by_id.structured_content["member"]["email"] == "omar@globex.com"
    assert by_id.structured_content["member"]["active"] is True
    assert jane.structured_content["member"]["active"] is False
    assert any("API keys" in w for w in jane.structured_content["warnings"])
    for r in (both, neither):
        assert r.is_error and "exactly one of member_id or email" in r.content[0].text


async def test_unknown_member_is_a_clear_404(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        by_id = await client.call_tool("get_team_member", {"member_id": "no-such-member"})
        by_email = await client.call_tool("get_team_member", {"email": "ghost@example.com"})
        empty = await client.call_tool("get_team_member", {"member_id": " "})
    assert empty.is_error and "member_id must not be empty" in empty.content[0].text
    assert by_id.is_error and "no team member with id no-such-member" in by_id.content[0].text
    assert "status=404" in by_id.content[0].text
    assert by_email.is_error and "no team member with email ghost@example.com" in by_email.content[0].text


async def test_bad_scim_token_is_a_clear_401_without_the_token(sandbox, tmp_path):
    settings = writes(sandbox, tmp_path, scim_token="scim_wrong_token_123")
    before = dict(users(sandbox))
    async with mcp_client(settings) as client:
        listed = await client.call_tool("list_team_members", {})
        got = await client.call_tool("get_team_member", {"member_id": OMAR})
        made = await client.call_tool("provision_team_member", {"email": "new-hire@example.com"})
    for r in (listed, got, made):
        text = r.content[0].text
        assert r.is_error and "SCIM token rejected" in text and "status=401" in text, text
        assert "scim_wrong_token_123" not in text
    assert users(sandbox).keys() == before.keys()


# --- provisioning -----------------------------------------------------------------------------------


async def test_provisioned_member_appears_in_the_list(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool(
            "provision_team_member", {"email": "new-hire@example.com", "given_name": "New", "family_name": "Hire"}
        )
        assert not r.is_error, r.content[0].text
        member = r.structured_content["member"]
        listed = await client.call_tool("list_team_members", {"email": "new-hire@example.com"})
        everyone = await client.call_tool("list_team_members", {"count": 100})
    assert member["email"] == "new-hire@example.com" and member["active"] is True
    assert member["display_name"] == "New Hire"
    assert "first SSO sign-in" in r.structured_content["note"]
    assert [m["id"] for m in listed.structured_content["members"]] == [member["id"]]
    assert member["id"] in {m["id"] for m in everyone.structured_content["members"]}
    stored = users(sandbox)[member["id"]]
    assert stored["userName"] == "new-hire@example.com"
    assert stored["name"] == {"givenName": "New", "familyName": "Hire"}
    (line,) = audit_lines(tmp_path)
    assert (line["tool"], line["outcome"], line["target"]) == ("provision_team_member", "ok", member["id"])


async def test_duplicate_username_is_a_409_and_creates_nothing(sandbox, tmp_path):
    before = len(users(sandbox))
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("provision_team_member", {"email": "omar@globex.com"})
        variant = await client.call_tool("provision_team_member", {"email": "Omar@Globex.com"})
    for result in (r, variant):
        text = result.content[0].text
        assert result.is_error and "a member with that email already exists" in text, text
        assert "status=409" in text and "scimType=uniqueness" in text
    assert len(users(sandbox)) == before
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["error: 409/scim_error/uniqueness"] * 2


async def test_role_is_refused_with_the_saml_explanation(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("provision_team_member", {"email": "admin-wannabe@example.com", "role": "admin"})
    text = r.content[0].text
    # Issue 15: roles are no longer "never SCIM" (a synced group may be mapped to roles in the Dashboard).
    assert r.is_error and "SAML attribute statements" in text and "cannot be set as a SCIM attribute" in text
    assert "mapping of a SCIM-synced group to roles" in text and "not visible over SCIM" in text
    assert "no permissions until their first SSO sign-in" in text and "Nothing was provisioned" in text
    assert sandbox.sandbox.scim.by_email("admin-wannabe@example.com") is None
    (line,) = audit_lines(tmp_path)
    assert line["outcome"] == "refused" and line["args"]["role"] == "admin"


async def test_card_number_in_a_name_is_refused(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool(
            "provision_team_member", {"email": "card@example.com", "display_name": "4242 4242 4242 4242"}
        )
    assert r.is_error and "display_name" in r.content[0].text and "card number" in r.content[0].text
    assert sandbox.sandbox.scim.by_email("card@example.com") is None
    assert "4242 4242 4242 4242" not in (tmp_path / "audit.jsonl").read_text()


# --- deactivation and deletion ---------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["deactivate_team_member", "delete_team_member"])
async def test_removal_confirmation_matrix(sandbox, tmp_path, protocol_mode, tool):
    settings = writes(sandbox, tmp_path)
    for answer, confirm in itertools.product(ANSWERS, CONFIRMS):
        email = f"m-{tool[:3]}-{answer}-{confirm}-{protocol_mode}@example.com"
        uid = new_member(sandbox, email)
        args: dict[str, Any] = {"email": email}
        if confirm == "wrong":
            args["confirm"] = "someone-else@example.com"
        elif confirm == "right_email":
            args["confirm"] = email
        elif confirm == "right_id":
            args["confirm"] = uid
        asked: list[str] = []
        async with mcp_client(settings, mode=protocol_mode, **elicitation(answer, asked)) as client:
            result = await client.call_tool(tool, args)
        case = f"{tool} answer={answer} confirm={confirm} mode={protocol_mode}: {result.content[0].text[:300]!r}"
        should = confirm.startswith("right") and answer in (None, "accept")
        stored = users(sandbox).get(uid)
        if tool == "deactivate_team_member":
            assert stored is not None and stored["active"] is (not should), case
        else:
            assert (stored is None) is should, case
        assert result.is_error is (not should), case
        if should:
            out = result.structured_content
            assert out["id"] == uid and out["email"] == email, case
            assert API_KEYS in out["api_keys_warning"] and "Developers → API keys" in out["api_keys_warning"], case
            assert "roll" in out["api_keys_warning"], case
            if tool == "deactivate_team_member":
                assert out["action"] == "deactivated" and out["active"] is False, case
                assert "Stripe deletes the user on deactivation too" in out["note"], case
            else:
                assert out["action"] == "deleted" and "active" not in out, case
        else:
            text = result.content[0].text
            action = "deactivated" if tool == "deactivate_team_member" else "deleted"
            assert f"nothing was {action}" in text.lower(), case
            if not confirm.startswith("right"):
                assert f"confirm='{email}'" in text and asked == [], case
        if confirm.startswith("right") and answer is not None:
            assert len(asked) == 1, case
            assert email in asked[0] and uid in asked[0] and API_KEYS in asked[0], case
        else:
            assert asked == [], case


async def test_param_only_mode_never_asks(sandbox, tmp_path):
    uid = new_member(sandbox, "param-only@example.com")
    asked: list[str] = []
    settings = writes(sandbox, tmp_path, confirm="param-only")
    async with mcp_client(settings, **elicitation("decline", asked)) as client:
        r = await client.call_tool("deactivate_team_member", {"member_id": uid, "confirm": uid})
    assert not r.is_error and asked == [] and users(sandbox)[uid]["active"] is False


async def test_removal_of_unknown_member_changes_nothing(sandbox, tmp_path):
    before = {uid: dict(u) for uid, u in users(sandbox).items()}
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        by_id = await client.call_tool("delete_team_member", {"member_id": "ghost-id", "confirm": "ghost-id"})
        by_email = await client.call_tool(
            "deactivate_team_member", {"email": "ghost@example.com", "confirm": "ghost@example.com"}
        )
    assert by_id.is_error and "no team member with id ghost-id" in by_id.content[0].text
    assert "Nothing was deleted" in by_id.content[0].text
    assert by_email.is_error and "no team member with email ghost@example.com" in by_email.content[0].text
    assert users(sandbox) == before
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["refused", "refused"]


async def test_deactivate_then_delete_seeded_member_with_audit_trail(sandbox, tmp_path):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        off = await client.call_tool("deactivate_team_member", {"member_id": OMAR, "confirm": "omar@globex.com"})
        seen = await client.call_tool("get_team_member", {"member_id": OMAR})
        gone = await client.call_tool("delete_team_member", {"email": "omar@globex.com", "confirm": OMAR})
        after = await client.call_tool("get_team_member", {"member_id": OMAR})
    assert not off.is_error and off.structured_content["active"] is False
    assert seen.structured_content["member"]["active"] is False
    assert not gone.is_error and OMAR not in users(sandbox)
    assert after.is_error and "status=404" in after.content[0].text
    for r in (off, gone):
        assert API_KEYS in r.structured_content["api_keys_warning"]
    lines = audit_lines(tmp_path)
    assert [(x["tool"], x["target"], x["outcome"]) for x in lines] == [
        ("deactivate_team_member", OMAR, "ok"),
        ("delete_team_member", OMAR, "ok"),
    ]
    assert all(x["caller"] for x in lines)


# --- faults on SCIM (the sandbox's /_sandbox/faults rules, over real loopback HTTP) ---------------------


def arm(sb: Any, **rule: Any) -> None:
    r = loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 200, r.text


def sandbox_stats(sb: Any) -> dict[str, Any]:
    return loopback.get(f"{sb.base_url}/_sandbox/stats").json()  # type: ignore[no-any-return]


def pending_faults(sb: Any) -> list[dict[str, Any]]:
    return loopback.get(f"{sb.base_url}/_sandbox/faults").json()["rules"]  # type: ignore[no-any-return]


async def test_lost_provision_answer_is_recovered_not_duplicated(sandbox, tmp_path):
    arm(sandbox, kind="drop_after_commit", path="/scim/v2/Users", method="POST")
    before = len(users(sandbox))
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("provision_team_member", {"email": "lost-hire@example.com", "given_name": "Lost"})
    assert not r.is_error, r.content[0].text
    member = r.structured_content["member"]
    assert member["email"] == "lost-hire@example.com" and member["active"] is True
    assert any("answer was lost" in w for w in r.structured_content["warnings"])
    assert sandbox_stats(sandbox)["by_status"]["dropped"] == 1
    assert len(users(sandbox)) == before + 1  # exactly one member, no 409 error
    assert sandbox.sandbox.scim.by_email("lost-hire@example.com")["id"] == member["id"]
    (line,) = audit_lines(tmp_path)
    # the audit line says what really happened: created by our first attempt, whose answer was lost
    assert (line["outcome"], line["target"]) == ("ok (recovered: our first attempt made it; its answer was lost)", member["id"])


async def test_lost_delete_answer_counts_as_deleted(sandbox, tmp_path):
    arm(sandbox, kind="drop_after_commit", path=f"/scim/v2/Users/{OMAR}", method="DELETE")
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        r = await client.call_tool("delete_team_member", {"member_id": OMAR, "confirm": OMAR})
    assert not r.is_error, r.content[0].text
    assert r.structured_content["action"] == "deleted" and r.structured_content["id"] == OMAR
    assert API_KEYS in r.structured_content["api_keys_warning"]
    assert sandbox_stats(sandbox)["by_status"]["dropped"] == 1 and OMAR not in users(sandbox)
    # the true outcome: deleted by the first attempt, whose answer was lost (the read-back proves it)
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["ok (first answer lost; verified by reading it back)"]


@pytest.mark.parametrize("kind", ["500", "429", "reset"])
async def test_team_tools_retry_through_scim_faults(sandbox, tmp_path, kind):
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        arm(sandbox, kind=kind, path="/scim/v2/Users", method="GET")
        listed = await client.call_tool("list_team_members", {"email": "omar@globex.com"})
        arm(sandbox, kind=kind, path="/scim/v2/Users", method="POST")
        made = await client.call_tool("provision_team_member", {"email": f"retry-{kind}@example.com"})
        arm(sandbox, kind=kind, path=f"/scim/v2/Users/{OMAR}", method="PATCH")
        off = await client.call_tool("deactivate_team_member", {"member_id": OMAR, "confirm": OMAR})
    for r in (listed, made, off):
        assert not r.is_error, (kind, r.content[0].text)
    assert [m["id"] for m in listed.structured_content["members"]] == [OMAR]
    assert made.structured_content.get("warnings", []) == []  # a refused attempt is not "recovered"
    assert sandbox.sandbox.scim.by_email(f"retry-{kind}@example.com") is not None
    assert off.structured_content["active"] is False and users(sandbox)[OMAR]["active"] is False
    stats = sandbox_stats(sandbox)
    assert stats["faults_injected"] == 3  # every fault was met and retried past
    assert stats["by_status"]["reset" if kind == "reset" else kind] == 3
    assert pending_faults(sandbox) == []


@pytest.mark.parametrize("kind", ["500", "429", "reset"])
async def test_exhausted_scim_retries_are_a_clear_tool_error(sandbox, tmp_path, kind):
    settings = writes(sandbox, tmp_path, max_retries=1)
    before = len(users(sandbox))
    async with mcp_client(settings) as client:
        arm(sandbox, kind=kind, path="/scim/v2/Users", method="GET", count=2)
        listed = await client.call_tool("list_team_members", {})
        arm(sandbox, kind=kind, path="/scim/v2/Users", method="POST", count=2)
        made = await client.call_tool("provision_team_member", {"email": f"exhausted-{kind}@example.com"})
    for r in (listed, made):
        text = r.content[0].text
        assert r.is_error and "gave up after 2 attempts" in text, text
        assert "Traceback" not in text and SCIM_TOKEN not in text
        if kind == "reset":
            assert "could not reach Stripe SCIM" in text and "(connection)" in text, text
        else:
            assert f"status={kind}" in text and "retries=1" in text, text
            assert ("rate limited by Stripe SCIM" if kind == "429" else "Stripe SCIM kept failing") in text, text
    assert len(users(sandbox)) == before and sandbox.sandbox.scim.by_email(f"exhausted-{kind}@example.com") is None
    assert sandbox_stats(sandbox)["faults_injected"] == 4
    # A reset loses the answer: the create might still land upstream, so the truthful outcome is "unknown"
    # (the answer says so and how to check); a 429/500 was answered, and the read-back proves "not done".
    expected = "unknown" if kind == "reset" else "error"
    assert [line["outcome"].split(":")[0] for line in audit_lines(tmp_path)] == [expected]
    if kind == "reset":
        assert "UNKNOWN" in made.content[0].text and "may still complete" in made.content[0].text


async def test_stripe_like_deactivation_deletes_and_reports_the_member_gone(sandbox_factory, tmp_path):
    with sandbox_factory() as sb:  # deletion on deactivation is the sandbox default now
        async with mcp_client(writes(sb, tmp_path)) as client:
            r = await client.call_tool("deactivate_team_member", {"email": "omar@globex.com", "confirm": "omar@globex.com"})
            after = await client.call_tool("get_team_member", {"member_id": OMAR})
        assert not r.is_error, r.content[0].text
        out = r.structured_content
        assert (out["action"], out["id"], out["email"]) == ("deactivated", OMAR, "omar@globex.com")
        assert "active" not in out  # absent: Stripe deleted the member rather than keeping it inactive
        assert "Stripe deletes the user on deactivation too" in out["note"]
        assert API_KEYS in out["api_keys_warning"] and "roll" in out["api_keys_warning"]
        assert OMAR not in users(sb)
        assert after.is_error and "status=404" in after.content[0].text
        assert [(x["tool"], x["outcome"]) for x in audit_lines(tmp_path)] == [("deactivate_team_member", "ok")]
