"""The SCIM client against the sandbox's SCIM endpoint over loopback.

httpx.MockTransport is used only for request/answer-shape parser units (the PatchOp body sent with
a 204 answer, the raw encoded path, tolerant parsing). Lost answers come from the sandbox's own
`drop_after_commit` SCIM fault: the sandbox executes the request, then drops the connection.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripe_identity_mcp.clients.errors import AuthenticationError, BadRequestError, ConflictError, NotFoundError
from stripe_identity_mcp.clients.scim import SCIM_JSON, ScimClient, filter_value
from stripe_identity_mcp.deps import open_deps
from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from stripe_identity_mcp.settings import SCIM_RATE
from stripe_identity_mcp.toolsets.team import scim_error
from tests import loopback
from tests.conftest import SCIM_TOKEN, make_settings

pytestmark = pytest.mark.anyio

OMAR = SCIM_FIXED_IDS["omar@globex.com"]


def client(http: httpx.AsyncClient, base: str, token: str = SCIM_TOKEN) -> ScimClient:
    return ScimClient(http, token=token, base_url=base, rate=1000, max_retries=3, deadline_s=20)


def arm(sb: Any, **rule: Any) -> None:
    r = loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 200, r.text


def dropped(sb: Any) -> int:
    return int(loopback.get(f"{sb.base_url}/_sandbox/stats").json()["by_status"].get("dropped", 0))


# Construction and reads ----------------------------------------------------------------------------


async def test_from_settings_takes_token_base_and_its_own_pace(sandbox):
    settings = make_settings(sandbox, scim_rate=SCIM_RATE + 1)
    async with loopback.AsyncClient() as http:
        assert ScimClient(http, token="t", base_url=sandbox.scim_base).bucket.rate == SCIM_RATE  # the default
        scim = ScimClient.from_settings(settings, http)
        assert scim.base_url == sandbox.scim_base and scim.service == "Stripe SCIM"
        assert scim.headers["Authorization"] == f"Bearer {SCIM_TOKEN}"
        assert scim.headers["Accept"] == SCIM_JSON
        assert scim.bucket.rate == SCIM_RATE + 1 and scim.secrets == [SCIM_TOKEN]
        page = await scim.list_users(count=1)
    assert page.totalResults == len(sandbox.sandbox.scim.users) and len(page.Resources) == 1


async def test_list_users_pages_with_start_index_and_count(sandbox):
    ids: list[str] = []
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        start = 1
        for _ in range(10):
            page = await scim.list_users(start_index=start, count=5)
            assert page.startIndex == start and page.itemsPerPage == len(page.Resources) <= 5
            ids += [u.id for u in page.Resources]
            start += len(page.Resources)
            if not page.Resources or start > page.totalResults:
                break
        capped = await scim.list_users(count=1000)
    assert len(ids) == len(set(ids)) and set(ids) == set(sandbox.sandbox.scim.users)
    assert len(capped.Resources) == min(100, len(ids))


def test_filter_values_are_quoted_and_escaped():
    assert filter_value("jane@acme.com") == '"jane@acme.com"'
    assert filter_value('a"b\\c@x.com') == '"a\\"b\\\\c@x.com"'
    assert json.loads(filter_value('a"b\\c@x.com')) == 'a"b\\c@x.com'  # a SCIM filter value is a JSON string


@given(st.text(max_size=60))
def test_any_filter_value_round_trips_as_one_json_string(value):
    quoted = filter_value(value)
    assert json.loads(quoted) == value
    assert '"' not in quoted[1:-1].replace('\\\\', "").replace('\\"', "")  # no unescaped quote inside


async def test_find_by_email_exact_case_insensitive_escaped_or_none(sandbox_factory):
    with sandbox_factory(scim_keep_inactive=True) as sandbox:  # the seeded inactive jane exists only then
        async with loopback.AsyncClient() as http:
            scim = client(http, sandbox.scim_base)
            odd = await scim.create_user('o"neil\\q@example.com')
            assert (await scim.find_by_email('o"neil\\q@example.com')).id == odd.id
            omar = await scim.find_by_email("Omar@Globex.com")
            assert omar is not None and omar.id == OMAR and omar.email == "omar@globex.com"
            jane = await scim.find_by_email("jane@acme.com")
            assert jane is not None and jane.active is False and jane.displayName == "Jane Doe"
            assert await scim.find_by_email("nobody@example.com") is None


async def test_get_user_and_404(sandbox):
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        omar = await scim.get_user(OMAR)
        assert (omar.userName, omar.active, omar.meta.resourceType) == ("omar@globex.com", True, "User")
        with pytest.raises(NotFoundError) as err:
            await scim.get_user("missing-id")
    assert err.value.status == 404 and err.value.type == "scim_error"


async def test_empty_ids_are_rejected_before_any_request(sandbox):
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        for call in (scim.get_user, scim.deactivate_user, scim.delete_user):
            with pytest.raises(BadRequestError, match="must not be empty"):
                await call("  ")
    assert scim.stats.requests == 0


async def test_bad_token_is_401_and_never_echoed(sandbox):
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base, token="scim_not_the_token")
        with pytest.raises(AuthenticationError) as err:
            await scim.list_users()
    assert err.value.status == 401 and "scim_not_the_token" not in str(err.value.message)
    assert scim.stats.retries == 0  # a 401 is never retried


# Writes -----------------------------------------------------------------------------------------------


async def test_create_user_sends_names_and_returns_the_resource(sandbox):
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        user = await scim.create_user("ada@example.com", given_name="Ada", family_name="Lovelace")
    assert user.userName == "ada@example.com" and user.active is True and not user.recovered
    assert user.displayName == "Ada Lovelace" and user.meta.created
    stored = sandbox.sandbox.scim.users[user.id]
    assert stored["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert stored["emails"][0]["value"] == "ada@example.com"


async def test_duplicate_create_is_a_uniqueness_conflict(sandbox):
    before = len(sandbox.sandbox.scim.users)
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        with pytest.raises(ConflictError) as err:
            await scim.create_user("omar@globex.com")
    assert (err.value.status, err.value.code) == (409, "uniqueness")
    assert len(sandbox.sandbox.scim.users) == before


async def test_lost_create_answer_is_recovered_not_duplicated(sandbox):
    arm(sandbox, kind="drop_after_commit", path="/scim/v2/Users", method="POST")
    before = len(sandbox.sandbox.scim.users)
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        user = await scim.create_user("lost-answer@example.com", display_name="Lost")
    assert dropped(sandbox) == 1 and scim.stats.retries == 1
    assert scim.stats.by_status == {409: 1, 200: 1}  # the retry met 409, then the email lookup
    assert user.recovered and user.userName == "lost-answer@example.com"
    assert len(sandbox.sandbox.scim.users) == before + 1  # one member, not two, not an error
    assert sandbox.sandbox.scim.by_email("lost-answer@example.com")["id"] == user.id


async def test_deactivate_answers_200_with_body_and_keeps_user_inactive(sandbox_factory):
    with sandbox_factory(scim_keep_inactive=True) as sandbox:  # the keep option (Stripe deletes instead)
        async with loopback.AsyncClient() as http:
            scim = client(http, sandbox.scim_base)
            after = await scim.deactivate_user(OMAR)
            again = await scim.deactivate_user(OMAR)  # idempotent
        assert after is not None and after.active is False and again.active is False
        assert sandbox.sandbox.scim.users[OMAR]["active"] is False


async def test_delete_user_then_404(sandbox):
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        assert await scim.delete_user(OMAR) == "deleted"
        with pytest.raises(NotFoundError):
            await scim.get_user(OMAR)
        with pytest.raises(NotFoundError):  # a first-attempt 404 is a real "not there"
            await scim.delete_user(OMAR)
    assert OMAR not in sandbox.sandbox.scim.users


async def test_lost_delete_answer_counts_as_deleted(sandbox):
    arm(sandbox, kind="drop_after_commit", path=f"/scim/v2/Users/{OMAR}", method="DELETE")
    async with loopback.AsyncClient() as http:
        scim = client(http, sandbox.scim_base)
        assert await scim.delete_user(OMAR) == "answer_lost"  # deleted by the first attempt; the retry met 404
    assert dropped(sandbox) == 1 and scim.stats.retries == 1
    assert scim.stats.by_status == {404: 1}  # the retry's 404 is the proof it was deleted
    assert OMAR not in sandbox.sandbox.scim.users


async def test_stripe_like_deactivation_answers_204_and_deletes(sandbox_factory):
    with sandbox_factory() as sb:  # deletion on deactivation is the sandbox default now
        async with loopback.AsyncClient() as http:
            scim = client(http, sb.scim_base)
            assert await scim.deactivate_user(OMAR) is None
            with pytest.raises(NotFoundError):
                await scim.get_user(OMAR)
        assert OMAR not in sb.sandbox.scim.users


async def test_email_change_is_400_mutability_with_a_clear_tool_message(sandbox):
    settings = make_settings(sandbox)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "omar@new.example.com"}],
    }
    async with open_deps(settings) as app:
        with pytest.raises(BadRequestError) as err:
            await app.scim.call("PATCH", f"/Users/{OMAR}", body=body)
        message = str(scim_error(err.value, app))
    assert (err.value.status, err.value.code) == (400, "mutability")
    assert "email updates are not supported; deprovision and re-provision" in message
    assert sandbox.sandbox.scim.users[OMAR]["userName"] == "omar@globex.com"


# Answer and request shapes the sandbox does not produce (parser units) ------------------------------


def recording(status: int, payload: Any, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if payload is None:
            return httpx.Response(status)
        return httpx.Response(status, content=json.dumps(payload).encode(), headers={"content-type": SCIM_JSON})

    return httpx.MockTransport(handler)


async def test_patch_answered_204_no_content_is_none_and_request_is_a_patchop():
    seen: list[httpx.Request] = []
    async with loopback.AsyncClient(transport=recording(204, None, seen)) as http:
        result = await client(http, "http://scim.invalid/scim/v2").deactivate_user("u1")
    assert result is None
    (request,) = seen
    assert request.method == "PATCH" and request.url.path == "/scim/v2/Users/u1"
    assert request.headers["content-type"] == SCIM_JSON and request.headers["accept"] == SCIM_JSON
    assert json.loads(request.content) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }


async def test_ids_are_percent_encoded_as_one_path_segment():
    seen: list[httpx.Request] = []
    user = {"id": "a/b?c", "userName": "x@example.com", "active": True}
    async with loopback.AsyncClient(transport=recording(200, user, seen)) as http:
        got = await client(http, "http://scim.invalid/scim/v2").get_user("a/b?c")
    assert got.id == "a/b?c"
    assert seen[0].url.raw_path == b"/scim/v2/Users/a%2Fb%3Fc"


async def test_unknown_attributes_are_tolerated_and_absent_active_means_active():
    seen: list[httpx.Request] = []
    payload = {"schemas": [], "totalResults": 1, "Resources": [{"id": "u", "userName": "u@x.com", "x-extra": 1}]}
    async with loopback.AsyncClient(transport=recording(200, payload, seen)) as http:
        page = await client(http, "http://scim.invalid/scim/v2").list_users()
    assert page.startIndex == 1 and page.Resources[0].active is True
