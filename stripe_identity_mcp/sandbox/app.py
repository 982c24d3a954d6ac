"""The sandbox ASGI app: a Stripe API emulator (``/v1``), SCIM mount and a test-control API.

Deviations from Stripe worth knowing (all deliberate, for determinism and testability):

* Idempotency results are saved for 2xx and 404 responses only (Stripe saves nothing when
  parameter validation fails or on 5xx; we also skip 409/429/400s), so retrying after a fault
  or a validation error re-executes.
* ``/_sandbox/*`` is a test-control API with no auth and no Stripe semantics.
* Search sees a per-customer snapshot until ``search_lag_s`` has passed (see ``search.py``).
* Fault rules (``/_sandbox/faults``) also reach ``/scim/v2`` when their ``path`` names a SCIM path
  (500/429 in SCIM's error shape, reset, drop_after_commit, slow); random faults stay ``/v1``-only.
* ``Stripe-Version`` is checked for shape only (a real date since 2011, not in the future, optional
  release name and beta flags), not against Stripe's release list; it is checked after the API key.
* Answers carry ``Stripe-Ratelimit-Limit``/``-Remaining`` (the sandbox's own bucket, for tests),
  which Stripe does not send; what Stripe's libraries act on (``Stripe-Should-Retry: true`` on a
  ``lock_timeout`` only, no ``Retry-After``) is as Stripe sends it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .config import SandboxConfig
from .events import Delivery, EventLog, previous_attributes, type_matcher
from .faults import SCIM_PREFIX, FaultInjector, FaultRule, RateLimiter
from .forms import StripeError, missing, parse_form, unknown
from .search import decode_page, encode_page, parse_query, search_view, snapshot
from .seed import SHARED_PEOPLE, seed_all
from .store import CARD_TABLE, ModeStore, created_bounds, page_indices, paginate_records, rand_id

API_VERSION = "2023-08-16"
ACCOUNT_ID = "acct_1Sandbox"
ALNUM = string.ascii_letters + string.digits

KEYS: dict[str, tuple[str, frozenset[str] | None]] = {
    "sk_test_sandbox": ("test", None),
    "sk_live_sandbox": ("live", None),
    "rk_test_sandbox": ("test", frozenset({"rak_customer_read", "rak_payment_method_read"})),
}

NO_KEY_MSG = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_")

CUSTOMER_FIELDS = {
    "address", "balance", "cash_balance", "coupon", "description", "email", "expand", "invoice_prefix",
    "invoice_settings", "metadata", "name", "next_invoice_sequence", "payment_method", "phone",
    "preferred_locales", "promotion_code", "shipping", "source", "tax", "tax_exempt", "tax_id_data", "test_clock",
}
CUSTOMER_UPDATE_FIELDS = (CUSTOMER_FIELDS - {"payment_method", "tax_id_data", "test_clock"}) | {
    "bank_account", "card", "default_alipay_account", "default_bank_account", "default_card", "default_source",
}
ADDRESS_FIELDS = {"city", "country", "line1", "line2", "postal_code", "state"}
# The `type` filter of GET /v1/customers/{customer}/payment_methods (Stripe's OpenAPI enum, in order).
PAYMENT_METHOD_TYPES = (
    "acss_debit", "affirm", "afterpay_clearpay", "alipay", "au_becs_debit", "bacs_debit", "bancontact", "blik",
    "boleto", "card", "cashapp", "customer_balance", "eps", "fpx", "giropay", "grabpay", "ideal", "klarna",
    "konbini", "link", "oxxo", "p24", "paynow", "paypal", "pix", "promptpay", "sepa_debit", "sofort",
    "us_bank_account", "wechat_pay", "zip",
)
CUSTOMER_EXPANDABLE = {"subscriptions", "invoice_settings.default_payment_method", "default_source", "test_clock", "tax", "sources", "tax_ids", "discount", "cash_balance", "invoice_credit_balance"}


_VERSION_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:\.[a-z]+)?")
_BETA_RE = re.compile(r"[a-z][a-z0-9_]*=v\d+")
FIRST_API_VERSION = datetime.date(2011, 1, 1)


def valid_api_version(version: str) -> bool:
    """Whether ``Stripe-Version`` names a version Stripe could have released.

    Stripe versions are release dates, since 2024-09-30 with a release name (``2024-09-30.acacia``),
    optionally followed by beta headers (``; feature_beta=v3``). The emulator knows no release list,
    so it accepts any real calendar date from 2011 to today (UTC) in that shape; anything else
    ("2019-2-19", "latest", a future date) gets Stripe's 400 "Invalid Stripe API version: ...".
    """
    base, *betas = [part.strip() for part in version.split(";")]
    m = _VERSION_RE.fullmatch(base)
    if m is None or not all(_BETA_RE.fullmatch(b) for b in betas):
        return False
    try:
        day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return FIRST_API_VERSION <= day <= datetime.datetime.now(datetime.UTC).date()


def redact_key(key: str) -> str:
    prefix = next((p for p in KEY_PREFIXES if key.startswith(p)), "")
    rest = key[len(prefix):]
    tail = rest[-4:] if len(rest) > 8 else ""
    return f"{prefix}****{tail}"


def redact_key_permission(key: str) -> str:
    prefix = next((p for p in KEY_PREFIXES if key.startswith(p)), "")
    rest = key[len(prefix):]
    return f"{prefix}*****{rest[-5:] if len(rest) > 5 else ''}"


def now_ts() -> int:
    return int(time.time())


class Ctx:
    """Per-request context."""

    def __init__(self, sandbox: Sandbox, key: str, mode: str, perms: frozenset[str] | None, method: str, path: str, params: dict[str, Any]):
        self.sb = sandbox
        self.key = key
        self.mode = mode
        self.perms = perms
        self.method = method
        self.path = path
        self.params = params
        self.store: ModeStore = sandbox.stores[mode]
        self.other: ModeStore = sandbox.stores["live" if mode == "test" else "test"]
        # Set by handle_v1; None for changes made "in the Dashboard" (/_sandbox/dashboard).
        self.request_id: str | None = None
        self.idempotency_key: str | None = None

    def emit(self, type_: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        """Record an Event for a committed change (and queue it for webhook delivery)."""
        event = self.sb.events[self.mode].record(type_, obj, self.request_id, self.idempotency_key, previous)
        if self.sb.delivery.url:
            self.sb.delivery.queue.append(event)

    def need(self, perm: str) -> None:
        if self.perms is not None and perm not in self.perms and perm.replace("_read", "_write") not in self.perms:
            raise StripeError(
                403,
                f"The provided key '{redact_key_permission(self.key)}' does not have the required permissions for this "
                f"endpoint on account '{ACCOUNT_ID}'. Having the '{perm}' permission would allow this request to continue.",
            )

    def allow(self, allowed: set[str]) -> None:
        for k in self.params:
            if k not in allowed:
                raise unknown(k)

    def no_such(self, what: str, obj_id: str, param: str = "id", exists_other: bool = False) -> StripeError:
        msg = f"No such {what}: '{obj_id}'"
        if exists_other:
            if self.mode == "live":
                msg += "; a similar object exists in test mode, but a live mode key was used to make this request."
            else:
                msg += "; a similar object exists in live mode, but a test mode key was used to make this request."
        return StripeError(404, msg, code="resource_missing", param=param)

    def live_customer(self, cid: str, param: str = "customer") -> dict[str, Any]:
        """The customer record for a `customer` parameter, or Stripe's 404 (deleted ones included)."""
        rec = self.store.customers.get(cid)
        if rec is None or rec.get("deleted"):
            raise self.no_such("customer", cid, param, exists_other=rec is None and cid in self.other.customers)
        return rec

    # --- common param parsing
    def limit(self, default: int = 10) -> int:
        raw = self.params.get("limit")
        if raw is None:
            return default
        if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw.strip()):
            raise StripeError(400, f"Invalid integer: {raw if isinstance(raw, str) else json.dumps(raw)}", code="parameter_invalid_integer", param="limit")
        n = int(raw)
        if n < 1:
            raise StripeError(400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="limit")
        if n > 100:
            raise StripeError(400, "This value must be less than or equal to 100.", code="parameter_invalid_integer", param="limit")
        return n

    def created(self) -> Any:
        raw = self.params.get("created")
        if raw is None:
            return None
        if isinstance(raw, str):
            return _int_param(raw, "created")
        if isinstance(raw, dict):
            out = {}
            for k, v in raw.items():
                if k not in ("gt", "gte", "lt", "lte"):
                    raise unknown(f"created[{k}]")
                out[k] = _int_param(v, f"created[{k}]")
            return out
        raise StripeError(400, "Invalid created: must be an integer or a hash with gt, gte, lt, lte.", code="parameter_invalid", param="created")

    def expand(self, allowed: set[str] | None = None) -> set[str]:
        raw = self.params.get("expand")
        if raw is None:
            return set()
        if isinstance(raw, str):
            if raw == "":
                return set()
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
        if not isinstance(raw, list):
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
        out = set()
        for v in raw:
            if not isinstance(v, str):
                raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
            if allowed is not None and v not in allowed:
                raise StripeError(400, f"This property cannot be expanded ({v}).", code="parameter_invalid", param="expand")
            out.add(v)
        return out

    def str_param(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise StripeError(400, f"Invalid string: {json.dumps(value)}", code="parameter_invalid", param=name)
        return value


def _int_param(raw: Any, param: str) -> int:
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw.strip()):
        raise StripeError(400, f"Invalid integer: {raw if isinstance(raw, str) else json.dumps(raw)}", code="parameter_invalid_integer", param=param)
    return int(raw)


def list_body(url: str, data: list[Any], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


# ====================================================================== handlers
Handler = Callable[[Ctx, dict[str, str]], tuple[int, dict[str, Any]]]


def _get_customer(ctx: Ctx, cid: str, param: str = "id", allow_deleted: bool = True) -> dict[str, Any]:
    rec = ctx.store.customers.get(cid)
    if rec is None or (rec.get("deleted") and not allow_deleted):
        raise ctx.no_such("customer", cid, param, exists_other=cid in ctx.other.customers and rec is None)
    return rec


def _cursor(ctx: Ctx, name: str, lookup: Callable[[str], Any], what: str) -> Any:
    raw = ctx.params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise StripeError(400, f"Invalid string: {json.dumps(raw)}", code="parameter_invalid", param=name)
    obj = lookup(raw)
    if obj is None:
        raise ctx.no_such(what, raw, name)
    return obj


def _validate_metadata(value: Any, existing: dict[str, str] | None) -> dict[str, str]:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid metadata: must be a hash of string keys and string values, or an empty string to unset.", code="parameter_invalid", param="metadata")
    md = dict(existing or {})
    for k, v in value.items():
        if "[" in k or "]" in k:
            raise StripeError(400, "Invalid metadata key: metadata keys cannot contain square brackets ('[' or ']').", code="parameter_invalid", param="metadata")
        if len(k) > 40:
            raise StripeError(400, f"Invalid key: {k[:60]} must be a string under 40 characters", code="parameter_invalid", param=f"metadata[{k[:60]}]")
        if isinstance(v, dict) or isinstance(v, list):
            raise StripeError(400, f"Invalid val: {json.dumps(v)[:80]} must be a string under 500 characters", code="parameter_invalid", param=f"metadata[{k}]")
        if v == "":
            md.pop(k, None)
            continue
        if len(v) > 500:
            raise StripeError(400, f"Invalid val: {v[:40]}... must be a string under 500 characters", code="parameter_invalid", param=f"metadata[{k}]")
        md[k] = v
    if len(md) > 50:
        raise StripeError(
            400,
            f"Metadata can have up to 50 keys, but you've set {len(md)}. Email us at support+metadata@stripe.com for more information.",
            code="parameter_invalid",
            param="metadata",
        )
    return md


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
        changes["metadata"] = _validate_metadata(p["metadata"], None if creating else rec.get("metadata"))
    if "preferred_locales" in p:
        pl = p["preferred_locales"]
        if pl == "":
            changes["preferred_locales"] = []
        elif isinstance(pl, list) and all(isinstance(x, str) for x in pl):
            changes["preferred_locales"] = list(pl)
        else:
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="preferred_locales")
    if "balance" in p:
        changes["balance"] = _int_param(p["balance"], "balance")
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
        _check_attachable(ctx, attach, rec["id"], param="payment_method")
    # all validated: apply
    for k, v in changes.items():
        rec[k] = v
    if new_default is not ...:
        rec["default_pm"] = new_default
    return attach


def _check_attachable(ctx: Ctx, pm_id: str, customer: str, param: str = "id") -> None:
    if pm_id.startswith("pm_card_") and pm_id[8:] in CARD_TABLE:
        if ctx.store.livemode:
            raise StripeError(404, f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param=param)
        return
    pm = ctx.store.pms.get(pm_id)
    if pm is None:
        raise StripeError(404 if param == "id" else 400, f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param=param)
    if pm.get("customer") and pm["customer"] != customer:
        raise StripeError(400, "The payment method you provided has already been attached to a customer.", code="payment_method_unexpected_state" if False else None, param=param)


def _attach(ctx: Ctx, pm_id: str, customer: str) -> dict[str, Any]:
    if pm_id.startswith("pm_card_") and pm_id[8:] in CARD_TABLE:
        return ctx.store.new_pm(pm_id[8:], customer, now_ts())
    pm = ctx.store.pms[pm_id]
    if pm.get("customer") != customer:
        pm["customer"] = customer
        ctx.store.cus_pms.setdefault(customer, []).append(pm_id)
    return pm


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
        pm = _attach(ctx, attach, cid)
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
    rec = _get_customer(ctx, m["id"])
    return 200, ctx.store.render_customer(rec, expand)


def customers_update(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_write")
    ctx.allow(CUSTOMER_UPDATE_FIELDS)
    expand = ctx.expand(CUSTOMER_EXPANDABLE)
    rec = _get_customer(ctx, m["id"], allow_deleted=False)
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
    rec = _get_customer(ctx, m["id"], allow_deleted=False)
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

    sa = _cursor(ctx, "starting_after", lookup, "customer")
    eb = _cursor(ctx, "ending_before", lookup, "customer")
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


def customers_search(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_read")
    ctx.allow({"expand", "limit", "page", "query"})
    limit = ctx.limit()
    expand = ctx.expand({"total_count"} | {"data." + e for e in CUSTOMER_EXPANDABLE})
    inner = {e[5:] for e in expand if e.startswith("data.")}
    if "query" not in ctx.params:
        raise missing("query")
    q = parse_query(ctx.str_param("query", ctx.params["query"]))
    offset = 0
    if ctx.params.get("page"):
        offset = decode_page(ctx.str_param("page", ctx.params["page"]))
    st = ctx.store
    now = time.time()
    lag = ctx.sb.config.search_lag_s
    matches: list[dict[str, Any]] = []
    # full scan over non-deleted customers; lagging records are judged on their previous snapshot
    for cid in st.ids:
        rec = st.customers[cid]
        view = search_view(rec, now, lag)
        if view is not None and q.match(view):
            matches.append(rec)
    # changed-but-lagging records whose old snapshot matched are included above; deleted never.
    matches.sort(key=lambda r: (r["created"], r["seq"]), reverse=True)
    page = matches[offset: offset + limit]
    more = offset + limit < len(matches)
    body: dict[str, Any] = {
        "object": "search_result",
        "data": [st.render_customer(r, inner) for r in page],
        "has_more": more,
        "next_page": encode_page(offset + limit) if more else None,
        "url": "/v1/customers/search",
    }
    if "total_count" in expand:
        body["total_count"] = len(matches)
    return 200, body


def customer_payment_methods(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_payment_method_read")
    ctx.allow({"ending_before", "expand", "limit", "starting_after", "type"})
    limit = ctx.limit()
    ctx.expand({"data.customer"})
    rec = _get_customer(ctx, m["id"], "customer", allow_deleted=False)
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

    sa = _cursor(ctx, "starting_after", lookup, "payment_method")
    eb = _cursor(ctx, "ending_before", lookup, "payment_method")
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
    _check_attachable(ctx, pid, cid, param="id")
    ctx.live_customer(cid)
    already = pid in ctx.store.pms and ctx.store.pms[pid].get("customer") == cid
    pm = _attach(ctx, pid, cid)
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


def subs_create(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_subscription_write")
    ctx.allow({"customer", "items", "expand", "metadata", "default_payment_method", "collection_method", "description"})
    if not ctx.params.get("customer"):
        raise missing("customer")
    cid = ctx.str_param("customer", ctx.params["customer"])
    ctx.live_customer(cid)
    items = ctx.params.get("items")
    if not items or not isinstance(items, list) or not isinstance(items[0], dict) or not items[0].get("price"):
        raise missing("items")
    price = ctx.str_param("items[0][price]", items[0]["price"])
    md = _validate_metadata(ctx.params["metadata"], None) if "metadata" in ctx.params else {}
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
    sa = _cursor(ctx, "starting_after", st.subs.get, "subscription")
    eb = _cursor(ctx, "ending_before", st.subs.get, "subscription")
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


def portal_session_create(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_session_write")
    ctx.allow({"configuration", "customer", "expand", "flow_data", "locale", "on_behalf_of", "return_url"})
    if not ctx.params.get("customer"):
        raise missing("customer")
    cid = ctx.str_param("customer", ctx.params["customer"])
    ctx.live_customer(cid)
    if not ctx.sb.config.portal_configured.get(ctx.mode, False):
        if ctx.mode == "test":
            msg = ("You can’t create a portal session in test mode until you save your customer portal settings in test mode "
                   "at https://dashboard.stripe.com/test/settings/billing/portal.")
        else:
            msg = ("You can’t create a portal session in live mode until you save your customer portal settings in live mode "
                   "at https://dashboard.stripe.com/settings/billing/portal.")
        raise StripeError(400, msg)
    conf = ctx.params.get("configuration")
    if conf and conf != ctx.store.portal_config_id:
        raise StripeError(404, f"No such configuration: '{conf}'", code="resource_missing", param="configuration")
    return_url = ctx.params.get("return_url") or None
    if return_url is not None:
        ctx.str_param("return_url", return_url)
        if not re.match(r"^https?://", return_url):
            raise StripeError(400, "Not a valid URL", code="url_invalid", param="return_url")
    locale = ctx.params.get("locale") or None
    secret = "".join(secrets.choice(ALNUM) for _ in range(24))
    prefix = "live_" if ctx.store.livemode else "test_"
    body = {
        "id": rand_id("bps_1", 23),
        "object": "billing_portal.session",
        "configuration": ctx.store.portal_config_id,
        "created": now_ts(),
        "customer": cid,
        "flow": None,
        "livemode": ctx.store.livemode,
        "locale": locale if locale != "auto" else None,
        "on_behalf_of": ctx.params.get("on_behalf_of") or None,
        "return_url": return_url,
        "url": f"https://billing.stripe.com/p/session/{prefix}{secret}",
    }
    return 200, body


def portal_configs_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_configuration_read")
    ctx.allow({"active", "ending_before", "expand", "is_default", "limit", "starting_after"})
    ctx.limit()
    data = []
    if ctx.sb.config.portal_configured.get(ctx.mode, False):
        active = ctx.params.get("active")
        if active in (None, "", "true"):
            data = [ctx.store.render_portal_config()]
        if ctx.params.get("is_default") == "false":
            data = []
    return 200, list_body("/v1/billing_portal/configurations", data, False)


def portal_config_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_configuration_read")
    ctx.allow({"expand"})
    if not ctx.sb.config.portal_configured.get(ctx.mode, False) or m["id"] != ctx.store.portal_config_id:
        raise StripeError(404, f"No such configuration: '{m['id']}'", code="resource_missing", param="configuration")
    return 200, ctx.store.render_portal_config()


def _public_account(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if not k.startswith("_")}


def accounts_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_connected_account_read")
    ctx.allow({"created", "ending_before", "expand", "limit", "starting_after"})
    limit = ctx.limit()
    created = ctx.created()
    st = ctx.store
    sa = _cursor(ctx, "starting_after", st.account_by_id.get, "account")
    eb = _cursor(ctx, "ending_before", st.account_by_id.get, "account")
    key = lambda a: (a["created"], a["_seq"])  # noqa: E731
    page, more = paginate_records(st.accounts, limit, sa, eb, created, key=key)
    return 200, list_body("/v1/accounts", [_public_account(a) for a in page], more)


def accounts_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_connected_account_read")
    ctx.allow({"expand"})
    a = ctx.store.account_by_id.get(m["id"])
    if a is None:
        raise ctx.no_such("account", m["id"], "account", exists_other=m["id"] in ctx.other.account_by_id)
    return 200, _public_account(a)


def _event_log(ctx: Ctx) -> EventLog:
    return ctx.sb.events[ctx.mode]


def events_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """GET /v1/events: newest first, the last 30 days only; ``type`` takes a ``*`` wildcard."""
    ctx.need("rak_event_read")
    ctx.allow({"created", "delivery_success", "ending_before", "expand", "limit", "starting_after", "type", "types"})
    limit = ctx.limit()
    created = ctx.created()
    ctx.expand()
    log = _event_log(ctx)
    typ, types = ctx.params.get("type"), ctx.params.get("types")
    if typ not in (None, "") and types not in (None, ""):
        raise StripeError(400, "You cannot specify both `type` and `types`.", code="parameter_invalid", param="types")
    if types not in (None, ""):
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="types")
        if len(types) > 20:
            raise StripeError(400, "You may only specify up to 20 types.", code="parameter_invalid", param="types")
        match = type_matcher([t for t in types if not t.endswith("*")])  # types[] takes exact names only
    elif typ not in (None, ""):
        match = type_matcher([ctx.str_param("type", typ)])
    else:
        match = lambda t: True  # noqa: E731
    start = log.window_start()
    lo, hi = created_bounds(log.keys, created)
    matched = [i for i in range(max(lo, start), hi) if match(log.types[i])]
    mkeys = [log.keys[i] for i in matched]

    def lookup(eid: str) -> Any:
        i = log.index_of(eid)
        return log.keys[i] if i is not None and i >= start else None

    sa = _cursor(ctx, "starting_after", lookup, "event")
    eb = _cursor(ctx, "ending_before", lookup, "event")
    idx, more = page_indices(mkeys, 0, len(mkeys), limit, sa, eb)
    return 200, list_body("/v1/events", [log.get(matched[i]) for i in idx], more)


def events_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_event_read")
    ctx.allow({"expand"})
    log = _event_log(ctx)
    i = log.index_of(m["id"])
    if i is None or i < log.window_start():
        raise ctx.no_such("event", m["id"])
    return 200, log.get(i)


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"^/v1/events$"), events_list),
    ("GET", re.compile(r"^/v1/events/(?P<id>[^/]+)$"), events_retrieve),
    ("GET", re.compile(r"^/v1/customers/search$"), customers_search),
    ("GET", re.compile(r"^/v1/customers$"), customers_list),
    ("POST", re.compile(r"^/v1/customers$"), customers_create),
    ("GET", re.compile(r"^/v1/customers/(?P<id>[^/]+)$"), customers_retrieve),
    ("POST", re.compile(r"^/v1/customers/(?P<id>[^/]+)$"), customers_update),
    ("DELETE", re.compile(r"^/v1/customers/(?P<id>[^/]+)$"), customers_delete),
    ("GET", re.compile(r"^/v1/customers/(?P<id>[^/]+)/payment_methods$"), customer_payment_methods),
    ("GET", re.compile(r"^/v1/payment_methods/(?P<id>[^/]+)$"), pm_retrieve),
    ("POST", re.compile(r"^/v1/payment_methods/(?P<id>[^/]+)/attach$"), pm_attach),
    ("POST", re.compile(r"^/v1/payment_methods/(?P<id>[^/]+)/detach$"), pm_detach),
    ("GET", re.compile(r"^/v1/subscriptions$"), subs_list),
    ("POST", re.compile(r"^/v1/subscriptions$"), subs_create),
    ("GET", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), subs_retrieve),
    ("DELETE", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), subs_cancel),
    ("POST", re.compile(r"^/v1/billing_portal/sessions$"), portal_session_create),
    ("GET", re.compile(r"^/v1/billing_portal/configurations$"), portal_configs_list),
    ("GET", re.compile(r"^/v1/billing_portal/configurations/(?P<id>[^/]+)$"), portal_config_retrieve),
    ("GET", re.compile(r"^/v1/accounts$"), accounts_list),
    ("GET", re.compile(r"^/v1/accounts/(?P<id>[^/]+)$"), accounts_retrieve),
]


# ====================================================================== the sandbox
class _Drop(Exception):
    pass


class Sandbox:
    """All mutable sandbox state; reachable as ``app.state.sandbox``."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stores: dict[str, ModeStore] = {"test": ModeStore(False), "live": ModeStore(True)}
        for mode, st in self.stores.items():
            st.portal_config_id = "bpc_1Sbx" + hashlib.sha1(f"{config.seed}:{mode}".encode()).hexdigest()[:20]
            st.portal_config_created = 1746057600
        if not config.empty:
            seed_all(
                self.stores["test"],
                self.stores["live"],
                config.seed,
                config.customers,
                live_customers=config.live_customers,
                profile=config.created_profile,
            )
        self.faults = FaultInjector(rate=config.fault_rate, seed=config.fault_seed)
        self.limiter = RateLimiter()
        self.idem: dict[tuple[str, str], tuple[str, int, bytes]] = {}
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()  # authenticated /v1 requests per endpoint
        self.limited_by_endpoint: Counter[str] = Counter()  # rate-limit 429s per endpoint
        self.rate_limited: Counter[str] = Counter()  # rate-limit 429s per Stripe-Rate-Limited-Reason
        self.events = {"test": EventLog(False, API_VERSION), "live": EventLog(True, API_VERSION)}
        self.delivery = Delivery()

    # ---------------------------------------------------------------- helpers
    def customer_counts(self) -> dict[str, int]:
        return {m: s.live_customer_count() for m, s in self.stores.items()}

    def _headers(self, request_id: str, version: str, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
        h = {
            "content-type": "application/json",
            "request-id": request_id,
            "stripe-version": version,
            "access-control-allow-origin": "*",
            "cache-control": "no-cache, no-store",
        }
        if extra:
            h.update({k.lower(): v for k, v in extra.items()})
        return [(k.encode(), v.encode()) for k, v in h.items()]

    async def _send(self, send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.by_status[str(status)] += 1
        headers = headers + [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _abort(send: Any) -> None:
        """Drop the connection without any response (uvicorn: abort the transport)."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            try:
                transport.abort()
            except Exception:  # pragma: no cover
                transport.close()
            try:
                cycle.disconnected = True  # type: ignore[union-attr]
            except Exception:  # pragma: no cover
                pass
            return
        # Fallback for servers without transport access: start a response and then fail
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"100")]})
        raise _Drop("connection dropped by sandbox fault")

    def _auth(self, headers: dict[str, str]) -> tuple[str, str, frozenset[str] | None]:
        auth = headers.get("authorization", "").strip()
        key = ""
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        elif auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip()).decode()
                key = raw.split(":", 1)[0]
            except Exception:
                key = ""
        elif auth:
            raise StripeError(401, "Invalid API Key provided: " + redact_key(auth.split(" ")[-1]))
        if not key:
            raise StripeError(401, NO_KEY_MSG)
        if key not in KEYS:
            raise StripeError(401, f"Invalid API Key provided: {redact_key(key)}")
        mode, perms = KEYS[key]
        return key, mode, perms

    def _key_guess(self, headers: dict[str, str]) -> str:
        try:
            return self._auth(headers)[0]
        except StripeError:
            return ""

    def _endpoint_limits(self, endpoint: str) -> list[tuple[str, float | None]]:
        """The limiters beyond the global one: the endpoint's own, or the Search API's shared one."""
        c = self.config
        if endpoint in c.endpoint_rate_limits:
            return [(endpoint, float(c.endpoint_rate_limits[endpoint]))]
        if endpoint.endswith("/search"):
            return [("search", c.search_rate_limit)]
        return [(endpoint, c.endpoint_rate_limit)]

    # ---------------------------------------------------------------- /v1
    async def handle_v1(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.requests += 1
        method = scope["method"].upper()
        path = scope["path"]
        raw_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = "req_" + "".join(secrets.choice(ALNUM) for _ in range(14))
        version = raw_headers.get("stripe-version") or API_VERSION
        auth_hdr = raw_headers.get("authorization", "")
        livemode_guess = "live_" in auth_hdr
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        # In flight from arrival (the latency included), so a concurrency limit sees real overlap.
        flight_key = self._key_guess(raw_headers)
        self.limiter.enter(flight_key)
        try:
            await self._handle_v1(scope, send, method, path, raw_headers, request_id, version, livemode_guess, body)
        finally:
            self.limiter.leave(flight_key)

    async def _handle_v1(
        self,
        scope: dict[str, Any],
        send: Any,
        method: str,
        path: str,
        raw_headers: dict[str, str],
        request_id: str,
        version: str,
        livemode_guess: bool,
        body: bytes,
    ) -> None:
        if self.config.latency_ms:
            await anyio.sleep(self.config.latency_ms / 1000.0)

        extra: dict[str, str] = {}

        async def error(e: StripeError, livemode: bool = livemode_guess) -> None:
            hdrs = dict(extra)
            hdrs.update(e.headers)
            await self._send(send, e.status, json.dumps(e.body(request_id, livemode)).encode(), self._headers(request_id, version, hdrs))

        fault = self.faults.take(method, path)
        drop_after = False
        if fault is not None:
            if fault.kind == "slow":
                await anyio.sleep(fault.delay_ms / 1000.0)
            elif fault.kind == "500":
                return await error(StripeError(500, "An unknown error occurred, please try again. If the problem persists, contact support at https://support.stripe.com/.", type="api_error", headers={"Stripe-Should-Retry": "true"}))
            elif fault.kind == "429":
                return await error(_rate_limited())
            elif fault.kind == "lock_timeout":
                return await error(_lock_timeout())
            elif fault.kind == "reset":
                self.by_status["reset"] += 1
                return await self._abort(send)
            elif fault.kind == "drop_after_commit":
                drop_after = True

        try:
            key, mode, perms = self._auth(raw_headers)
        except StripeError as e:
            return await error(e)
        livemode = mode == "live"
        rate = self.config.live_rate_limit if livemode else self.config.rate_limit
        endpoint = endpoint_name(method, path)
        reason, bucket = self.limiter.check(
            key, rate, self._endpoint_limits(endpoint) if rate else [], self.config.concurrency_limit if rate else None
        )
        self.by_endpoint[endpoint] += 1
        if bucket is not None:
            extra["Stripe-Ratelimit-Limit"] = str(int(rate) if float(rate).is_integer() else rate)  # type: ignore[arg-type]
            extra["Stripe-Ratelimit-Remaining"] = str(bucket.remaining)
        if reason is not None:
            self.rate_limited[reason] += 1
            self.limited_by_endpoint[endpoint] += 1
            return await error(_rate_limited(reason), livemode)
        if not valid_api_version(version):
            bad_version = version
            version = API_VERSION  # the answer is rendered in the account's version, not the rejected one
            return await error(StripeError(400, f"Invalid Stripe API version: {bad_version}"), livemode)

        idem_key = raw_headers.get("idempotency-key") if method == "POST" else None
        try:
            qs = scope.get("query_string", b"").decode("latin-1")
            params = parse_form(qs)
            if method == "POST":
                ctype = raw_headers.get("content-type", "")
                if body and "json" in ctype:
                    raise StripeError(400, "Invalid request: Stripe's API accepts form-encoded request bodies (application/x-www-form-urlencoded), not JSON.", code="parameter_invalid")
                params.update(parse_form(body.decode("utf-8", errors="replace")))
            elif method == "DELETE" and body:
                params.update(parse_form(body.decode("utf-8", errors="replace")))
        except StripeError as e:
            return await error(e, livemode)

        fp = None
        if idem_key:
            if len(idem_key) > 255:
                return await error(StripeError(400, "Invalid Idempotency-Key: must be at most 255 characters", type="idempotency_error"), livemode)
            fp = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
            saved = self.idem.get((key, idem_key))
            if saved is not None:
                if saved[0] != fp:
                    return await error(StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                        f"Try using a key other than '{idem_key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    ), livemode)
                extra["Idempotent-Replayed"] = "true"
                extra["Original-Request"] = saved[3] if len(saved) > 3 else request_id  # type: ignore[misc]
                if drop_after:
                    return await self._abort(send)
                return await self._send(send, saved[1], saved[2], self._headers(request_id, version, extra))
            extra["Idempotency-Key"] = idem_key

        handler = None
        match = None
        for m_, rx, h in ROUTES:
            mm = rx.match(path)
            if mm:
                if m_ == method:
                    handler, match = h, mm
                    break
        ctx = Ctx(self, key, mode, perms, method, path, params)
        ctx.request_id, ctx.idempotency_key = request_id, idem_key
        try:
            if handler is None:
                raise StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")
            status, obj = handler(ctx, match.groupdict())  # type: ignore[union-attr]
            payload = json.dumps(obj).encode()
        except StripeError as e:
            status = e.status
            payload = json.dumps(e.body(request_id, livemode)).encode()
            extra.update(e.headers)
        if idem_key and fp and (status < 400 or status == 404):
            self.idem[(key, idem_key)] = (fp, status, payload, request_id)  # type: ignore[assignment]
        if drop_after:
            self.by_status["dropped"] += 1
            await self._abort(send)
        else:
            await self._send(send, status, payload, self._headers(request_id, version, extra))
        # After the answer, like Stripe: a webhook never delays the API call that caused it.
        await self.delivery.flush()

    # ---------------------------------------------------------------- /scim/v2 faults
    async def handle_scim(self, scope: dict[str, Any], receive: Any, send: Any, downstream: Any) -> None:
        """Apply fault rules to a SCIM request, then (unless the fault answers) pass it to ``downstream``.

        500 and 429 answer in SCIM's error shape (429 with ``Retry-After``); ``reset`` drops the
        connection without an answer; ``drop_after_commit`` runs the request, discards its answer and
        drops the connection; ``slow`` waits ``delay_ms`` first. Random faults (``fault_rate``) never
        touch SCIM: ``FaultInjector.take`` keeps them to ``/v1``.
        """
        fault = self.faults.take(scope["method"].upper(), scope["path"])
        if fault is None:
            return await downstream(scope, receive, send)
        if fault.kind == "slow":
            await anyio.sleep(fault.delay_ms / 1000.0)
            return await downstream(scope, receive, send)
        if fault.kind == "drop_after_commit":

            async def discard(message: Any) -> None:
                return None

            await downstream(scope, receive, discard)  # the SCIM store commits the change
            self.by_status["dropped"] += 1
            return await self._abort(send)
        if self.config.latency_ms:
            await anyio.sleep(self.config.latency_ms / 1000.0)
        if fault.kind == "reset":
            self.by_status["reset"] += 1
            return await self._abort(send)
        status = int(fault.kind)  # "500" / "429" (lock_timeout is refused for SCIM paths by FaultRule)
        detail = (
            "Too many requests: SCIM rate limit exceeded; retry after the Retry-After interval"
            if status == 429
            else "An unknown error occurred, please try again"
        )
        body = json.dumps({"schemas": [SCIM_ERROR_SCHEMA], "status": str(status), "detail": detail}).encode()
        headers = [(b"content-type", b"application/scim+json"), (b"cache-control", b"no-cache, no-store")]
        if status == 429:
            headers.append((b"retry-after", b"1"))
        await self._send(send, status, body, headers)

    # ---------------------------------------------------------------- /_sandbox
    async def admin(self, request: Request) -> JSONResponse:
        path = request.url.path
        method = request.method
        if path == "/_sandbox/faults":
            if method == "POST":
                try:
                    data = await request.json()
                    rules = [FaultRule.from_json(r) for r in data.get("rules", [])]
                except Exception as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
                self.faults.rules.extend(rules)
                return JSONResponse({"rules": [asdict(r) for r in self.faults.rules]})
            if method == "DELETE":
                self.faults.rules.clear()
                return JSONResponse({"rules": []})
            return JSONResponse({"rules": [asdict(r) for r in self.faults.rules]})
        if path == "/_sandbox/stats":
            return JSONResponse(self.stats())
        if path == "/_sandbox/webhooks":
            return await self._admin_webhooks(request)
        if path == "/_sandbox/webhooks/flush":  # tests: wait for deliveries without sleeping
            await self.delivery.flush()
            return JSONResponse({"url": self.delivery.url, "log": self.delivery.log})
        if path == "/_sandbox/events/expire":
            return JSONResponse({"expired": sum(log.expire_all() for log in self.events.values())})
        if path == "/_sandbox/dashboard":
            return await self._admin_dashboard(request)
        if path == "/_sandbox/reset-stats":
            self.requests = 0
            self.by_status.clear()
            self.by_endpoint.clear()
            self.limited_by_endpoint.clear()
            self.rate_limited.clear()
            self.limiter.max_in_flight = 0
            self.faults.injected = 0
            return JSONResponse(self.stats())
        if path == "/_sandbox/config":
            if method == "POST":
                try:
                    data = await request.json()
                except Exception as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
                for k, v in data.items():
                    if k not in ("rate_limit", "live_rate_limit", *LIMIT_SETTINGS, "search_lag_s", "latency_ms", "portal_configured", "fault_rate", "scim_keep_inactive", "scim_deactivate_deletes"):
                        return JSONResponse({"error": f"unknown or read-only setting {k!r}"}, status_code=400)
                    if k == "portal_configured":
                        self.config.portal_configured = {**self.config.portal_configured, **v}
                    elif k == "fault_rate":
                        self.config.fault_rate = float(v)
                        self.faults.rate = float(v)
                    elif k in ("scim_keep_inactive", "scim_deactivate_deletes"):
                        # scim_deactivate_deletes: the old name, with the opposite sense. Switching at
                        # runtime changes what later deactivations do, not the seeded members.
                        keep = bool(v) if k == "scim_keep_inactive" else not bool(v)
                        self.config.scim_keep_inactive = keep
                        scim = getattr(self, "scim", None)
                        if scim is not None:
                            scim.keep_inactive = keep
                    else:
                        setattr(self.config, k, v)
                if {"rate_limit", "live_rate_limit", *LIMIT_SETTINGS} & set(data):
                    self.limiter.buckets.clear()
            return JSONResponse(self.public_config())
        return JSONResponse({"error": "not found"}, status_code=404)

    async def _admin_webhooks(self, request: Request) -> JSONResponse:
        """Forward events to a URL, signed with a secret (``stripe listen --forward-to``); GET: the log."""
        d = self.delivery
        if request.method == "POST":
            try:
                data = await request.json()
                url, secret = str(data["url"]), str(data["secret"])
                types = [str(t) for t in data.get("types", ["*"])]
            except Exception as exc:
                return JSONResponse({"error": f"give url, secret and optional types: {exc}"}, status_code=400)
            d.url, d.secret, d.types = url, secret, types
        elif request.method == "DELETE":
            d.url, d.secret, d.types = None, "", ["*"]
            d.queue.clear()
            d.log.clear()
        return JSONResponse({"url": d.url, "types": d.types, "log": d.log})

    async def _admin_dashboard(self, request: Request) -> JSONResponse:
        """An update made "in the Dashboard": the customer changes, its event has ``request.id`` null."""
        try:
            data = await request.json()
            cid, params, mode = str(data["customer"]), dict(data["params"]), str(data.get("mode", "test"))
        except Exception as exc:
            return JSONResponse({"error": f"give customer and params: {exc}"}, status_code=400)
        ctx = Ctx(self, "dashboard", mode, None, "POST", f"/v1/customers/{cid}", params)
        try:
            status, obj = customers_update(ctx, {"id": cid})
        except StripeError as e:
            return JSONResponse(e.body("req_dashboard", mode == "live"), status_code=e.status)
        await self.delivery.flush()
        return JSONResponse(obj, status_code=status)

    def public_config(self) -> dict[str, Any]:
        d = asdict(self.config)
        d.pop("scim_token", None)
        return d

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "faults_injected": self.faults.injected,
            "by_endpoint": dict(self.by_endpoint),
            "rate_limited": dict(self.rate_limited),
            "rate_limited_by_endpoint": dict(self.limited_by_endpoint),
            "max_in_flight": self.limiter.max_in_flight,
            "customers": self.customer_counts(),
        }


SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

_RATE_MSG = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)
_LOCK_MSG = (
    "This object cannot be accessed right now because another API request or Stripe process is currently "
    "accessing it. If you see this error intermittently, retry the request. If you see this error frequently "
    "and are making multiple concurrent requests to a single object, make your requests serially or at a lower "
    "rate. See https://stripe.com/docs/rate-limits#object-lock-timeouts for more details."
)


def _rate_limited(reason: str | None = None) -> StripeError:
    # No Stripe-Should-Retry and no Retry-After: Stripe's libraries (stripe-python ``_should_retry``)
    # retry a 429 only when told ``Stripe-Should-Retry: true``, which Stripe sends for lock timeouts
    # alone; a rate-limited caller is expected to back off on its own schedule. The limiter that
    # refused is named in Stripe-Rate-Limited-Reason (an injected "429" fault names none).
    return StripeError(
        429, _RATE_MSG, code="rate_limit", headers={"Stripe-Rate-Limited-Reason": reason} if reason else None
    )


def endpoint_name(method: str, path: str) -> str:
    """Stripe's unit of an endpoint limit: method + route template (`GET /v1/customers/{id}`)."""
    for route_method, rx, _ in ROUTES:
        if route_method == method and rx.match(path):
            return f"{method} " + _TEMPLATE.sub("{id}", rx.pattern).strip("^$")
    return f"{method} {path}"  # no such route (a 404): its own, unshared limit


_TEMPLATE = re.compile(r"\(\?P<\w+>\[\^/\]\+\)")
LIMIT_SETTINGS = ("endpoint_rate_limit", "search_rate_limit", "endpoint_rate_limits", "concurrency_limit")


def _lock_timeout() -> StripeError:
    # Stripe answers an object-lock timeout with 429 (not 409) and asks the libraries to retry.
    return StripeError(429, _LOCK_MSG, code="lock_timeout", headers={"Stripe-Should-Retry": "true"})


class _LatencyWrapper:
    def __init__(self, app: Any, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.sandbox.config.latency_ms:
            await anyio.sleep(self.sandbox.config.latency_ms / 1000.0)
        await self.app(scope, receive, send)


class SandboxApp(Starlette):
    """Starlette app that routes ``/v1`` straight to the emulator (bypassing error middleware,
    so connection faults really drop the connection); ``/scim/v2`` requests meet the fault rules
    the same way before Starlette routes them to the SCIM emulator."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # type: ignore[override]
        if scope["type"] == "http" and (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            sb: Sandbox = self.state.sandbox
            try:
                await sb.handle_v1(scope, receive, send)
            except _Drop:
                raise
            return
        if scope["type"] == "http" and scope["path"].startswith(SCIM_PREFIX):
            await self.state.sandbox.handle_scim(scope, receive, send, super().__call__)
            return
        await super().__call__(scope, receive, send)


def build_app(config: SandboxConfig | None = None) -> Starlette:
    config = config or SandboxConfig()
    sandbox = Sandbox(config)
    routes: list[Any] = [
        Route("/_sandbox/faults", sandbox.admin, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/stats", sandbox.admin, methods=["GET"]),
        Route("/_sandbox/reset-stats", sandbox.admin, methods=["POST"]),
        Route("/_sandbox/config", sandbox.admin, methods=["GET", "POST"]),
        Route("/_sandbox/webhooks", sandbox.admin, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/webhooks/flush", sandbox.admin, methods=["POST"]),
        Route("/_sandbox/events/expire", sandbox.admin, methods=["POST"]),
        Route("/_sandbox/dashboard", sandbox.admin, methods=["POST"]),
    ]
    try:
        from .scim import ScimSandbox  # type: ignore[attr-defined]
    except ImportError:
        ScimSandbox = None  # type: ignore[assignment,misc]
    if ScimSandbox is not None:
        scim = ScimSandbox(
            token=config.scim_token,
            seed=config.seed,
            empty=config.empty,
            shared_emails=[p["email"] for p in SHARED_PEOPLE],
            keep_inactive=config.scim_keep_inactive,
        )
        sandbox.scim = scim  # type: ignore[attr-defined]
        routes.append(Mount("/scim/v2", app=_LatencyWrapper(scim.app, sandbox)))
    app = SandboxApp(routes=routes)
    app.state.sandbox = sandbox
    return app
