"""Fault injection on the sandbox's SCIM mount (/scim/v2), over real loopback HTTP.

Rules posted to /_sandbox/faults with a SCIM `path` hit SCIM requests exactly like /v1 ones; the
sandbox's SCIM store (`sb.sandbox.scim`) proves what was or was not committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, serve_in_thread
from stripe_identity_mcp.sandbox.scim import SCIM_FIXED_IDS
from tests import loopback

TOKEN = "scim_sandbox"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OMAR = SCIM_FIXED_IDS["omar@globex.com"]
DEACTIVATE = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}


def scim_client(sb: SandboxHandle) -> httpx.Client:
    # No keep-alive: every request gets its own connection, so a dropped one cannot leak into the next.
    return loopback.Client(
        base_url=sb.scim_base,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
        timeout=10,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def arm(sb: SandboxHandle, **rule: Any) -> dict[str, Any]:
    r = loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def stats(sb: SandboxHandle) -> dict[str, Any]:
    return loopback.get(f"{sb.base_url}/_sandbox/stats").json()  # type: ignore[no-any-return]


def new_user(email: str) -> dict[str, Any]:
    return {"schemas": [USER], "userName": email, "displayName": "Fault Test"}


@pytest.fixture()
def deleting() -> Iterator[SandboxHandle]:
    cfg = SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0)  # deletion is the default
    with serve_in_thread(cfg) as h:
        yield h


@pytest.fixture()
def keeping() -> Iterator[SandboxHandle]:
    cfg = SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0, scim_keep_inactive=True)
    with serve_in_thread(cfg) as h:
        yield h


def test_500_is_scim_shaped_and_counted_once(fresh) -> None:
    listed = arm(fresh, kind="500", path="/scim/v2/Users", method="GET", count=2)
    assert listed["rules"] == [{"kind": "500", "method": "GET", "path": "/scim/v2/Users", "count": 2, "delay_ms": 0.0}]
    with scim_client(fresh) as c:
        before = len(fresh.sandbox.scim.users)
        created = c.post("/Users", json=new_user("not-faulted@example.com"))  # POST: rule is GET-only
        first, second = c.get("/Users"), c.get(f"/Users/{OMAR}")
        third = c.get("/Users")
    assert created.status_code == 201 and len(fresh.sandbox.scim.users) == before + 1
    for r in (first, second):
        assert r.status_code == 500 and r.headers["content-type"].startswith("application/scim+json")
        body = r.json()
        assert body["schemas"] == [ERROR] and body["status"] == "500" and body["detail"]
    assert third.status_code == 200 and third.json()["totalResults"] == before + 1
    s = stats(fresh)
    assert s["faults_injected"] == 2 and s["by_status"]["500"] == 2
    assert loopback.get(f"{fresh.base_url}/_sandbox/faults").json() == {"rules": []}


def test_429_is_scim_shaped_with_retry_after_and_changes_nothing(fresh) -> None:
    arm(fresh, kind="429", path="/scim/v2/Users", method="POST")
    with scim_client(fresh) as c:
        limited = c.post("/Users", json=new_user("limited@example.com"))
        assert fresh.sandbox.scim.by_email("limited@example.com") is None
        retried = c.post("/Users", json=new_user("limited@example.com"))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["schemas"] == [ERROR] and limited.json()["status"] == "429"
    assert retried.status_code == 201 and fresh.sandbox.scim.by_email("limited@example.com") is not None


def test_reset_drops_the_connection_before_anything_happens(fresh) -> None:
    arm(fresh, kind="reset", path="/scim/v2/Users", method="DELETE")
    with scim_client(fresh) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.delete(f"/Users/{OMAR}")
        assert OMAR in fresh.sandbox.scim.users  # not executed
        assert c.delete(f"/Users/{OMAR}").status_code == 204
    assert OMAR not in fresh.sandbox.scim.users
    assert stats(fresh)["by_status"]["reset"] == 1


def test_drop_after_commit_executes_then_drops(fresh) -> None:
    arm(fresh, kind="drop_after_commit", path="/scim/v2/Users", method="POST")
    arm(fresh, kind="drop_after_commit", path=f"/scim/v2/Users/{OMAR}", method="DELETE")
    with scim_client(fresh) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/Users", json=new_user("lost@example.com"))
        stored = fresh.sandbox.scim.by_email("lost@example.com")
        assert stored is not None  # committed although no answer came back
        again = c.post("/Users", json=new_user("lost@example.com"))  # what a retry meets
        with pytest.raises(httpx.RemoteProtocolError):
            c.delete(f"/Users/{OMAR}")
        assert OMAR not in fresh.sandbox.scim.users
        retried_delete = c.delete(f"/Users/{OMAR}")
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    assert retried_delete.status_code == 404 and retried_delete.json()["schemas"] == [ERROR]
    assert stats(fresh)["by_status"]["dropped"] == 2


def test_slow_fault_delays_but_answers_normally(fresh) -> None:
    arm(fresh, kind="slow", path="/scim/v2/Users", delay_ms=50)
    with scim_client(fresh) as c:
        r = c.get(f"/Users/{OMAR}")
    assert r.status_code == 200 and r.json()["userName"] == "omar@globex.com"
    assert stats(fresh)["faults_injected"] == 1  # the slow rule was taken, not skipped


def test_v1_rules_and_pathless_rules_never_touch_scim(fresh) -> None:
    arm(fresh, kind="500", path="/v1/customers", count=5)
    arm(fresh, kind="reset", count=5)  # no path: /v1 only, as before SCIM faults existed
    with scim_client(fresh) as c:
        answers = [c.get("/Users").status_code, c.post("/Users", json=new_user("pathless@example.com")).status_code]
    assert answers == [200, 201] and stats(fresh)["faults_injected"] == 0
    rules = loopback.get(f"{fresh.base_url}/_sandbox/faults").json()["rules"]
    assert [(r["kind"], r["count"]) for r in rules] == [("500", 5), ("reset", 5)]


@pytest.mark.parametrize("kind", ["lock_timeout", "409"])
def test_lock_timeout_is_refused_for_scim_paths(fresh, kind: str) -> None:
    r = loopback.post(f"{fresh.base_url}/_sandbox/faults", json={"rules": [{"kind": kind, "path": "/scim/v2/Users"}]})
    assert r.status_code == 400 and "/v1 only" in r.json()["error"]
    assert loopback.get(f"{fresh.base_url}/_sandbox/faults").json() == {"rules": []}


def test_random_faults_stay_v1_only() -> None:
    cfg = SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0, fault_rate=1.0, fault_seed=3)
    with serve_in_thread(cfg) as sb:
        with scim_client(sb) as c:
            scim_answers = {c.get("/Users", params={"count": 1}).status_code for _ in range(10)}
        with loopback.Client(base_url=sb.base_url, headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=10) as v1:
            try:
                v1_status: int | str = v1.get("/v1/customers", params={"limit": 1}).status_code
            except httpx.TransportError:
                v1_status = "reset"
    assert scim_answers == {200}
    assert v1_status in (500, 429, "reset")  # every /v1 request is faulted at rate 1.0


def test_keep_inactive_option_keeps_an_inactive_member(keeping) -> None:
    with scim_client(keeping) as c:
        r = c.patch(f"/Users/{OMAR}", json=DEACTIVATE)
    assert r.status_code == 200 and r.json()["active"] is False
    assert keeping.sandbox.scim.users[OMAR]["active"] is False


def test_stripe_like_deactivation_deletes_with_204(deleting) -> None:
    rename = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Omar H."}]}
    with scim_client(deleting) as c:
        renamed = c.patch(f"/Users/{OMAR}", json=rename)  # other PATCHes behave as usual
        off = c.patch(f"/Users/{OMAR}", json=DEACTIVATE)
        gone = c.get(f"/Users/{OMAR}")
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Omar H."
    assert off.status_code == 204 and off.content == b""
    assert gone.status_code == 404 and OMAR not in deleting.sandbox.scim.users


def test_keep_inactive_can_be_switched_at_runtime(fresh) -> None:
    cfg = loopback.post(f"{fresh.base_url}/_sandbox/config", json={"scim_keep_inactive": True})
    assert cfg.status_code == 200 and cfg.json()["scim_keep_inactive"] is True
    with scim_client(fresh) as c:
        kept = c.patch(f"/Users/{OMAR}", json=DEACTIVATE)
        assert kept.status_code == 200 and fresh.sandbox.scim.users[OMAR]["active"] is False
        # the old setting name (opposite sense) still switches deletion back on
        old = loopback.post(f"{fresh.base_url}/_sandbox/config", json={"scim_deactivate_deletes": True})
        assert old.status_code == 200 and old.json()["scim_keep_inactive"] is False
        off = c.patch(f"/Users/{OMAR}", json=DEACTIVATE)
    assert off.status_code == 204 and OMAR not in fresh.sandbox.scim.users


def test_cli_flag_keeps_inactive_members() -> None:
    from stripe_identity_mcp.sandbox.runner import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args([])).scim_keep_inactive is False
    assert config_from_args(build_parser().parse_args(["--scim-keep-inactive"])).scim_keep_inactive is True
    # the old opt-in flag is still accepted; deletion is what it asked for
    assert config_from_args(build_parser().parse_args(["--scim-deactivate-deletes"])).scim_keep_inactive is False
