"""Behaviour of the sandbox over real HTTP (httpx)."""

from __future__ import annotations

import httpx
import pytest

from stripe_identity_mcp.sandbox import SandboxConfig, serve_in_thread
from stripe_identity_mcp.sandbox.forms import parse_form
from stripe_identity_mcp.sandbox.seed import JANE_ID, JANE_PM_ID, JANE_SUB_ID, JANE_VARIANT_ID, LEE_ID, OMAR_ID
from tests import loopback

from .conftest import LIVE_KEY, RK_KEY, TEST_KEY, client


def err(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["request-id"].startswith("req_") and len(r.headers["request-id"]) == 18
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["error"]


# ------------------------------------------------------------------ form encoding
def test_parse_form_brackets() -> None:
    p = parse_form("metadata[a]=1&metadata[b]=&expand[]=x&expand[]=y&items[0][price]=p&items[1][price]=q"
                   "&address[line1]=L&description=&expand2[0]=a&expand2[1]=b&created[gte]=5")
    assert p == {"metadata": {"a": "1", "b": ""}, "expand": ["x", "y"], "items": [{"price": "p"}, {"price": "q"}],
                 "address": {"line1": "L"}, "description": "", "expand2": ["a", "b"], "created": {"gte": "5"}}


def test_form_unset_and_metadata(api: httpx.Client) -> None:
    c = api.post("/v1/customers", data={"email": "f@example.com", "description": "d", "phone": "+1555",
                                        "metadata[a]": "1", "metadata[b]": "2", "address[line1]": "x"}).json()
    assert c["metadata"] == {"a": "1", "b": "2"} and c["address"]["line1"] == "x" and c["address"]["city"] is None
    u = api.post(f"/v1/customers/{c['id']}", data={"description": "", "metadata[a]": "", "metadata[c]": "3"}).json()
    assert u["description"] is None and u["metadata"] == {"b": "2", "c": "3"} and u["phone"] == "+1555"
    u = api.post(f"/v1/customers/{c['id']}", data={"metadata": "", "address": ""}).json()
    assert u["metadata"] == {} and u["address"] is None
    e = api.get(f"/v1/customers/{c['id']}", params={"expand[0]": "subscriptions"}).json()
    assert e["subscriptions"]["object"] == "list"
    bad = err(api.post("/v1/customers", data={"foo": "bar"}), 400)
    assert bad["code"] == "parameter_unknown" and bad["param"] == "foo" and bad["message"] == "Received unknown parameter: foo"
    bad = err(api.post("/v1/customers", data={"address[planet]": "mars"}), 400)
    assert bad["param"] == "address[planet]"
    bad = err(api.post("/v1/customers", content=b'{"name": "x"}', headers={"Content-Type": "application/json"}), 400)


def test_metadata_limits(api: httpx.Client) -> None:
    e = err(api.post("/v1/customers", data={"metadata[" + "k" * 41 + "]": "v"}), 400)
    assert e["param"].startswith("metadata[")
    e = err(api.post("/v1/customers", data={"metadata[k]": "v" * 501}), 400)
    assert e["param"] == "metadata[k]" and "500" in e["message"]
    e = err(api.post("/v1/customers", data={f"metadata[k{i}]": "v" for i in range(51)}), 400)
    assert e["param"] == "metadata" and "50 keys" in e["message"]
    ok = api.post("/v1/customers", data={f"metadata[k{i}]": "v" for i in range(50)})
    assert ok.status_code == 200 and len(ok.json()["metadata"]) == 50
    e = err(api.post("/v1/customers", content=b"metadata[a[b]]=v", headers={"Content-Type": "application/x-www-form-urlencoded"}), 400)
    assert e["param"] == "metadata"


# ------------------------------------------------------------------ lists
def test_list_order_cursors_limits(api: httpx.Client) -> None:
    first = api.get("/v1/customers", params={"limit": 5}).json()
    assert first["object"] == "list" and first["url"] == "/v1/customers" and first["has_more"]
    keys = [c["created"] for c in first["data"]]
    assert keys == sorted(keys, reverse=True)
    assert len(api.get("/v1/customers").json()["data"]) == 10
    nxt = api.get("/v1/customers", params={"limit": 5, "starting_after": first["data"][-1]["id"]}).json()
    assert nxt["data"][0]["created"] <= first["data"][-1]["created"]
    assert not {c["id"] for c in nxt["data"]} & {c["id"] for c in first["data"]}
    back = api.get("/v1/customers", params={"limit": 5, "ending_before": nxt["data"][0]["id"]}).json()
    assert [c["id"] for c in back["data"]] == [c["id"] for c in first["data"]]
    for bad, msg in ((0, "greater than or equal to 1"), (101, "less than or equal to 100"), ("abc", "Invalid integer")):
        e = err(api.get("/v1/customers", params={"limit": bad}), 400)
        assert e["param"] == "limit" and e["code"] == "parameter_invalid_integer" and msg in e["message"]
    e = err(api.get("/v1/customers", params={"starting_after": "cus_nope"}), 404)
    assert e["param"] == "starting_after" and e["code"] == "resource_missing"
    e = err(api.get("/v1/customers", params={"starting_after": LEE_ID}), 404)


def test_list_walk_all_and_created_filters(api: httpx.Client, sandbox) -> None:
    total = sandbox.app.state.sandbox.stores["test"].live_customer_count()
    seen, cursor = [], None
    for _ in range(1000):
        params = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
        page = api.get("/v1/customers", params=params).json()
        seen += page["data"]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert len(seen) == total and len({c["id"] for c in seen}) == total
    assert all(not c.get("deleted") for c in seen)
    mid = seen[len(seen) // 2]["created"]
    gte = api.get("/v1/customers", params={"created[gte]": mid, "limit": 100}).json()["data"]
    assert gte and all(c["created"] >= mid for c in gte)
    lt = api.get("/v1/customers", params={"created[lt]": mid, "limit": 100}).json()["data"]
    assert lt and all(c["created"] < mid for c in lt)
    exact = api.get("/v1/customers", params={"created": mid}).json()["data"]
    assert exact and all(c["created"] == mid for c in exact)
    e = err(api.get("/v1/customers", params={"created[gte]": "soon"}), 400)
    assert e["param"] == "created[gte]"


def test_email_filter_is_exact_and_case_sensitive(api: httpx.Client) -> None:
    lower = api.get("/v1/customers", params={"email": "jane@acme.com", "limit": 100}).json()["data"]
    assert JANE_ID in {c["id"] for c in lower} and all(c["email"] == "jane@acme.com" for c in lower)
    upper = api.get("/v1/customers", params={"email": "Jane@Acme.com"}).json()["data"]
    assert [c["id"] for c in upper] == [JANE_VARIANT_ID]
    assert api.get("/v1/customers", params={"email": "lee@initech.com"}).json()["data"] == []
    assert [c["id"] for c in api.get("/v1/customers", params={"email": "omar@globex.com"}).json()["data"]] == [OMAR_ID]


def test_deleted_retrieve_and_delete_twice(api: httpx.Client) -> None:
    assert api.get(f"/v1/customers/{LEE_ID}").json() == {"id": LEE_ID, "object": "customer", "deleted": True}
    e = err(api.delete(f"/v1/customers/{LEE_ID}"), 404)
    assert e["code"] == "resource_missing" and e["message"] == f"No such customer: '{LEE_ID}'"
    e = err(api.get("/v1/customers/cus_missing"), 404)
    assert e["param"] == "id" and e["type"] == "invalid_request_error"


def test_subscriptions_cancelled_on_delete(api: httpx.Client) -> None:
    c = api.post("/v1/customers", data={"email": "subs@example.com"}).json()
    s = api.post("/v1/subscriptions", data={"customer": c["id"], "items[0][price]": "price_x"}).json()
    assert s["status"] == "active" and s["id"].startswith("sub_")
    assert [x["id"] for x in api.get("/v1/subscriptions", params={"customer": c["id"]}).json()["data"]] == [s["id"]]
    assert api.delete(f"/v1/customers/{c['id']}").json()["deleted"] is True
    s2 = api.get(f"/v1/subscriptions/{s['id']}").json()
    assert s2["status"] == "canceled" and s2["canceled_at"]
    assert api.get("/v1/subscriptions", params={"customer": c["id"]}).json()["data"] == []
    assert len(api.get("/v1/subscriptions", params={"customer": c["id"], "status": "all"}).json()["data"]) == 1
    jane = api.get(f"/v1/customers/{JANE_ID}", params={"expand[]": "subscriptions"}).json()
    assert JANE_SUB_ID in [x["id"] for x in jane["subscriptions"]["data"]]


# ------------------------------------------------------------------ search
def test_search_subset_and_errors(api: httpx.Client) -> None:
    def ids(q: str) -> set[str]:
        r = api.get("/v1/customers/search", params={"query": q, "limit": 100})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "search_result" and body["url"] == "/v1/customers/search" and "total_count" not in body
        return {c["id"] for c in body["data"]}

    janes = ids("email:'jane@acme.com'")
    assert {JANE_ID, JANE_VARIANT_ID} <= janes and LEE_ID not in ids("email:'lee@initech.com'")
    assert OMAR_ID in ids('name:"omar haddad"')
    assert OMAR_ID in ids("name~'hadda'")
    assert JANE_ID in ids("metadata['crm_id']:'881'")
    assert ids("email:'jane@acme.com' OR email:'omar@globex.com'") >= {JANE_ID, OMAR_ID}
    assert JANE_ID not in ids("email:'jane@acme.com' AND -name:'Jane Doe'")
    assert JANE_ID in ids("email:'jane@acme.com' AND created<1750000000 AND created>=1748859072")
    assert ids("name:'O\\'Brien Nobody'") == set()
    r = api.get("/v1/customers/search", params={"query": "created>0", "expand[]": "total_count", "limit": 3}).json()
    assert r["total_count"] > 3 and r["has_more"] and r["next_page"]
    r2 = api.get("/v1/customers/search", params={"query": "created>0", "limit": 3, "page": r["next_page"]}).json()
    assert not {c["id"] for c in r2["data"]} & {c["id"] for c in r["data"]}
    for q in ("foo:'x'", "name~'ab'", "email:'a' AND name:'b' OR phone:'c'", "email:'unterminated", "email:bare", "email"):
        e = err(api.get("/v1/customers/search", params={"query": q}), 400)
        assert e["param"] == "query" and e["type"] == "invalid_request_error"
    e = err(api.get("/v1/customers/search", params={"query": "created>0", "page": "garbage!!"}), 400)
    assert e["param"] == "page"
    e = err(api.get("/v1/customers/search"), 400)
    assert e["code"] == "parameter_missing"


def test_search_lag() -> None:
    for lag, visible in ((3600.0, False), (0.0, True)):
        with serve_in_thread(SandboxConfig(customers=20, rate_limit=None, search_lag_s=lag)) as h, client(h) as c:
            new = c.post("/v1/customers", data={"email": "lagged@example.com"}).json()
            found = c.get("/v1/customers/search", params={"query": "email:'lagged@example.com'"}).json()["data"]
            assert (new["id"] in [x["id"] for x in found]) is visible
            # an update: with lag the old indexed version is what search sees
            c.post(f"/v1/customers/{OMAR_ID}", data={"name": "Omar Renamed"})
            old = c.get("/v1/customers/search", params={"query": "name:'Omar Haddad'"}).json()["data"]
            assert (OMAR_ID in [x["id"] for x in old]) is (not visible)


# ------------------------------------------------------------------ auth, modes, permissions
def test_auth_errors(sandbox) -> None:
    with client(sandbox, None) as anon:
        e = err(anon.get("/v1/customers"), 401)
        assert e["message"].startswith("You did not provide an API key.")
    with client(sandbox, "sk_test_abcdefghijklmnabcd") as bad:
        r = bad.get("/v1/customers")
        e = err(r, 401)
        assert e["message"] == "Invalid API Key provided: sk_test_****abcd"
        assert "abcdefghijklmn" not in r.text
    basic = loopback.get(sandbox.base_url + "/v1/customers", params={"limit": 1}, auth=(TEST_KEY, ""))
    assert basic.status_code == 200


def test_restricted_key(sandbox) -> None:
    with client(sandbox, RK_KEY) as rk:
        assert rk.get(f"/v1/customers/{JANE_ID}").status_code == 200
        assert rk.get(f"/v1/customers/{JANE_ID}/payment_methods").status_code == 200
        r = rk.post("/v1/customers", data={"name": "x"})
        e = err(r, 403)
        assert e["message"] == ("The provided key 'rk_test_*****ndbox' does not have the required permissions for this endpoint "
                                "on account 'acct_1Sandbox'. Having the 'rak_customer_write' permission would allow this request to continue.")
        assert "rak_connected_account_read" in err(rk.get("/v1/accounts"), 403)["message"]
        assert "rak_payment_method_write" in err(rk.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": JANE_ID}), 403)["message"]


def test_live_test_separation(sandbox) -> None:
    with client(sandbox, LIVE_KEY) as live:
        e = err(live.get(f"/v1/customers/{JANE_ID}"), 404)
        assert e["message"] == (f"No such customer: '{JANE_ID}'; a similar object exists in test mode, "
                                "but a live mode key was used to make this request.")
        page = live.get("/v1/customers").json()
        assert len(page["data"]) == 5 and all(c["livemode"] for c in page["data"])
        live_id = page["data"][0]["id"]
        e = err(live.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": live_id}), 404)
        assert e["message"] == "No such PaymentMethod: 'pm_card_visa'"
        e = err(live.post("/v1/billing_portal/sessions", data={"customer": live_id}), 400)
        assert "in live mode" in e["message"] and "https://dashboard.stripe.com/settings/billing/portal" in e["message"]
        assert live.get("/v1/billing_portal/configurations").json()["data"] == []
    with client(sandbox) as test:
        e = err(test.get(f"/v1/customers/{live_id}"), 404)
        assert "a similar object exists in live mode, but a test mode key was used" in e["message"]


# ------------------------------------------------------------------ idempotency
def test_idempotency(api: httpx.Client, sandbox) -> None:
    before = sandbox.app.state.sandbox.stores["test"].live_customer_count()
    h = {"Idempotency-Key": "idem-http-1"}
    a = api.post("/v1/customers", headers=h, data={"email": "idem@example.com"})
    b = api.post("/v1/customers", headers=h, data={"email": "idem@example.com"})
    assert a.json() == b.json() and b.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in a.headers
    assert sandbox.app.state.sandbox.stores["test"].live_customer_count() == before + 1
    e = err(api.post("/v1/customers", headers=h, data={"email": "other@example.com"}), 400)
    assert e["type"] == "idempotency_error"
    assert e["message"] == ("Keys for idempotent requests can only be used with the same parameters they were first used with. "
                            "Try using a key other than 'idem-http-1' if you meant to execute a different request.")


# ------------------------------------------------------------------ rate limit and faults
def test_rate_limit_429() -> None:
    with serve_in_thread(SandboxConfig(customers=10, rate_limit=5)) as h, client(h) as c:
        statuses = [c.get("/v1/customers", params={"limit": 1}) for _ in range(12)]
        codes = [r.status_code for r in statuses]
        assert codes[:5] == [200] * 5 and 429 in codes
        r = next(r for r in statuses if r.status_code == 429)
        e = err(r, 429)
        assert e["code"] == "rate_limit" and e["message"].startswith("Request rate limit exceeded.")
        # Stripe's libraries retry a 429 only on Stripe-Should-Retry: true, sent for lock timeouts alone
        assert "stripe-should-retry" not in r.headers and r.headers["stripe-ratelimit-limit"] == "5"
        assert int(statuses[0].headers["stripe-ratelimit-remaining"]) == 4
        before = h.app.state.sandbox.stores["test"].live_customer_count()
        for _ in range(10):
            c.post("/v1/customers", data={"email": "x@example.com"})
        after = h.app.state.sandbox.stores["test"].live_customer_count()
        assert after - before < 10  # 429s did not change state


def test_fault_kinds(fresh) -> None:
    sb = fresh.app.state.sandbox
    with client(fresh) as c:
        def arm(kind: str, **kw) -> None:
            assert c.post("/_sandbox/faults", json={"rules": [{"kind": kind, "path": "/v1/customers", "method": "POST", **kw}]}).status_code == 200

        count = lambda: sb.stores["test"].live_customer_count()  # noqa: E731
        n0 = count()
        arm("500")
        r = c.post("/v1/customers", data={"email": "f@example.com"})
        assert err(r, 500)["type"] == "api_error" and r.headers["stripe-should-retry"] == "true" and count() == n0
        arm("429")
        assert err(c.post("/v1/customers", data={}), 429)["code"] == "rate_limit" and count() == n0
        arm("409")  # the old name of the lock-timeout fault: now Stripe's 429 lock_timeout
        r = c.post("/v1/customers", data={})
        assert err(r, 429)["code"] == "lock_timeout" and r.headers["stripe-should-retry"] == "true" and count() == n0
        arm("reset")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
            c.post("/v1/customers", data={"email": "reset@example.com"})
        assert count() == n0
        arm("drop_after_commit")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.post("/v1/customers", headers={"Idempotency-Key": "dac-1"}, data={"email": "dropped@example.com"})
        assert count() == n0 + 1
        assert [x["email"] for x in c.get("/v1/customers", params={"email": "dropped@example.com"}).json()["data"]] == ["dropped@example.com"]
        replay = c.post("/v1/customers", headers={"Idempotency-Key": "dac-1"}, data={"email": "dropped@example.com"})
        assert replay.headers["idempotent-replayed"] == "true" and count() == n0 + 1
        arm("slow", delay_ms=50)
        assert c.post("/v1/customers", data={}).status_code == 200
        # 500s are not saved for idempotency: a retry executes
        arm("500")
        assert c.post("/v1/customers", headers={"Idempotency-Key": "k500"}, data={"name": "n"}).status_code == 500
        ok = c.post("/v1/customers", headers={"Idempotency-Key": "k500"}, data={"name": "n"})
        assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
        stats = c.get("/_sandbox/stats").json()
        assert stats["faults_injected"] == 7 and stats["by_status"]["500"] == 2 and stats["customers"]["test"] == count()
        c.post("/_sandbox/faults", json={"rules": [{"kind": "500", "count": 3}]})
        assert c.delete("/_sandbox/faults").json() == {"rules": []}
        assert c.get("/v1/customers", params={"limit": 1}).status_code == 200
        cfg = c.post("/_sandbox/config", json={"portal_configured": {"test": False}}).json()
        assert cfg["portal_configured"]["test"] is False
        e = err(c.post("/v1/billing_portal/sessions", data={"customer": JANE_ID}), 400)
        assert e["message"].startswith("You can’t create a portal session in test mode")
        assert c.get("/v1/billing_portal/configurations").json()["data"] == []
        c.post("/_sandbox/reset-stats")
        assert c.get("/_sandbox/stats").json()["requests"] == 0


def test_random_faults_are_seeded() -> None:
    def run() -> list[int | str]:
        out: list[int | str] = []
        with serve_in_thread(SandboxConfig(customers=5, rate_limit=None, fault_rate=0.5, fault_seed=7)) as h:
            for _ in range(20):
                with client(h) as c:
                    try:
                        out.append(c.get("/v1/customers", params={"limit": 1}).status_code)
                    except httpx.TransportError:
                        out.append("reset")
        return out

    a = run()
    assert a == run() and set(a) - {200}


# ------------------------------------------------------------------ payment methods, portal, unknown paths
def test_payment_methods(api: httpx.Client) -> None:
    c = api.post("/v1/customers", data={"email": "cards@example.com", "payment_method": "pm_card_amex",
                                        "invoice_settings[default_payment_method]": "pm_card_amex"}).json()
    dpm = c["invoice_settings"]["default_payment_method"]
    assert dpm.startswith("pm_") and len(dpm) == 27
    pm = api.post("/v1/payment_methods/pm_card_visa_debit/attach", data={"customer": c["id"]}).json()
    assert (pm["card"]["brand"], pm["card"]["last4"], pm["card"]["funding"]) == ("visa", "5556", "debit")
    listed = api.get(f"/v1/customers/{c['id']}/payment_methods").json()
    assert [p["id"] for p in listed["data"]] == [pm["id"], dpm]
    other = api.post("/v1/customers", data={"email": "other@example.com"}).json()
    e = err(api.post(f"/v1/payment_methods/{pm['id']}/attach", data={"customer": other["id"]}), 400)
    assert e["message"] == "The payment method you provided has already been attached to a customer."
    e = err(api.post(f"/v1/customers/{other['id']}", data={"invoice_settings[default_payment_method]": pm["id"]}), 400)
    assert e["param"] == "invoice_settings[default_payment_method]"
    e = err(api.post(f"/v1/customers/{other['id']}", data={"invoice_settings[default_payment_method]": "pm_nope"}), 400)
    assert e["message"] == "No such PaymentMethod: 'pm_nope'"
    api.post(f"/v1/payment_methods/{dpm}/detach")
    assert api.get(f"/v1/customers/{c['id']}").json()["invoice_settings"]["default_payment_method"] is None
    jane = api.get(f"/v1/customers/{JANE_ID}").json()
    assert jane["invoice_settings"]["default_payment_method"] == JANE_PM_ID


def test_portal_and_unknown_paths(api: httpx.Client) -> None:
    s = api.post("/v1/billing_portal/sessions", data={"customer": JANE_ID, "return_url": "https://example.com"}).json()
    assert s["id"].startswith("bps_1") and s["object"] == "billing_portal.session" and s["flow"] is None
    assert s["url"].startswith("https://billing.stripe.com/p/session/test_")
    e = err(api.post("/v1/billing_portal/sessions", data={"customer": "cus_nobody"}), 404)
    assert e["code"] == "resource_missing"
    e = err(api.get("/v1/foo"), 404)
    assert e["message"].startswith("Unrecognized request URL (GET: /v1/foo).")
    r = api.get("/v1/customers", headers={"Stripe-Version": "2024-06-20"})
    assert r.headers["stripe-version"] == "2024-06-20"
    assert api.get("/v1/customers").headers["stripe-version"] == "2023-08-16"


def test_accounts(api: httpx.Client) -> None:
    page = api.get("/v1/accounts", params={"limit": 100}).json()
    emails = {a["email"] for a in page["data"]}
    assert {"jane@acme.com", "priya@umbrella.com"} <= emails and len(page["data"]) == 30
    created = [a["created"] for a in page["data"]]
    assert created == sorted(created, reverse=True)
    p1 = api.get("/v1/accounts", params={"limit": 10}).json()
    p2 = api.get("/v1/accounts", params={"limit": 10, "starting_after": p1["data"][-1]["id"]}).json()
    assert [a["id"] for a in p1["data"] + p2["data"]] == [a["id"] for a in page["data"][:20]]
    e = err(api.get("/v1/accounts/acct_1nope"), 404)
    assert e["code"] == "resource_missing"


# ------------------------------------------------------------------ SCIM mount, latency, CLI parsing
def test_scim_mounted_and_latency(fresh) -> None:
    import time

    pytest.importorskip("stripe_identity_mcp.sandbox.scim")
    r = loopback.get(fresh.scim_base + "/Users", headers={"Authorization": "Bearer scim_sandbox"})
    assert r.status_code == 200 and "Resources" in r.json()
    assert loopback.post(fresh.base_url + "/_sandbox/config", json={"latency_ms": 60}).status_code == 200
    with client(fresh) as c:
        t0 = time.monotonic()
        assert c.get("/v1/customers", params={"limit": 1}).status_code == 200
        assert time.monotonic() - t0 >= 0.06
    t0 = time.monotonic()
    loopback.get(fresh.scim_base + "/Users", headers={"Authorization": "Bearer scim_sandbox"})
    assert time.monotonic() - t0 >= 0.06


def test_cli_flags() -> None:
    from stripe_identity_mcp.sandbox.runner import build_parser, config_from_args

    ns = build_parser().parse_args(["--host", "127.0.0.1", "--port", "9999", "--empty", "--latency-ms", "5",
                                    "--rate-limit", "0", "--customers", "7", "--seed", "3", "--live-rate-limit", "50",
                                    "--search-lag", "0.5", "--fault-rate", "0.1", "--fault-seed", "9"])
    cfg = config_from_args(ns)
    assert (ns.port, cfg.empty, cfg.latency_ms, cfg.rate_limit, cfg.customers, cfg.seed) == (9999, True, 5.0, None, 7, 3)
    assert (cfg.live_rate_limit, cfg.search_lag_s, cfg.fault_rate, cfg.fault_seed) == (50.0, 0.5, 0.1, 9)


def test_empty_and_deterministic_seed() -> None:
    with serve_in_thread(SandboxConfig(empty=True, rate_limit=None)) as h, client(h) as c:
        assert c.get("/v1/customers").json()["data"] == []
        assert c.get("/v1/accounts").json()["data"] == []
    runs = []
    for _ in range(2):
        with serve_in_thread(SandboxConfig(customers=50, rate_limit=None)) as h, client(h) as c:
            runs.append([x["id"] for x in c.get("/v1/customers", params={"limit": 100}).json()["data"]])
    assert runs[0] == runs[1] and len(runs[0]) > 40
