"""Subscriptions: create, list (by customer, status, created), retrieve, cancel."""

from __future__ import annotations

from typing import Any

from ..forms import StripeError, missing
from ..store import paginate_records
from .context import Ctx, StripeRoute, cursor, list_body, now_ts, validate_metadata


def subs_create(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_subscription_write")
    ctx.allow({"customer", "items", "expand", "metadata", "default_payment_method", "collection_method", "description"})
    cid = ctx.customer_param()
    items = ctx.params.get("items")
    if not items or not isinstance(items, list) or not isinstance(items[0], dict) or not items[0].get("price"):
        raise missing("items")
    price = ctx.str_param("items[0][price]", items[0]["price"])
    md = validate_metadata(ctx.params["metadata"], None) if "metadata" in ctx.params else {}
    sub = ctx.store.new_sub(cid, price, now_ts())
    sub["metadata"] = md
    return 200, ctx.store.render_sub(sub)


def subs_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_subscription_read")
    ctx.allow({"customer", "status", "limit", "starting_after", "ending_before", "expand", "created", "price"})
    limit = ctx.limit()
    created = ctx.created()
    st = ctx.store
    status = ctx.params.get("status")
    if status is not None and status not in ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due", "paused", "trialing", "unpaid"):
        raise StripeError(400, "Invalid status: must be one of active, all, canceled, ended, incomplete, incomplete_expired, past_due, paused, trialing, or unpaid", code="parameter_invalid", param="status")
    if ctx.params.get("customer"):
        cid = ctx.str_param("customer", ctx.params["customer"])
        subs = [st.subs[s] for s in st.cus_subs.get(cid, [])]
    else:
        subs = list(st.subs.values())
    if status in (None, ""):
        subs = [s for s in subs if s["status"] != "canceled"]
    elif status in ("canceled", "ended"):
        subs = [s for s in subs if s["status"] == "canceled"]
    elif status != "all":
        subs = [s for s in subs if s["status"] == status]
    sa = cursor(ctx, "starting_after", st.subs.get, "subscription")
    eb = cursor(ctx, "ending_before", st.subs.get, "subscription")
    page, more = paginate_records(subs, limit, sa, eb, created)
    return 200, list_body("/v1/subscriptions", [st.render_sub(s) for s in page], more)


def subs_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_subscription_read")
    ctx.allow({"expand"})
    sub = ctx.store.subs.get(m["id"])
    if sub is None:
        raise ctx.no_such("subscription", m["id"], exists_other=m["id"] in ctx.other.subs)
    return 200, ctx.store.render_sub(sub)


def subs_cancel(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_subscription_write")
    ctx.allow({"expand", "invoice_now", "prorate", "cancellation_details"})
    sub = ctx.store.subs.get(m["id"])
    if sub is None:
        raise ctx.no_such("subscription", m["id"], exists_other=m["id"] in ctx.other.subs)
    if sub["status"] == "canceled":
        raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.", code=None)
    sub["status"] = "canceled"
    sub["canceled_at"] = now_ts()
    return 200, ctx.store.render_sub(sub)


ROUTES: list[StripeRoute] = [
    StripeRoute("GET", "/v1/subscriptions", subs_list),
    StripeRoute("POST", "/v1/subscriptions", subs_create),
    StripeRoute("GET", "/v1/subscriptions/{id}", subs_retrieve),
    StripeRoute("DELETE", "/v1/subscriptions/{id}", subs_cancel),
]
