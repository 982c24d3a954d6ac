"""SCIM Groups in the sandbox (Stripe's documented behaviour, RFC 7643 §4.2 / RFC 7644 §3.5.2) over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS, ScimSandbox
from stripe_identity_mcp.sandbox.scim_groups import GROUP_SCHEMA, group_id_for
from tests import loopback
from tests.sandbox.test_scim_sandbox import LIST, PATCH, TOKEN, assert_error, serve_scim

JANE, OMAR, PRIYA, LEE = (SCIM_FIXED_IDS[e] for e in ("jane@acme.com", "omar@globex.com", "priya@umbrella.com", "lee@initech.com"))
SUPPORT, DEVELOPERS, ADMINS = (group_id_for(n) for n in ("Support", "Developers", "Admins"))


@pytest.fixture(params=[False, True], ids=["stripe-default", "keep-inactive"])
def scim(request: pytest.FixtureRequest) -> Iterator[tuple[ScimSandbox, httpx.Client]]:
    with serve_scim(keep_inactive=request.param) as (sb, base):
        with loopback.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
            yield sb, c


def members(sb: ScimSandbox, gid: str) -> set[str]:
    return {m["value"] for m in sb.groups[gid].get("members", [])}


def patch(c: httpx.Client, gid: str, *ops: dict[str, Any]) -> httpx.Response:
    return c.patch(f"/Groups/{gid}", json={"schemas": [PATCH], "Operations": list(ops)})


def test_seeded_groups_list_with_members_and_filter(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, c = scim
    body = c.get("/Groups").json()
    assert body["schemas"] == [LIST] and body["totalResults"] == 3
    assert [g["displayName"] for g in body["Resources"]] == ["Support", "Developers", "Admins"]
    support = body["Resources"][0]
    assert support["schemas"] == [GROUP_SCHEMA] and support["id"] == SUPPORT
    omar = next(m for m in support["members"] if m["value"] == OMAR)
    assert omar["display"] == "Omar Haddad" and omar["$ref"].endswith(f"/Users/{OMAR}") and omar["type"] == "User"
    assert {PRIYA, LEE} <= members(sb, DEVELOPERS) and PRIYA in members(sb, ADMINS)
    # jane exists (and is in Support and Admins) only where deactivated members are kept.
    assert (JANE in members(sb, SUPPORT)) == sb.keep_inactive == (JANE in sb.users)
    found = c.get("/Groups", params={"filter": 'displayName eq "developers"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == DEVELOPERS
    assert c.get("/Groups", params={"filter": f'members eq "{PRIYA}"'}).json()["totalResults"] == 2
    page = c.get("/Groups", params={"startIndex": 2, "count": 1, "excludedAttributes": "members"}).json()
    assert page["totalResults"] == 3 and [g["displayName"] for g in page["Resources"]] == ["Developers"]
    assert "members" not in page["Resources"][0]
    assert_error(c.get("/Groups", params={"filter": 'userName eq "x"'}), 400, "invalidFilter")


def test_users_carry_their_groups_read_only(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, c = scim
    priya = c.get(f"/Users/{PRIYA}").json()
    assert [(g["value"], g["display"], g["type"]) for g in priya["groups"]] == [
        (DEVELOPERS, "Developers", "direct"), (ADMINS, "Admins", "direct")
    ]
    assert priya["groups"][0]["$ref"].endswith(f"/Groups/{DEVELOPERS}")
    # groups is read-only on the user: a PATCH naming it changes no membership.
    r = c.patch(f"/Users/{PRIYA}", json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "groups", "value": [{"value": SUPPORT}]}]})
    assert r.status_code == 200 and PRIYA not in members(sb, SUPPORT)


def test_patch_add_and_remove_members_rfc7644(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, c = scim
    r = patch(c, ADMINS, {"op": "Add", "path": "members", "value": [{"value": OMAR, "display": "Omar H."}]})
    assert r.status_code == 200, r.text
    assert OMAR in members(sb, ADMINS) and r.json()["members"][-1]["display"] == "Omar H."
    assert ADMINS in [g["value"] for g in c.get(f"/Users/{OMAR}").json()["groups"]]
    again = patch(c, ADMINS, {"op": "add", "path": "members", "value": [{"value": OMAR}]})  # no duplicate
    assert [m["value"] for m in again.json()["members"]].count(OMAR) == 1
    r = patch(c, ADMINS, {"op": "remove", "path": f'members[value eq "{OMAR}"]'})
    assert r.status_code == 200 and OMAR not in members(sb, ADMINS) and PRIYA in members(sb, ADMINS)
    # Entra's form: remove members with a value list.
    r = patch(c, DEVELOPERS, {"op": "Remove", "path": "members", "value": [{"value": LEE}]})
    assert r.status_code == 200 and LEE not in members(sb, DEVELOPERS) and PRIYA in members(sb, DEVELOPERS)
    # Path-less add (Entra) and replace of the whole list.
    assert patch(c, DEVELOPERS, {"op": "add", "value": {"members": [{"value": LEE}]}}).status_code == 200
    assert LEE in members(sb, DEVELOPERS)
    assert patch(c, DEVELOPERS, {"op": "replace", "path": "members", "value": [{"value": OMAR}]}).status_code == 200
    assert members(sb, DEVELOPERS) == {OMAR}
    assert_error(patch(c, DEVELOPERS, {"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}), 400, "invalidValue")
    assert_error(patch(c, DEVELOPERS, {"op": "add", "path": "roles", "value": ["admin"]}), 400, "invalidValue")
    assert members(sb, DEVELOPERS) == {OMAR}


def test_rename_refused_and_display_name_unique(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, c = scim
    body = assert_error(patch(c, SUPPORT, {"op": "replace", "path": "displayName", "value": "Helpdesk"}), 400, "mutability")
    assert "re-provision" in body["detail"]
    put = c.put(f"/Groups/{SUPPORT}", json={"schemas": [GROUP_SCHEMA], "displayName": "Helpdesk"})
    assert_error(put, 400, "mutability")
    assert sb.groups[SUPPORT]["displayName"] == "Support"
    assert_error(c.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "support"}), 409, "uniqueness")
    r = c.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Helpdesk", "members": [{"value": OMAR}]})
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/Groups/{r.json()['id']}")
    assert members(sb, r.json()["id"]) == {OMAR}
    assert c.delete(f"/Groups/{r.json()['id']}").status_code == 204 and r.json()["id"] not in sb.groups


def test_deleting_or_deactivating_a_user_removes_it_from_its_groups(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, c = scim
    assert PRIYA in members(sb, ADMINS) and PRIYA in members(sb, DEVELOPERS)
    assert c.delete(f"/Users/{PRIYA}").status_code == 204
    assert PRIYA not in members(sb, ADMINS) and PRIYA not in members(sb, DEVELOPERS)
    r = c.patch(f"/Users/{OMAR}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert r.status_code == (200 if sb.keep_inactive else 204)
    # Stripe: deactivation deletes the member, so it leaves its groups; a kept inactive member stays in them.
    assert (OMAR in members(sb, SUPPORT)) == sb.keep_inactive


def test_root_search_spans_users_and_groups(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    _, c = scim
    body = c.post("/.search", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                    "filter": 'displayName eq "Admins"'}).json()  # fmt: skip
    assert [r["id"] for r in body["Resources"]] == [ADMINS]
