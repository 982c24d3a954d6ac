"""Payment methods: a customer's list, retrieve, attach, detach (cards only; ``pm_card_*`` test ids)."""

from __future__ import annotations

from typing import Any

from ..events import previous_attributes
from ..forms import StripeError, missing
from ..store import CARD_TABLE, paginate_records
from .context import Ctx, StripeRoute, cursor, get_customer, list_body, now_ts

# The `type` filter of GET /v1/customers/{customer}/payment_methods (Stripe's OpenAPI enum, in order).
PAYMENT_METHOD_TYPES = (
    "acss_debit", "affirm", "afterpay_clearpay", "alipay", "au_becs_debit", "bacs_debit", "bancontact", "blik",
    "boleto", "card", "cashapp", "customer_balance", "eps", "fpx", "giropay", "grabpay", "ideal", "klarna",
    "konbini", "link", "oxxo", "p24", "paynow", "paypal", "pix", "promptpay", "sepa_debit", "sofort",
    "us_bank_account", "wechat_pay", "zip",
)


def check_attachable(ctx: Ctx, pm_id: str, customer: str, param: str = "id") -> None:
    if pm_id.startswith("pm_card_") and pm_id[8:] in CARD_TABLE:
        if ctx.store.livemode:
            raise StripeError(404, f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param=param)
        return
    pm = ctx.store.pms.get(pm_id)
    if pm is None:
        raise StripeError(404 if param == "id" else 400, f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param=param)
    if pm.get("customer") and pm["customer"] != customer:
        raise StripeError(400, "The payment method you provided has already been attached to a customer.", code="payment_method_unexpected_state" if False else None, param=param)


def attach_pm(ctx: Ctx, pm_id: str, customer: str) -> dict[str, Any]:
    if pm_id.startswith("pm_card_") and pm_id[8:] in CARD_TABLE:
        return ctx.store.new_pm(pm_id[8:], customer, now_ts())
    pm = ctx.store.pms[pm_id]
    if pm.get("customer") != customer:
        pm["customer"] = customer
        ctx.store.cus_pms.setdefault(customer, []).append(pm_id)
    return pm



def customer_payment_methods(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_payment_method_read")
    ctx.allow({"ending_before", "expand", "limit", "starting_after", "type"})
    limit = ctx.limit()
    ctx.expand({"data.customer"})
    rec = get_customer(ctx, m["id"], "customer", allow_deleted=False)
    st = ctx.store
    typ = ctx.params.get("type")
    if typ not in (None, "") and typ not in PAYMENT_METHOD_TYPES:
        raise StripeError(
            400,
            f"Invalid type: must be one of {', '.join(PAYMENT_METHOD_TYPES[:-1])}, or {PAYMENT_METHOD_TYPES[-1]}",
            code="parameter_invalid",
            param="type",
        )
    if typ not in (None, "", "card"):
        recs: list[dict[str, Any]] = []  # the sandbox only holds cards
    else:
        recs = [st.pms[p] for p in st.cus_pms.get(rec["id"], []) if st.pms[p].get("customer") == rec["id"]]

    def lookup(pid: str) -> Any:
        pm = st.pms.get(pid)
        return pm if pm is not None and pm.get("customer") == rec["id"] else None

    sa = cursor(ctx, "starting_after", lookup, "payment_method")
    eb = cursor(ctx, "ending_before", lookup, "payment_method")
    page, more = paginate_records(recs, limit, sa, eb)
    return 200, list_body(f"/v1/customers/{rec['id']}/payment_methods", [st.render_pm(p) for p in page], more)


def _get_pm(ctx: Ctx, pid: str) -> dict[str, Any]:
    pm = ctx.store.pms.get(pid)
    if pm is None:
        raise StripeError(404, f"No such PaymentMethod: '{pid}'", code="resource_missing", param="payment_method" if False else "id")
    return pm


def pm_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_payment_method_read")
    ctx.allow({"expand"})
    ctx.expand({"customer"})
    pid = m["id"]
    if pid.startswith("pm_card_") and pid[8:] in CARD_TABLE and not ctx.store.livemode:
        # Stripe materialises magic test ids on retrieve too (unattached)
        pm = ctx.store.new_pm(pid[8:], None, now_ts())
        return 200, ctx.store.render_pm(pm)
    return 200, ctx.store.render_pm(_get_pm(ctx, pid))


def pm_attach(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_payment_method_write")
    ctx.allow({"customer", "expand"})
    ctx.expand({"customer"})
    if "customer" not in ctx.params or ctx.params["customer"] == "":
        raise missing("customer")
    cid = ctx.str_param("customer", ctx.params["customer"])
    pid = m["id"]
    check_attachable(ctx, pid, cid, param="id")
    ctx.live_customer(cid)
    already = pid in ctx.store.pms and ctx.store.pms[pid].get("customer") == cid
    pm = attach_pm(ctx, pid, cid)
    if not already:
        ctx.emit("payment_method.attached", ctx.store.render_pm(pm))
    return 200, ctx.store.render_pm(pm)


def pm_detach(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_payment_method_write")
    ctx.allow({"expand"})
    pm = _get_pm(ctx, m["id"])
    cid = pm.get("customer")
    if not cid:
        raise StripeError(400, "The payment method you provided is not attached to a customer so detachment is impossible.", code="payment_method_unexpected_state", param=None)
    pm["customer"] = None
    lst = ctx.store.cus_pms.get(cid, [])
    if pm["id"] in lst:
        lst.remove(pm["id"])
    rec = ctx.store.customers.get(cid)
    if rec is not None and rec.get("default_pm") == pm["id"]:
        before = ctx.store.render_customer(rec)
        rec["default_pm"] = None
        after = ctx.store.render_customer(rec)
        ctx.emit("customer.updated", after, previous_attributes(before, after))
    ctx.emit("payment_method.detached", ctx.store.render_pm(pm), {"customer": cid})
    return 200, ctx.store.render_pm(pm)



ROUTES: list[StripeRoute] = [
    StripeRoute("GET", "/v1/customers/{id}/payment_methods", customer_payment_methods),
    StripeRoute("GET", "/v1/payment_methods/{id}", pm_retrieve),
    StripeRoute("POST", "/v1/payment_methods/{id}/attach", pm_attach),
    StripeRoute("POST", "/v1/payment_methods/{id}/detach", pm_detach),
]
