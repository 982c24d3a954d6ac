"""SCIM 2.0 sandbox (Stripe Dashboard team members) over real loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS, ScimSandbox
from tests import loopback

TOKEN = "scim_sandbox"
SCIM_CT = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@contextmanager
def serve_scim(**kwargs: Any) -> Iterator[tuple[ScimSandbox, str]]:
    """Mount a ScimSandbox at /scim/v2 and serve it with uvicorn on an ephemeral loopback port."""
    scim = ScimSandbox(**kwargs)
    app = Starlette(routes=[Mount("/scim/v2", app=scim.app)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY (see runner.py)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("SCIM sandbox did not start")
        time.sleep(0.01)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        yield scim, f"http://127.0.0.1:{port}/scim/v2"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture()
def scim() -> Iterator[tuple[ScimSandbox, httpx.Client]]:
    # keep_inactive: these tests are about the seeded inactive member and inactive users staying
    # visible; Stripe's default (deactivation deletes) is covered in tests/sandbox/test_fidelity.py.
    with serve_scim(keep_inactive=True) as (sb, base):
        with loopback.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
            yield sb, c


@pytest.fixture()
def api(scim: tuple[ScimSandbox, httpx.Client]) -> httpx.Client:
    return scim[1]


def find(api: httpx.Client, email: str) -> dict[str, Any]:
    r = api.get("/Users", params={"filter": f'userName eq "{email}"'})
    assert r.status_code == 200, r.text
    assert r.json()["totalResults"] == 1, r.text
    return r.json()["Resources"][0]


def create(api: httpx.Client, email: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/Users", json={"schemas": [USER], "userName": email, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(SCIM_CT)
    body = r.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("detail")
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


# --------------------------------------------------------------------------- auth


def test_missing_token_is_401_scim_error() -> None:
    with serve_scim() as (_, base):
        r = loopback.get(base + "/Users")
        assert_error(r, 401)
        assert r.headers["www-authenticate"].lower().startswith("bearer")
        assert "scim_sandbox" not in r.text


def test_wrong_token_is_401_and_not_echoed() -> None:
    with serve_scim() as (_, base):
        r = loopback.get(base + "/Users", headers={"Authorization": "Bearer sekrit_wrong_token"})
        assert_error(r, 401)
        assert "sekrit_wrong_token" not in r.text
        r = loopback.get(base + "/ServiceProviderConfig", headers={"Authorization": "Basic c2NpbTpzY2lt"})
        assert_error(r, 401)


def test_custom_token() -> None:
    with serve_scim(token="tok_custom") as (_, base):
        assert loopback.get(base + "/Users", headers={"Authorization": "Bearer tok_custom"}).status_code == 200
        assert loopback.get(base + "/Users", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


# --------------------------------------------------------------------------- seed


def test_seed_shared_people_states(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, api = scim
    jane = find(api, "jane@acme.com")
    assert jane["active"] is False and jane["displayName"] == "Jane Doe"
    assert jane["id"] == SCIM_FIXED_IDS["jane@acme.com"]
    for email in ("omar@globex.com", "priya@umbrella.com", "lee@initech.com"):
        user = find(api, email)
        assert user["active"] is True
        assert user["id"] == SCIM_FIXED_IDS[email]
    assert len(sb.users) == 12
    states = {u["active"] for u in sb.users.values()}
    assert states == {True, False}


def test_seed_is_deterministic_and_empty_works() -> None:
    a, b, c = (ScimSandbox(seed=s, keep_inactive=True) for s in (7, 7, 8))
    assert [u["userName"] for u in a._sorted_users()] == [u["userName"] for u in b._sorted_users()]
    assert list(a.users) == list(b.users)
    assert set(a.users) != set(c.users)
    assert set(SCIM_FIXED_IDS.values()) <= set(c.users)  # shared people keep their ids
    assert ScimSandbox(empty=True).users == {}
    extra = ScimSandbox(shared_emails=["jane@acme.com", "zed@example.org"], keep_inactive=True)
    assert extra.by_email("zed@example.org")["active"] is True
    assert extra.by_email("jane@acme.com")["active"] is False


# --------------------------------------------------------------------------- list / paging / filters


def test_list_response_shape_and_content_type(api: httpx.Client) -> None:
    r = api.get("/Users")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(SCIM_CT)
    body = r.json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 12 and body["startIndex"] == 1 and body["itemsPerPage"] == 12
    created = [u["meta"]["created"] for u in body["Resources"]]
    assert created == sorted(created)
    u = body["Resources"][0]
    assert u["schemas"] == [USER] and u["meta"]["resourceType"] == "User"
    assert u["meta"]["location"].endswith(f"/scim/v2/Users/{u['id']}")
    assert u["meta"]["version"].startswith('W/"')


def test_paging_start_index_and_count(api: httpx.Client) -> None:
    everything = api.get("/Users").json()["Resources"]
    ids = [u["id"] for u in everything]
    pages: list[str] = []
    start = 1
    while True:
        body = api.get("/Users", params={"startIndex": start, "count": 5}).json()
        assert body["totalResults"] == 12 and body["startIndex"] == start
        assert body["itemsPerPage"] == len(body["Resources"])
        if not body["Resources"]:
            break
        pages += [u["id"] for u in body["Resources"]]
        start += body["itemsPerPage"]
    assert pages == ids
    zero = api.get("/Users", params={"count": 0}).json()
    assert zero["totalResults"] == 12 and zero["itemsPerPage"] == 0 and zero["Resources"] == []
    low = api.get("/Users", params={"startIndex": -3, "count": 2}).json()
    assert low["startIndex"] == 1 and [u["id"] for u in low["Resources"]] == ids[:2]
    big = api.get("/Users", params={"count": 10_000}).json()
    assert big["itemsPerPage"] == 12
    assert_error(api.get("/Users", params={"count": "many"}), 400, "invalidValue")


def test_filter_username_case_insensitive(api: httpx.Client) -> None:
    body = api.get("/Users", params={"filter": 'userName eq "JANE@Acme.com"'}).json()
    assert body["totalResults"] == 1 and body["Resources"][0]["userName"] == "jane@acme.com"
    assert api.get("/Users", params={"filter": 'userName eq "nobody@acme.com"'}).json()["totalResults"] == 0


def test_filters_active_id_displayname_emails_and(api: httpx.Client) -> None:
    all_users = api.get("/Users").json()["Resources"]
    inactive = api.get("/Users", params={"filter": "active eq false"}).json()
    assert inactive["totalResults"] == sum(1 for u in all_users if not u["active"]) >= 1
    assert all(u["active"] is False for u in inactive["Resources"])
    active = api.get("/Users", params={"filter": "active eq true"}).json()
    assert active["totalResults"] + inactive["totalResults"] == 12
    jane_id = SCIM_FIXED_IDS["jane@acme.com"]
    assert api.get("/Users", params={"filter": f'id eq "{jane_id}"'}).json()["Resources"][0]["userName"] == "jane@acme.com"
    assert api.get("/Users", params={"filter": 'displayName eq "jane doe"'}).json()["totalResults"] == 1
    co = api.get("/Users", params={"filter": 'displayName co "aya"'}).json()
    assert all("aya" in u["displayName"].lower() for u in co["Resources"])
    sw = api.get("/Users", params={"filter": 'displayName sw "Omar"'}).json()
    assert {u["userName"] for u in sw["Resources"]} >= {"omar@globex.com"}
    assert all(u["displayName"].startswith("Omar") for u in sw["Resources"])
    em = api.get("/Users", params={"filter": 'emails.value eq "priya@umbrella.com"'}).json()
    assert [u["userName"] for u in em["Resources"]] == ["priya@umbrella.com"]
    both = api.get("/Users", params={"filter": 'userName eq "jane@acme.com" and active eq false'}).json()
    assert both["totalResults"] == 1
    neither = api.get("/Users", params={"filter": 'userName eq "jane@acme.com" and active eq true'}).json()
    assert neither["totalResults"] == 0
    either = api.get("/Users", params={"filter": '(userName eq "jane@acme.com") or userName sw "omar@"'}).json()
    assert either["totalResults"] == 2


@pytest.mark.parametrize(
    "bad",
    ['userName eq', 'userName zz "x"', 'title eq "x"', 'userName eq "x" and', '(userName eq "x"', 'emails[type eq "work"]', 'userName eq x'],
)
def test_bad_filter_is_invalid_filter(api: httpx.Client, bad: str) -> None:
    assert_error(api.get("/Users", params={"filter": bad}), 400, "invalidFilter")


def test_attributes_and_excluded_attributes(api: httpx.Client) -> None:
    body = api.get("/Users", params={"attributes": "userName", "count": 3}).json()
    for u in body["Resources"]:
        assert set(u) == {"schemas", "id", "userName"}
    u = api.get("/Users", params={"excludedAttributes": "emails,meta", "count": 1}).json()["Resources"][0]
    assert "emails" not in u and "meta" not in u and "userName" in u
    jane_id = SCIM_FIXED_IDS["jane@acme.com"]
    one = api.get(f"/Users/{jane_id}", params={"attributes": "name.givenName,active"}).json()
    assert one == {"schemas": [USER], "id": jane_id, "name": {"givenName": "Jane"}, "active": False}
    search = api.post("/Users/.search", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName eq "omar@globex.com"', "attributes": ["displayName"],
    })
    assert search.status_code == 200
    assert search.json()["Resources"] == [{"schemas": [USER], "id": SCIM_FIXED_IDS["omar@globex.com"], "displayName": "Omar Haddad"}]


# --------------------------------------------------------------------------- get / post


def test_get_user_and_404(api: httpx.Client) -> None:
    jane_id = SCIM_FIXED_IDS["jane@acme.com"]
    r = api.get(f"/Users/{jane_id}")
    assert r.status_code == 200 and r.json()["userName"] == "jane@acme.com"
    assert r.headers["etag"] == r.json()["meta"]["version"]
    assert api.get(f"/Users/{jane_id}", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert_error(api.get("/Users/00000000-0000-0000-0000-000000000000"), 404)


def test_post_creates_with_location_meta_and_default_active(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, api = scim
    r = api.post(
        "/Users",
        content=b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"new.hire@acme.com",'
        b'"displayName":"New Hire","name":{"givenName":"New","familyName":"Hire"},'
        b'"emails":[{"value":"new.hire@acme.com","type":"work","primary":true}],"title":"ignored"}',
        headers={"Content-Type": SCIM_CT},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == body["meta"]["location"]
    assert body["meta"]["location"].endswith(f"/scim/v2/Users/{body['id']}")
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"] and body["meta"]["lastModified"]
    assert body["meta"]["version"].startswith('W/"') and r.headers["etag"] == body["meta"]["version"]
    assert body["active"] is True and body["displayName"] == "New Hire"
    assert body["name"] == {"givenName": "New", "familyName": "Hire"}  # echoed, never identity
    assert "title" not in body  # unhandled attributes are dropped
    assert sb.users[body["id"]]["userName"] == "new.hire@acme.com"
    assert api.get(r.headers["location"]).json()["id"] == body["id"]
    assert api.get("/Users").json()["Resources"][-1]["id"] == body["id"]  # newest last (by created)


def test_post_validation_and_conflicts(api: httpx.Client) -> None:
    assert_error(api.post("/Users", json={"schemas": [USER], "displayName": "No Email"}), 400, "invalidValue")
    assert_error(api.post("/Users", json={"schemas": [USER], "userName": "JANE@ACME.COM"}), 409, "uniqueness")
    assert_error(api.post("/Users", content=b"{not json", headers={"Content-Type": SCIM_CT}), 400, "invalidSyntax")
    assert_error(api.post("/Users", json={"schemas": [USER], "userName": "x@acme.com", "active": "maybe"}), 400, "invalidValue")
    ok = api.post("/Users", json={"userName": "inactive@acme.com", "active": False})  # application/json accepted
    assert ok.status_code == 201 and ok.json()["active"] is False


def test_roles_are_rejected_everywhere(api: httpx.Client) -> None:
    body = assert_error(
        api.post("/Users", json={"schemas": [USER], "userName": "r@acme.com", "roles": [{"value": "admin"}]}),
        400,
        "invalidValue",
    )
    assert "SAML" in body["detail"]
    assert api.get("/Users", params={"filter": 'userName eq "r@acme.com"'}).json()["totalResults"] == 0
    omar = find(api, "omar@globex.com")
    for op in (
        {"op": "add", "path": "roles", "value": [{"value": "admin"}]},
        {"op": "replace", "value": {"roles": [{"value": "admin"}]}},
    ):
        r = api.patch(f"/Users/{omar['id']}", json={"schemas": [PATCH], "Operations": [op]})
        assert "SAML" in assert_error(r, 400, "invalidValue")["detail"]
    put = api.put(f"/Users/{omar['id']}", json={"schemas": [USER], "userName": "omar@globex.com", "roles": ["admin"]})
    assert_error(put, 400, "invalidValue")


# --------------------------------------------------------------------------- put


def test_put_replaces_and_email_is_immutable(api: httpx.Client) -> None:
    user = create(api, "put.me@acme.com", displayName="Before", name={"givenName": "B"})
    r = api.put(f"/Users/{user['id']}", json={"schemas": [USER], "userName": "PUT.ME@acme.com", "displayName": "After"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["displayName"] == "After" and body["userName"] == "put.me@acme.com"
    assert "name" not in body  # replaced: omitted readWrite attributes are cleared
    assert body["active"] is True  # active omitted → kept
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["meta"]["version"] != user["meta"]["version"]
    bad = api.put(f"/Users/{user['id']}", json={"schemas": [USER], "userName": "other@acme.com", "displayName": "X"})
    err = assert_error(bad, 400, "mutability")
    assert err["detail"] == "Email updates are not supported; deprovision and re-provision the user"
    assert api.get(f"/Users/{user['id']}").json()["userName"] == "put.me@acme.com"
    assert_error(api.put("/Users/nope", json={"schemas": [USER], "userName": "x@acme.com"}), 404)
    stale = api.put(
        f"/Users/{user['id']}",
        json={"schemas": [USER], "userName": "put.me@acme.com"},
        headers={"If-Match": user["meta"]["version"]},
    )
    assert_error(stale, 412)


# --------------------------------------------------------------------------- patch


def test_patch_deactivate_value_form_keeps_user_visible(api: httpx.Client) -> None:
    omar = find(api, "omar@globex.com")
    r = api.patch(
        f"/Users/{omar['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert r.json()["meta"]["lastModified"] >= omar["meta"]["lastModified"]
    again = api.get(f"/Users/{omar['id']}")
    assert again.status_code == 200 and again.json()["active"] is False
    assert find(api, "omar@globex.com")["active"] is False


def test_patch_path_form_entra_casing_and_displayname(api: httpx.Client) -> None:
    lee = find(api, "lee@initech.com")
    r = api.patch(
        f"/Users/{lee['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "replace", "path": "displayName", "value": "Lee C."},
                {"op": "Add", "path": 'emails[type eq "work"].value', "value": "lee@initech.com"},
                {"op": "replace", "path": "name.givenName", "value": "Leo"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is False and body["displayName"] == "Lee C." and body["name"]["givenName"] == "Leo"
    assert body["userName"] == "lee@initech.com"
    r = api.patch(f"/Users/{lee['id']}", json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert r.json()["active"] is True


def test_patch_email_change_and_invalid_ops(api: httpx.Client) -> None:
    priya = find(api, "priya@umbrella.com")
    url = f"/Users/{priya['id']}"

    def patch(*ops: Any, schemas: list[str] | None = None) -> httpx.Response:
        return api.patch(url, json={"schemas": schemas or [PATCH], "Operations": list(ops)})

    err = assert_error(patch({"op": "replace", "path": "userName", "value": "p@umbrella.com"}), 400, "mutability")
    assert "re-provision" in err["detail"]
    assert_error(patch({"op": "replace", "value": {"userName": "p@umbrella.com"}}), 400, "mutability")
    assert patch({"op": "replace", "value": {"userName": "PRIYA@umbrella.com"}}).status_code == 200  # same email
    assert_error(patch({"op": "frobnicate", "path": "active", "value": False}), 400, "invalidSyntax")
    assert_error(patch(), 400, "invalidSyntax")
    assert_error(patch({"op": "replace", "path": "active", "value": False}, schemas=["urn:wrong"]), 400, "invalidSyntax")
    assert_error(patch({"op": "replace", "path": "noSuchAttr", "value": 1}), 400, "invalidPath")
    assert_error(patch({"op": "replace", "path": "name.nope", "value": "x"}), 400, "invalidPath")
    assert_error(patch({"op": "replace", "path": "bad path!", "value": 1}), 400, "invalidPath")
    assert_error(patch({"op": "remove"}), 400, "noTarget")
    assert_error(patch({"op": "replace", "path": 'emails[type eq "home"].value', "value": "x@y.z"}), 400, "noTarget")
    assert_error(patch({"op": "remove", "path": "userName"}), 400, "mutability")
    assert_error(patch({"op": "replace", "path": "id", "value": "x"}), 400, "mutability")
    assert_error(patch({"op": "replace", "path": "active", "value": "perhaps"}), 400, "invalidValue")
    # A failed operation list changes nothing (atomic).
    assert_error(
        patch({"op": "replace", "path": "displayName", "value": "Changed"}, {"op": "replace", "path": "userName", "value": "x@y.z"}),
        400,
        "mutability",
    )
    assert api.get(url).json()["displayName"] == "Priya Raman"
    assert_error(api.patch("/Users/unknown", json={"schemas": [PATCH], "Operations": [{"op": "remove", "path": "displayName"}]}), 404)


def test_patch_remove_and_ignored_attributes(api: httpx.Client) -> None:
    user = create(api, "rm@acme.com", displayName="RM", emails=[{"value": "rm@acme.com", "type": "work", "primary": True}])
    r = api.patch(
        f"/Users/{user['id']}",
        json={"schemas": [PATCH], "Operations": [
            {"op": "remove", "path": "displayName"},
            {"op": "remove", "path": 'emails[type eq "work"]'},
            {"op": "replace", "path": "title", "value": "CTO"},  # accepted, dropped
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "x"},
        ]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "displayName" not in body and "emails" not in body and "title" not in body


# --------------------------------------------------------------------------- delete


def test_delete_then_404(scim: tuple[ScimSandbox, httpx.Client]) -> None:
    sb, api = scim
    user = create(api, "bye@acme.com")
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    assert user["id"] not in sb.users
    assert_error(api.get(f"/Users/{user['id']}"), 404)
    assert_error(api.delete(f"/Users/{user['id']}"), 404)
    assert api.get("/Users", params={"filter": 'userName eq "bye@acme.com"'}).json()["totalResults"] == 0
    again = create(api, "bye@acme.com")  # re-provisioning after removal works
    assert again["id"] != user["id"]


# --------------------------------------------------------------------------- discovery


def test_service_provider_config(api: httpx.Client) -> None:
    r = api.get("/ServiceProviderConfig")
    assert r.status_code == 200 and r.headers["content-type"].startswith(SCIM_CT)
    spc = r.json()
    assert spc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert spc["patch"]["supported"] is True
    assert spc["bulk"]["supported"] is False
    assert spc["filter"] == {"supported": True, "maxResults": 100}
    assert spc["changePassword"]["supported"] is False and spc["sort"]["supported"] is False
    assert spc["etag"]["supported"] is True
    assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    assert api.post("/ServiceProviderConfig", json={}).status_code == 405


def test_resource_types_and_schemas(api: httpx.Client) -> None:
    rts = api.get("/ResourceTypes").json()
    assert rts["schemas"] == [LIST] and rts["totalResults"] == 2
    rt, group_rt = rts["Resources"]
    assert rt["id"] == "User" and rt["endpoint"] == "/Users" and rt["schema"] == USER
    assert group_rt["id"] == "Group" and group_rt["endpoint"] == "/Groups"
    assert api.get("/ResourceTypes/User").json()["name"] == "User"
    assert api.get("/ResourceTypes/Group").json()["schema"] == "urn:ietf:params:scim:schemas:core:2.0:Group"
    assert_error(api.get("/ResourceTypes/Nope"), 404)
    schemas = api.get("/Schemas").json()
    assert schemas["schemas"] == [LIST]
    ids = {s["id"] for s in schemas["Resources"]}
    assert USER in ids
    user_schema = api.get(f"/Schemas/{USER}").json()
    attrs = {a["name"]: a for a in user_schema["attributes"]}
    assert {"userName", "displayName", "active", "name", "emails"} <= set(attrs)
    assert attrs["userName"]["required"] is True and attrs["userName"]["uniqueness"] == "server"
    assert attrs["userName"]["caseExact"] is False
    assert "roles" not in attrs
    assert attrs["groups"]["mutability"] == "readOnly"  # RFC 7643 §4.1.2: membership changes go through /Groups
    assert_error(api.get("/Schemas/urn:nope"), 404)


def test_unknown_paths_are_scim_404(api: httpx.Client) -> None:
    assert_error(api.get("/Groups/no-such-group"), 404)
    assert_error(api.get("/Nope/at/all"), 404)


def test_mounted_in_the_real_sandbox() -> None:
    runner = pytest.importorskip("stripe_identity_mcp.sandbox")
    if not hasattr(runner, "serve_in_thread"):
        pytest.skip("serve_in_thread not available")
    with runner.serve_in_thread(runner.SandboxConfig(empty=False, scim_keep_inactive=True)) as sb:
        with loopback.Client(base_url=sb.scim_base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
            body = c.get("/Users", params={"filter": 'userName eq "jane@acme.com"'}).json()
            assert body["totalResults"] == 1 and body["Resources"][0]["active"] is False
            assert c.get("/ServiceProviderConfig").json()["patch"]["supported"] is True


def test_entra_style_provisioning_flow(api: httpx.Client) -> None:
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    r = api.post("/Users", json={
        "schemas": [USER, ent],
        "externalId": "aad-123",
        "userName": "kim@acme.com",
        "active": True,
        "displayName": "Kim Lee",
        "emails": [{"primary": True, "type": "work", "value": "kim@acme.com"}],
        "name": {"formatted": "Kim Lee", "familyName": "Lee", "givenName": "Kim"},
        ent: {"department": "Finance"},
    })
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert r.json()["externalId"] == "aad-123" and ent not in r.json()
    assert api.get("/Users", params={"filter": 'externalId eq "aad-123"'}).json()["Resources"][0]["id"] == uid
    r = api.patch(f"/Users/{uid}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "value": {"name.familyName": "Lee-Park", "displayName": "Kim Lee-Park", "active": "False"}},
        {"op": "Add", "path": f"{ent}:manager", "value": "mgr"},
    ]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"]["familyName"] == "Lee-Park" and body["displayName"] == "Kim Lee-Park" and body["active"] is False
    assert api.get("/Users", params={"filter": 'userName eq "kim@acme.com" and active eq false'}).json()["totalResults"] == 1
    r = api.patch(f"/Users/{uid}", content=b"active=false", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415)
