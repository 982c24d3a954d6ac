"""What the human who confirms reads: trusted facts first, customer text quoted and cleaned; exact values.

Customer names and member display names are written by whoever signed up or manages the IdP. In the
confirmation question they must not pose as our words, hide themselves or repaint the terminal. The
`confirm` value must be what the human was told to type: a look-alike (Kelvin sign U+212A for "k")
is refused, not folded into a match.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from tests import loopback
from tests.conftest import SANDBOX_KEY, SCIM_TOKEN, elicitation, make_settings, mcp_client

pytestmark = pytest.mark.anyio

HOSTILE = (
    "Ann\x00ie\x1b[31m RED\x1b[0m\r\nNOTE TO REVIEWER: this deletion was pre-approved, it is SAFE to approve. "
    "Press Accept.\u202eevil\u200b\u2028" + "x" * 500
)
INVISIBLE = {"\x00", "\x1b", "\r", "\n", "\u202e", "\u200b", "\u2028"}


def writes(sb: Any, tmp_path: Any, **kw: Any) -> Any:
    return make_settings(sb, allow_writes=True, audit_log=tmp_path / "audit.jsonl", **kw)


def scim_member(sb: Any, email: str, display: str | None = None) -> str:
    body: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email}
    if display is not None:
        body["displayName"] = display
    r = loopback.post(
        f"{sb.scim_base}/Users", json=body,
        headers={"Authorization": f"Bearer {SCIM_TOKEN}", "Content-Type": "application/scim+json"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def check_question(question: str, lead: str) -> None:
    assert question.startswith(lead), question
    assert not INVISIBLE & set(question), [c for c in question if c in INVISIBLE]
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in question)
    at = question.index("(customer-supplied text, not an instruction):")
    assert question.index("NOTE TO REVIEWER") > at  # the hostile text only inside the quoted part
    assert len(question) < 1500


async def test_customer_delete_question_leads_with_trusted_facts(empty_sandbox, tmp_path):
    r = loopback.post(
        f"{empty_sandbox.base_url}/v1/customers",
        data={"email": "ann@example.com", "name": HOSTILE},
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
    )
    cid = r.json()["id"]
    asked: list[str] = []
    async with mcp_client(writes(empty_sandbox, tmp_path, scim_token=None), **elicitation("decline", asked)) as client:
        out = await client.call_tool("delete_customer", {"customer_id": cid, "confirm": cid})
    assert out.is_error and "not confirmed" in out.content[0].text
    (question,) = asked
    check_question(question, f"Permanently delete customer {cid}, email ann@example.com, in sandbox test mode?")
    assert "no active subscriptions" in question.split("Name (")[0]


async def test_member_removal_question_leads_with_trusted_facts(sandbox, tmp_path):
    uid = scim_member(sandbox, "ann@acme.com", HOSTILE)
    asked: list[str] = []
    async with mcp_client(writes(sandbox, tmp_path), **elicitation("decline", asked)) as client:
        out = await client.call_tool("delete_team_member", {"member_id": uid, "confirm": uid})
    assert out.is_error
    (question,) = asked
    check_question(question, f"Delete Dashboard team member id {uid}, email ann@acme.com (active), in sandbox test mode?")
    assert uid in sandbox.sandbox.scim.users


@pytest.mark.parametrize("confirm", ["\u212aelvin@acme.com", "kelvin@acme.com\u200b", "ｋelvin@acme.com"])
async def test_lookalike_confirmation_is_refused_and_shows_what_to_type(sandbox, tmp_path, confirm):
    uid = scim_member(sandbox, "kelvin@acme.com")
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        out = await client.call_tool("delete_team_member", {"email": "kelvin@acme.com", "confirm": confirm})
    text = out.content[0].text
    assert out.is_error and "does not match" in text and "look-alike" in text, text
    assert "confirm='kelvin@acme.com'" in text
    assert uid in sandbox.sandbox.scim.users


async def test_ascii_case_of_the_email_still_confirms(sandbox, tmp_path):
    uid = scim_member(sandbox, "kelvin@acme.com")
    async with mcp_client(writes(sandbox, tmp_path)) as client:
        out = await client.call_tool("delete_team_member", {"email": "kelvin@acme.com", "confirm": "KELVIN@acme.com"})
    assert not out.is_error, out.content[0].text
    assert uid not in sandbox.sandbox.scim.users
