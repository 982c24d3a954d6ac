"""Customers: create, retrieve, update, delete, list (by ``created`` and by ``email``)."""

from __future__ import annotations

import re
import time
from typing import Any

from ..events import previous_attributes
from ..forms import StripeError, missing, unknown
from ..search import snapshot
from ..store import created_bounds, page_indices, paginate_records, rand_id
from .context import Ctx, StripeRoute, cursor, get_customer, int_param, list_body, now_ts, validate_metadata
from .payment_methods import attach_pm, check_attachable

CUSTOMER_FIELDS = {
    "address", "balance", "cash_balance", "coupon", "description", "email", "expand", "invoice_prefix",
    "invoice_settings", "metadata", "name", "next_invoice_sequence", "payment_method", "phone",
    "preferred_locales", "promotion_code", "shipping", "source", "tax", "tax_exempt", "tax_id_data", "test_clock",
}
CUSTOMER_UPDATE_FIELDS = (CUSTOMER_FIELDS - {"payment_method", "tax_id_data", "test_clock"}) | {
    "bank_account", "card", "default_alipay_account", "default_bank_account", "default_card", "default_source",
}
ADDRESS_FIELDS = {"city", "country", "line1", "line2", "postal_code", "state"}
CUSTOMER_EXPANDABLE = {"subscriptions", "invoice_settings.default_payment_method", "default_source", "test_clock", "tax", "sources", "tax_ids", "discount", "cash_balance", "invoice_credit_balance"}



def _address(ctx: Ctx, value: Any, param: str) -> dict[str, Any] | None:
    if value == "":
        return None
    if not isinstance(value, dict):
        raise StripeError(400, f"Invalid hash: {param} must be a hash or an empty string.", code="parameter_invalid", param=param)
    out: dict[str, str | None] = {k: None for k in sorted(ADDRESS_FIELDS)}
    for k, v in value.items():
        if k not in ADDRESS_FIELDS:
            raise unknown(f"{param}[{k}]")
        out[k] = ctx.str_param(f"{param}[{k}]", v) or None
    return out


def _apply_customer_fields(ctx: Ctx, rec: dict[str, Any], p: dict[str, Any], creating: bool) -> str | None:
    """Validate & apply fields; returns a payment method to attach (create) or None."""
    changes: dict[str, Any] = {}
    for f in ("email", "name", "phone", "description"):
        if f in p:
            v = ctx.str_param(f, p[f])
            if v and len(v) > 5000:
                raise StripeError(400, f"Invalid {f}: must be at most 5000 characters", code="parameter_invalid", param=f)
            if f == "email" and v and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v):
                raise StripeError(400, f"Invalid email address: {v}", code="email_invalid", param="email")
            changes[f] = v if v != "" else None
    if "address" in p:
        changes["address"] = _address(ctx, p["address"], "address")
    if "shipping" in p:
        sh = p["shipping"]
        if sh == "":
            changes["shipping"] = None
        elif not isinstance(sh, dict):
            raise StripeError(400, "Invalid hash", code="parameter_invalid", param="shipping")
        else:
            for k in sh:
                if k not in ("address", "name", "phone"):
                    raise unknown(f"shipping[{k}]")
            if "name" not in sh or sh["name"] == "":
                raise missing("shipping[name]")
            if "address" not in sh:
                raise missing("shipping[address]")
            changes["shipping"] = {
                "address": _address(ctx, sh["address"], "shipping[address]") or {k: None for k in sorted(ADDRESS_FIELDS)},
                "name": ctx.str_param("shipping[name]", sh["name"]),
                "phone": (ctx.str_param("shipping[phone]", sh["phone"]) or None) if "phone" in sh else None,
            }
    if "metadata" in p:
        changes["metadata"] = validate_metadata(p["metadata"], None if creating else rec.get("metadata"))
    if "preferred_locales" in p:
        pl = p["preferred_locales"]
        if pl == "":
            changes["preferred_locales"] = []
        elif isinstance(pl, list) and all(isinstance(x, str) for x in pl):
            changes["preferred_locales"] = list(pl)
        else:
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="preferred_locales")
    if "balance" in p:
        changes["balance"] = int_param(p["balance"], "balance")
    if "tax_exempt" in p:
        te = p["tax_exempt"]
        if te not in ("", "none", "exempt", "reverse"):
            raise StripeError(400, "Invalid tax_exempt: must be one of none, exempt, or reverse", code="parameter_invalid", param="tax_exempt")
        changes["tax_exempt"] = te or "none"
    new_default: Any = ...
    if "invoice_settings" in p:
        inv = p["invoice_settings"]
        if not isinstance(inv, dict):
            raise StripeError(400, "Invalid hash", code="parameter_invalid", param="invoice_settings")
        for k in inv:
            if k not in ("custom_fields", "default_payment_method", "footer", "rendering_options"):
                raise unknown(f"invoice_settings[{k}]")
        if "default_payment_method" in inv:
            pm_id = ctx.str_param("invoice_settings[default_payment_method]", inv["default_payment_method"])
            new_default = pm_id or None
    attach = None
    if creating and "payment_method" in p:
        attach = ctx.str_param("payment_method", p["payment_method"]) or None
    if new_default not in (..., None):
        pm = ctx.store.pms.get(new_default)
        ok_after_attach = attach is not None and attach == new_default
        if pm is None and not (ok_after_attach and (new_default in ctx.store.pms or new_default.startswith("pm_card_"))):
            raise StripeError(400, f"No such PaymentMethod: '{new_default}'", code="resource_missing", param="invoice_settings[default_payment_method]")
        if pm is not None and pm.get("customer") != rec["id"] and not ok_after_attach:
            raise StripeError(
                400,
                f"The customer does not have a payment method with the ID {new_default}. The payment method must be attached to the customer.",
                code="resource_missing" if pm.get("customer") is None else "parameter_invalid",
                param="invoice_settings[default_payment_method]",
            )
    if attach is not None:
        check_attachable(ctx, attach, rec["id"], param="payment_method")
    # all validated: apply
    for k, v in changes.items():
        rec[k] = v
    if new_default is not ...:
        rec["default_pm"] = new_default
    return attach


def _touch(ctx: Ctx, rec: dict[str, Any], creating: bool) -> None:
    """Record a change for the search index (keeps the previously indexed snapshot)."""
    now = time.time()
    lag = ctx.sb.config.search_lag_s
    if creating:
        rec["prev"] = None
    elif lag <= 0 or now - rec.get("changed_at", 0.0) >= lag:
        rec["prev"] = snapshot(rec)
    # else: keep the older indexed snapshot
    rec["changed_at"] = now


def customers_create(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_write")
    ctx.allow(CUSTOMER_FIELDS)
    expand = ctx.expand(CUSTOMER_EXPANDABLE)
    st = ctx.store
    while True:
        cid = rand_id("cus_", 14)
        if cid not in st.customers and cid not in ctx.other.customers:
            break
    rec: dict[str, Any] = {
        "id": cid, "created": now_ts(), "seq": st.next_seq(), "email": None, "name": None, "phone": None,
        "description": None, "address": None, "shipping": None, "metadata": {}, "preferred_locales": [],
        "default_pm": None, "deleted": False, "changed_at": 0.0, "prev": None,
    }
    attach = _apply_customer_fields(ctx, rec, ctx.params, creating=True)
    pm = None
    if attach:
        pm = attach_pm(ctx, attach, cid)
        if rec.get("default_pm") == attach:
            rec["default_pm"] = pm["id"]
    _touch(ctx, rec, creating=True)
    st.add_customer(rec)
    ctx.emit("customer.created", st.render_customer(rec))
    if pm is not None:
        ctx.emit("payment_method.attached", st.render_pm(pm))
    return 200, st.render_customer(rec, expand)


def customers_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_read")
    ctx.allow({"expand"})
    expand = ctx.expand(CUSTOMER_EXPANDABLE)
    rec = get_customer(ctx, m["id"])
    return 200, ctx.store.render_customer(rec, expand)


def customers_update(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_write")
    ctx.allow(CUSTOMER_UPDATE_FIELDS)
    expand = ctx.expand(CUSTOMER_EXPANDABLE)
    rec = get_customer(ctx, m["id"], allow_deleted=False)
    before = snapshot(rec)
    old_email = rec.get("email")
    rendered_before = ctx.store.render_customer(rec)
    _apply_customer_fields(ctx, rec, ctx.params, creating=False)
    rendered_after = ctx.store.render_customer(rec)
    if rendered_after != rendered_before:  # Stripe records no event for an update that changes nothing
        ctx.emit("customer.updated", rendered_after, previous_attributes(rendered_before, rendered_after))
    if snapshot(rec) != before:
        # index bookkeeping
        cur = dict(rec)
        cur.update(before)
        if old_email != rec.get("email"):
            ctx.store.unindex_email({"id": rec["id"], "email": old_email})
            ctx.store.index_email(rec)
        lag = ctx.sb.config.search_lag_s
        now = time.time()
        if lag <= 0 or now - rec.get("changed_at", 0.0) >= lag:
            rec["prev"] = before
        rec["changed_at"] = now
    return 200, ctx.store.render_customer(rec, expand)


def customers_delete(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_write")
    ctx.allow(set())
    rec = get_customer(ctx, m["id"], allow_deleted=False)
    st = ctx.store
    last_state = st.render_customer(rec)
    st.remove_from_indexes(rec)
    rec["deleted"] = True
    ts = now_ts()
    for sid in st.cus_subs.get(rec["id"], []):
        sub = st.subs[sid]
        if sub["status"] != "canceled":
            sub["status"] = "canceled"
            sub["canceled_at"] = ts
    ctx.emit("customer.deleted", last_state)  # Stripe's customer.deleted carries the last full state
    return 200, {"id": rec["id"], "object": "customer", "deleted": True}


def customers_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_read")
    ctx.allow({"created", "email", "ending_before", "expand", "limit", "starting_after", "test_clock"})
    limit = ctx.limit()
    created = ctx.created()
    expand = ctx.expand({"data." + e for e in CUSTOMER_EXPANDABLE} | {"total_count"})
    inner = {e[5:] for e in expand if e.startswith("data.")}
    st = ctx.store

    def lookup(cid: str) -> Any:
        rec = st.customers.get(cid)
        return rec if rec is not None and not rec.get("deleted") else None

    sa = cursor(ctx, "starting_after", lookup, "customer")
    eb = cursor(ctx, "ending_before", lookup, "customer")
    if "email" in ctx.params:
        email = ctx.str_param("email", ctx.params["email"])
        if len(email) > 512:
            raise StripeError(400, "Invalid email: must be at most 512 characters", code="parameter_invalid", param="email")
        recs = [st.customers[c] for c in st.email_idx.get(email, [])]
        page, more = paginate_records(recs, limit, sa, eb, created)
    else:
        lo, hi = created_bounds(st.keys, created)
        idx, more = page_indices(
            st.keys, lo, hi, limit,
            (sa["created"], sa["seq"]) if sa else None,
            (eb["created"], eb["seq"]) if eb else None,
        )
        page = [st.customers[st.ids[i]] for i in idx]
    return 200, list_body("/v1/customers", [st.render_customer(r, inner) for r in page], more)


ROUTES: list[StripeRoute] = [
    StripeRoute("GET", "/v1/customers", customers_list),
    StripeRoute("POST", "/v1/customers", customers_create),
    StripeRoute("GET", "/v1/customers/{id}", customers_retrieve),
    StripeRoute("POST", "/v1/customers/{id}", customers_update),
    StripeRoute("DELETE", "/v1/customers/{id}", customers_delete),
]
