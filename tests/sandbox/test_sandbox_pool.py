"""The tests' pooled sandbox servers (tests/conftest.py `running_sandbox`): one loopback server per
worker is reused, but every use gets fresh sandbox state, and a released server serves nobody's."""

from __future__ import annotations

from tests import loopback
from tests.conftest import SANDBOX_KEY, running_sandbox

AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def test_a_reused_server_serves_fresh_state_and_nothing_between_uses() -> None:
    with running_sandbox(empty=True) as first:
        made = loopback.post(first.base_url + "/v1/customers", data={"email": "pool@example.com"}, headers=AUTH)
        assert made.status_code == 200
        assert len(first.sandbox.stores["test"].customers) == 1
        base = first.base_url
    between = loopback.get(base + "/v1/customers", headers=AUTH)
    assert between.status_code == 503  # released: no test's state behind it
    with running_sandbox(empty=True) as second:
        assert second.base_url == base  # the same server, so the freshness below is the pool's doing
        listed = loopback.get(second.base_url + "/v1/customers", headers=AUTH)
        assert listed.status_code == 200 and listed.json()["data"] == []
        assert second.sandbox is not first.sandbox


def test_sandboxes_held_at_once_are_separate_servers() -> None:
    with running_sandbox(empty=True) as a, running_sandbox(empty=True) as b:
        assert a.base_url != b.base_url
        loopback.post(a.base_url + "/v1/customers", data={"email": "only-a@example.com"}, headers=AUTH)
        assert loopback.get(b.base_url + "/v1/customers", headers=AUTH).json()["data"] == []
