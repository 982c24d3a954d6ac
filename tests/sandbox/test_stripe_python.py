"""stripe-python (the official client) against the sandbox over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

stripe = pytest.importorskip("stripe")

from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, serve_in_thread  # noqa: E402
from stripe_identity_mcp.sandbox.seed import JANE_ID, LEE_ID  # noqa: E402
from tests import loopback  # noqa: E402


@pytest.fixture(scope="module")
def handle() -> Iterator[SandboxHandle]:
    with serve_in_thread(SandboxConfig(customers=120, rate_limit=None, search_lag_s=0.0)) as h:
        yield h


@pytest.fixture()
def sc(handle: SandboxHandle):
    stripe.enable_telemetry = False
    return stripe.StripeClient("sk_test_sandbox", base_addresses={"api": handle.base_url}, max_network_retries=0)


def test_crud(sc) -> None:
    c = sc.v1.customers.create(params={"email": "py@example.com", "name": "Py Thon", "metadata": {"crm_id": "7"},
                                       "address": {"line1": "1 Main", "country": "US"}, "preferred_locales": ["en"]})
    assert c.id.startswith("cus_") and c.object == "customer" and c.livemode is False
    assert c.metadata["crm_id"] == "7" and c.address.line1 == "1 Main"
    got = sc.v1.customers.retrieve(c.id)
    assert got.email == "py@example.com"
    upd = sc.v1.customers.update(c.id, params={"name": "Py Updated", "metadata": {"crm_id": "", "plan": "pro"}, "phone": ""})
    assert upd.name == "Py Updated" and upd.metadata.to_dict() == {"plan": "pro"} and upd.phone is None
    deleted = sc.v1.customers.delete(c.id)
    assert deleted.deleted is True
    again = sc.v1.customers.retrieve(c.id)
    assert again.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as ei:
        sc.v1.customers.delete(c.id)
    assert ei.value.http_status == 404 and ei.value.code == "resource_missing"
    assert ei.value.request_id and ei.value.request_id.startswith("req_")


def test_deleted_seed_customer(sc) -> None:
    lee = sc.v1.customers.retrieve(LEE_ID)
    assert lee.deleted is True


def test_auto_paging_list(sc, handle: SandboxHandle) -> None:
    expected = handle.app.state.sandbox.stores["test"].live_customer_count()
    ids = [c.id for c in sc.v1.customers.list(params={"limit": 17}).auto_paging_iter()]
    assert len(ids) == expected > 17
    assert len(set(ids)) == len(ids)
    created = [sc.v1.customers.retrieve(i).created for i in ids[:30]]
    assert created == sorted(created, reverse=True)


def test_search_with_next_page(sc) -> None:
    page = sc.v1.customers.search(params={"query": "created>0", "limit": 25})
    assert page.object == "search_result" and page.has_more and page.next_page
    ids = [c.id for c in sc.v1.customers.search(params={"query": "created>0", "limit": 25}).auto_paging_iter()]
    assert len(ids) == len(set(ids)) > 25
    jane = sc.v1.customers.search(params={"query": "email:'JANE@acme.com'"})
    assert {c.id for c in jane.data} >= {JANE_ID}
    assert {c.email for c in jane.data} == {"jane@acme.com", "Jane@Acme.com"}


def test_errors_map_to_stripe_exceptions(handle: SandboxHandle) -> None:
    bad = stripe.StripeClient("sk_test_wrongwrongwrong", base_addresses={"api": handle.base_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as ei:
        bad.v1.customers.list()
    assert "wrongwrongwrong" not in str(ei.value)
    rk = stripe.StripeClient("rk_test_sandbox", base_addresses={"api": handle.base_url}, max_network_retries=0)
    assert rk.v1.customers.list(params={"limit": 1}).data
    with pytest.raises(stripe.PermissionError):
        rk.v1.customers.create(params={"name": "nope"})


def test_payment_methods_and_portal(sc) -> None:
    c = sc.v1.customers.create(params={"email": "pm-py@example.com"})
    pm = sc.v1.payment_methods.attach("pm_card_mastercard", params={"customer": c.id})
    assert pm.card.brand == "mastercard" and pm.card.last4 == "4444" and pm.customer == c.id
    c2 = sc.v1.customers.update(c.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    assert c2.invoice_settings.default_payment_method == pm.id
    pms = sc.v1.customers.payment_methods.list(c.id, params={"type": "card"})
    assert [p.id for p in pms.data] == [pm.id]
    sess = sc.v1.billing_portal.sessions.create(params={"customer": c.id, "return_url": "https://example.com"})
    assert sess.url.startswith("https://billing.stripe.com/p/session/test_")


def test_legacy_global_style(handle: SandboxHandle) -> None:
    saved = (stripe.api_key, stripe.api_base, stripe.max_network_retries)
    try:
        stripe.api_key = "sk_test_sandbox"
        stripe.api_base = handle.base_url
        stripe.max_network_retries = 0
        c = stripe.Customer.create(email="legacy@example.com", name="Legacy")
        assert stripe.Customer.retrieve(c.id).name == "Legacy"
        assert stripe.Customer.modify(c.id, description="d").description == "d"
        assert len(stripe.Customer.list(limit=3).data) == 3
        assert stripe.Customer.delete(c.id).deleted is True
    finally:
        stripe.api_key, stripe.api_base, stripe.max_network_retries = saved


# Retries: what stripe-python's _should_retry does with the sandbox's 429s, counted at the sandbox ------


def _v1_requests(handle: SandboxHandle) -> int:
    return handle.app.state.sandbox.requests  # type: ignore[no-any-return]


def _arm(handle: SandboxHandle, **rule: object) -> None:

    assert loopback.post(f"{handle.base_url}/_sandbox/faults", json={"rules": [rule]}).status_code == 200


@pytest.fixture()
def retrying(handle: SandboxHandle):
    yield stripe.StripeClient("sk_test_sandbox", base_addresses={"api": handle.base_url}, max_network_retries=2)

    loopback.delete(f"{handle.base_url}/_sandbox/faults")  # a failed test leaves no armed rule behind


def test_stripe_python_retries_a_lock_timeout(handle: SandboxHandle, retrying) -> None:
    _arm(handle, kind="lock_timeout", method="GET", path=f"/v1/customers/{JANE_ID}", count=1)
    before = _v1_requests(handle)
    jane = retrying.v1.customers.retrieve(JANE_ID)
    assert jane.email == "jane@acme.com"
    assert _v1_requests(handle) - before == 2  # the 429 lock_timeout, then the retried success


def test_stripe_python_does_not_retry_a_rate_limit_429(handle: SandboxHandle, retrying) -> None:
    _arm(handle, kind="429", method="GET", path=f"/v1/customers/{JANE_ID}", count=3)
    before = _v1_requests(handle)
    with pytest.raises(stripe.RateLimitError) as ei:
        retrying.v1.customers.retrieve(JANE_ID)
    assert ei.value.http_status == 429 and ei.value.error.code == "rate_limit"  # RateLimitError leaves .code unset
    assert _v1_requests(handle) - before == 1  # one request: no retry despite max_network_retries=2


def test_stripe_python_reports_an_exhausted_lock_timeout(handle: SandboxHandle, sc) -> None:
    _arm(handle, kind="lock_timeout", method="GET", path=f"/v1/customers/{JANE_ID}", count=1)
    with pytest.raises(stripe.RateLimitError) as ei:  # stripe-python maps every 429 to RateLimitError
        sc.v1.customers.retrieve(JANE_ID)
    assert ei.value.error.code == "lock_timeout" and ei.value.request_id.startswith("req_")


def test_stripe_python_gets_the_invalid_version_error(handle: SandboxHandle) -> None:
    old = stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": handle.base_url}, max_network_retries=0, stripe_version="2019-2-19"
    )
    with pytest.raises(stripe.InvalidRequestError) as ei:
        old.v1.customers.retrieve(JANE_ID)
    assert ei.value.http_status == 400 and ei.value.user_message == "Invalid Stripe API version: 2019-2-19"


def test_stripe_python_expands_sources_and_tax_ids(sc) -> None:
    jane = sc.v1.customers.retrieve(JANE_ID, params={"expand": ["sources", "tax_ids"]})
    assert jane.sources.object == "list" and list(jane.sources.data) == [] and jane.sources.url.endswith("/sources")
    assert jane.tax_ids.object == "list" and jane.tax_ids.has_more is False
