"""Webhook receiver: Stripe's signature scheme, the mirror it writes, and what it refuses."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from stripe_identity_mcp.mirror import store
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, running_sandbox
from tests.history.helpers import mirror_live, sandbox_live, sync
from tests.http.conftest import http_server, make_tokens

stripe = pytest.importorskip("stripe")

SECRET = "whsec_receiver_test_secret"
OLD_SECRET = "whsec_rotated_out_secret"
AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def stripe_python_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A header made the way stripe-python's own tests make them (tests/test_webhook.py generate_header)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)
    return f"t={timestamp},{stripe.WebhookSignature.EXPECTED_SCHEME}={signature}"


def post_event(base: str, event: dict, header: str | None = None, secret: str = SECRET) -> httpx.Response:
    payload = json.dumps(event)
    headers = {"Content-Type": "application/json"}
    sig = stripe_python_header(payload, secret) if header is None else header
    if sig:
        headers["Stripe-Signature"] = sig
    return loopback.post(base + "/webhooks/stripe", content=payload.encode(), headers=headers)


def events_of(sb, cid: str) -> list[dict]:
    data = loopback.get(sb.base_url + "/v1/events", params={"type": "customer.*", "limit": 100}, headers=AUTH).json()["data"]
    return [e for e in reversed(data) if e["data"]["object"]["id"] == cid]  # oldest first


@pytest.fixture()
def setup(tmp_path: Path):
    db = tmp_path / "mirror.db"
    with running_sandbox(customers=20) as sb:
        sync(sb, db)
        tokens = make_tokens(tmp_path / "tokens.toml", ("bot", "read-only"))
        settings = make_settings(sb, mirror=db, webhook_secret=f"{OLD_SECRET},{SECRET}", tokens_file=tmp_path / "tokens.toml")
        with http_server(settings) as running:
            yield sb, db, running.base, tokens


def test_sandbox_webhooks_signed_like_stripe_update_the_mirror_without_an_mcp_token(setup):
    sb, db, base, _ = setup
    r = loopback.post(sb.base_url + "/_sandbox/webhooks", json={"url": base + "/webhooks/stripe", "secret": SECRET})
    assert r.status_code == 200
    cid = loopback.post(sb.base_url + "/v1/customers", data={"email": "hooked@example.com"}, headers=AUTH).json()["id"]
    loopback.post(sb.base_url + f"/v1/customers/{cid}", data={"name": "Hooked"}, headers=AUTH)
    log = lambda: loopback.post(sb.base_url + "/_sandbox/webhooks/flush").json()["log"]  # noqa: E731
    assert [entry["status"] for entry in log()] == [200, 200]  # flush answers once both were delivered
    assert mirror_live(db)[cid]["name"] == "Hooked"
    assert mirror_live(db) == sandbox_live(sb)
    victim = sorted(sandbox_live(sb))[0]
    loopback.delete(sb.base_url + f"/v1/customers/{victim}", headers=AUTH)
    assert [entry["status"] for entry in log()] == [200, 200, 200]
    assert victim not in mirror_live(db) and mirror_live(db) == sandbox_live(sb)


def test_bad_unsigned_stale_or_malformed_deliveries_are_refused_and_change_nothing(setup):
    sb, db, base, _ = setup
    cid = sorted(sandbox_live(sb))[0]
    loopback.post(sb.base_url + f"/v1/customers/{cid}", data={"name": "Changed"}, headers=AUTH)
    (event,) = [e for e in events_of(sb, cid) if e["type"] == "customer.updated"]
    before = mirror_live(db)
    payload = json.dumps(event)
    cases = {
        "unsigned": post_event(base, event, header=""),
        "wrong secret": post_event(base, event, secret="whsec_nope"),
        "stale": post_event(base, event, header=stripe_python_header(payload, SECRET, int(time.time()) - 301)),
        "garbage header": post_event(base, event, header="v1=abc,t=notanumber"),
        "tampered": loopback.post(base + "/webhooks/stripe", content=payload.replace("Changed", "Evil").encode(),
                               headers={"Stripe-Signature": stripe_python_header(payload, SECRET)}),
        "not an event": post_event(base, {"hello": "world"}),
        "other mode": post_event(base, {**event, "livemode": True}),
    }
    for name, response in cases.items():
        assert response.status_code == 400, name
        assert SECRET not in response.text and "error" in response.json(), name
    assert mirror_live(db) == before  # nothing applied
    assert loopback.get(base + "/webhooks/stripe").status_code == 405
    # what stripe-python itself refuses, we refuse too (and vice versa for the good one)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stripe_python_header(payload, SECRET, int(time.time()) - 301), SECRET)
    good = post_event(base, event)
    assert good.status_code == 200 and mirror_live(db)[cid]["name"] == "Changed"


def test_rotation_and_several_v1_signatures(setup):
    sb, db, base, _ = setup
    cid = sorted(sandbox_live(sb))[1]
    loopback.post(sb.base_url + f"/v1/customers/{cid}", data={"name": "Rotated"}, headers=AUTH)
    event = events_of(sb, cid)[-1]
    payload = json.dumps(event)
    t = int(time.time())
    bad = stripe.WebhookSignature._compute_signature(f"{t}.{payload}", "whsec_other")
    good_old = stripe.WebhookSignature._compute_signature(f"{t}.{payload}", OLD_SECRET)
    r = post_event(base, event, header=f"t={t},v1={bad},v1={good_old},v0=ignored")
    assert r.status_code == 200 and mirror_live(db)[cid]["name"] == "Rotated"


def test_replayed_and_reordered_webhooks_leave_the_mirror_exact(setup):
    sb, db, base, _ = setup
    cid = sorted(sandbox_live(sb))[2]
    for i in range(4):  # several changes, most in the same second: order unknowable from timestamps
        loopback.post(sb.base_url + f"/v1/customers/{cid}", data={"metadata[n]": str(i)}, headers=AUTH)
    created = loopback.post(sb.base_url + "/v1/customers", data={"email": "late@example.com"}, headers=AUTH).json()["id"]
    loopback.delete(sb.base_url + f"/v1/customers/{created}", headers=AUTH)
    deliveries = events_of(sb, cid) + events_of(sb, created)
    deliveries = deliveries + deliveries[:3]  # replays
    random.Random(7).shuffle(deliveries)
    for event in deliveries:
        assert post_event(base, event).status_code == 200
    # same-second reorders are settled by re-reading the customer from Stripe after the answer
    assert mirror_live(db) == sandbox_live(sb)  # same-second reorders were re-read before the answer
    assert created not in mirror_live(db)


STATES = st.lists(st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"])), min_size=1, max_size=6)


@hsettings(max_examples=60, deadline=None)
@given(STATES, st.booleans(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_any_order_of_distinct_second_events_with_replays_gives_the_newest_state(states, delete, rnd, replays):
    """Store level: events one second apart, delivered shuffled with replays → the last state (or gone)."""
    conn = store.connect(":memory:")
    events = []
    for i, md in enumerate(states):
        obj = {"id": "cus_prop", "object": "customer", "created": 1000, "email": None, "metadata": md}
        kind = "customer.created" if i == 0 else "customer.updated"
        events.append({"id": f"evt_{i}", "object": "event", "type": kind, "created": 2000 + i, "data": {"object": obj}})
    if delete:
        events.append({"id": "evt_del", "object": "event", "type": "customer.deleted", "created": 2000 + len(states),
                       "data": {"object": events[-1]["data"]["object"]}})
    deliveries = events + [rnd.choice(events) for _ in range(replays)]
    rnd.shuffle(deliveries)
    for event in deliveries:
        with store.transaction(conn):
            assert store.apply_event(conn, event, ordered=False) != "ambiguous"
    live = list(store.live_customers(conn))
    if delete:
        assert live == []
    else:
        assert live == [events[-1]["data"]["object"]]


def test_sync_after_a_same_second_webhook_ends_with_the_newest_state():
    """A webhook applied E2; sync then replays [E1, E2] (same second) in Stripe's order → E2's state."""
    conn = store.connect(":memory:")
    obj = lambda n: {"id": "cus_tie", "object": "customer", "created": 1, "email": None, "metadata": {"n": n}}  # noqa: E731
    e1 = {"id": "evt_1", "object": "event", "type": "customer.updated", "created": 5000, "data": {"object": obj("1")}}
    e2 = {"id": "evt_2", "object": "event", "type": "customer.updated", "created": 5000, "data": {"object": obj("2")}}
    with store.transaction(conn):
        store.put_state(conn, obj("0"), 4000)
        assert store.apply_event(conn, e2, ordered=False) == "updated"
        assert store.apply_event(conn, e2, ordered=False) == "duplicate"
        assert store.apply_event(conn, e1, ordered=False) == "ambiguous"  # same second, other state: re-read
    with store.transaction(conn):
        for event in (e1, e2):
            store.apply_event(conn, event, ordered=True)
    assert list(store.live_customers(conn)) == [obj("2")]


def test_webhook_secret_needs_a_mirror_and_the_whsec_prefix(tmp_path):
    from stripe_identity_mcp.settings import ConfigError
    from stripe_identity_mcp.transport_http import HttpOptions, prepare_http

    with running_sandbox(empty=True) as sb:
        with pytest.raises(ConfigError, match="--mirror"):
            prepare_http(make_settings(sb, webhook_secret=SECRET), HttpOptions(port=0))
        with pytest.raises(Exception, match="whsec_"):
            make_settings(sb, webhook_secret="sk_test_oops", mirror=tmp_path / "m.db")
        assert SECRET in make_settings(sb, webhook_secret=SECRET).secrets()  # redacted from logs
