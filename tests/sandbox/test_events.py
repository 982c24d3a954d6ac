"""The sandbox's Events API and signed webhook delivery, against real loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, serve_in_thread
from stripe_identity_mcp.sandbox.seed import JANE_ID
from tests import loopback
from tests.sandbox.conftest import RK_KEY, client

stripe = pytest.importorskip("stripe")

SECRET = "whsec_test_sandbox_secret"


@pytest.fixture()
def fresh() -> Iterator[SandboxHandle]:
    with serve_in_thread(SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0)) as h:
        yield h


class Receiver:
    """A plain HTTP endpoint that records every POST (body bytes, Stripe-Signature)."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, str]] = []
        self.cond = threading.Condition()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.cond:
                    outer.got.append((body, self.headers.get("Stripe-Signature", "")))
                    outer.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[bytes, str]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout), f"only {len(self.got)} of {n} deliveries"
            return list(self.got)

    def close(self) -> None:
        self.server.shutdown()


def test_customer_changes_are_events_with_stripes_shape(fresh: SandboxHandle) -> None:
    with client(fresh) as api:
        created = api.post("/v1/customers", data={"email": "ev@example.com", "metadata[plan]": "a"},
                           headers={"Idempotency-Key": "k-create"}).json()
        cid = created["id"]
        api.post(f"/v1/customers/{cid}", data={"email": "EV@example.com", "metadata[plan]": "b", "metadata[tier]": "1"})
        api.post(f"/v1/customers/{cid}", data={"name": ""})  # changes nothing: no event
        api.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": cid})
        api.delete(f"/v1/customers/{cid}")
        body = api.get("/v1/events", params={"type": "customer.*", "limit": 10}).json()
        events = [e for e in body["data"] if e["data"]["object"]["id"] == cid]
        assert [e["type"] for e in events] == ["customer.deleted", "customer.updated", "customer.created"]
        deleted, updated, first = events
        for e in events:
            assert e["object"] == "event" and e["id"].startswith("evt_") and e["livemode"] is False
            assert set(e) >= {"api_version", "created", "data", "pending_webhooks", "request", "type"}
            assert e["request"]["id"].startswith("req_")
        assert first["request"]["idempotency_key"] == "k-create"
        assert "previous_attributes" not in first["data"]
        assert updated["data"]["previous_attributes"] == {"email": "ev@example.com", "metadata": {"plan": "a", "tier": None}}
        assert updated["data"]["object"]["email"] == "EV@example.com"
        assert deleted["data"]["object"]["email"] == "EV@example.com"  # the last full state
        one = api.get(f"/v1/events/{updated['id']}").json()
        assert one == updated
        pm_events = api.get("/v1/events", params={"type": "payment_method.attached"}).json()["data"]
        assert pm_events and pm_events[0]["data"]["object"]["customer"] == cid
        both = api.get("/v1/events", params={"types[]": ["customer.created", "customer.deleted"]}).json()["data"]
        assert [e["type"] for e in both if e["data"]["object"]["id"] == cid] == ["customer.deleted", "customer.created"]
        assert api.get("/v1/events", params={"type": "customer.*", "types[]": ["x"]}).status_code == 400


def test_event_cursors_created_filter_and_retention(fresh: SandboxHandle) -> None:
    with client(fresh) as api:
        for i in range(5):
            api.post(f"/v1/customers/{JANE_ID}", data={"metadata[n]": str(i)})
        all_ = api.get("/v1/events", params={"limit": 100}).json()["data"]
        assert len(all_) == 5
        page1 = api.get("/v1/events", params={"limit": 2}).json()
        assert page1["has_more"] and [e["id"] for e in page1["data"]] == [e["id"] for e in all_[:2]]
        page2 = api.get("/v1/events", params={"limit": 2, "starting_after": page1["data"][-1]["id"]}).json()
        assert [e["id"] for e in page2["data"]] == [e["id"] for e in all_[2:4]]
        newer = api.get("/v1/events", params={"limit": 2, "ending_before": all_[4]["id"]}).json()
        assert [e["id"] for e in newer["data"]] == [e["id"] for e in all_[2:4]] and newer["has_more"]
        later = api.get("/v1/events", params={"created[gt]": all_[0]["created"]}).json()["data"]
        assert later == []
        assert loopback.post(fresh.base_url + "/_sandbox/events/expire").json() == {"expired": 5}
        assert api.get("/v1/events").json()["data"] == []
        gone = api.get(f"/v1/events/{all_[0]['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "resource_missing"
        assert api.get("/v1/events", params={"starting_after": all_[0]["id"]}).status_code == 404
    with client(fresh, RK_KEY) as rk:  # a restricted key without Events: Read is refused, as by Stripe
        assert rk.get("/v1/events").status_code == 403


def test_dashboard_changes_have_no_request_id(fresh: SandboxHandle) -> None:
    r = loopback.post(fresh.base_url + "/_sandbox/dashboard", json={"customer": JANE_ID, "params": {"name": "Jane Dash"}})
    assert r.status_code == 200 and r.json()["name"] == "Jane Dash"
    with client(fresh) as api:
        (event,) = api.get("/v1/events").json()["data"]
    assert event["type"] == "customer.updated" and event["request"] == {"id": None, "idempotency_key": None}


def test_webhooks_are_signed_so_stripe_python_accepts_them(fresh: SandboxHandle) -> None:
    rx = Receiver()
    try:
        r = loopback.post(fresh.base_url + "/_sandbox/webhooks", json={"url": rx.url, "secret": SECRET, "types": ["customer.*"]})
        assert r.status_code == 200 and "secret" not in r.json()
        with client(fresh) as api:
            cid = api.post("/v1/customers", data={"email": "hook@example.com"}).json()["id"]
            api.post(f"/v1/customers/{cid}", data={"name": "Hook"})
            api.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": cid})  # filtered out
            api.delete(f"/v1/customers/{cid}")
        got = rx.wait_for(3)
        events = [stripe.Webhook.construct_event(body, sig, SECRET) for body, sig in got]
        assert [e.type for e in events] == ["customer.created", "customer.updated", "customer.deleted"]
        assert all(e.data.object.id == cid for e in events)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(got[0][0], got[0][1], "whsec_other")
        log = loopback.get(fresh.base_url + "/_sandbox/webhooks").json()["log"]
        assert [entry["status"] for entry in log] == [200, 200, 200]
        assert json.loads(got[0][0])["id"] == log[0]["event"]
    finally:
        rx.close()


def test_previous_attributes_show_only_the_changed_keys_of_a_nested_hash(fresh: SandboxHandle) -> None:
    with client(fresh) as api:
        cid = api.post("/v1/customers", data={"address[line1]": "1 Main", "address[city]": "Oslo"}).json()["id"]
        api.post(f"/v1/customers/{cid}", data={"address[line1]": "1 Main", "address[city]": "Bergen"})
        (event,) = api.get("/v1/events", params={"type": "customer.updated"}).json()["data"]
    assert event["data"]["previous_attributes"] == {"address": {"city": "Oslo"}}
    assert event["data"]["object"]["address"]["city"] == "Bergen"
