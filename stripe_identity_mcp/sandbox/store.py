"""In-memory data stores of the sandbox (one per mode: test and live).

Customers are kept compact (small dicts) and rendered to full Stripe objects on output.
Non-deleted customers also live in ``keys``/``ids``: two parallel lists sorted by
``(created, seq)`` ascending, so list pages, created ranges and cursors are bisects, never scans.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import string
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .forms import StripeError

ALNUM = string.ascii_letters + string.digits

CARD_TABLE: dict[str, tuple[str, str, str, str]] = {
    # magic id suffix -> (brand, last4, funding, country)
    "visa": ("visa", "4242", "credit", "US"),
    "visa_debit": ("visa", "5556", "debit", "US"),
    "mastercard": ("mastercard", "4444", "credit", "US"),
    "mastercard_debit": ("mastercard", "8210", "debit", "US"),
    "mastercard_prepaid": ("mastercard", "5100", "prepaid", "US"),
    "amex": ("amex", "8431", "credit", "US"),
    "discover": ("discover", "1117", "credit", "US"),
    "diners": ("diners", "0004", "credit", "US"),
    "jcb": ("jcb", "0000", "credit", "JP"),
    "unionpay": ("unionpay", "0005", "credit", "CN"),
    "chargeDeclined": ("visa", "0002", "credit", "US"),
    "chargeDeclinedInsufficientFunds": ("visa", "9995", "credit", "US"),
    "chargeDeclinedExpiredCard": ("visa", "0069", "credit", "US"),
    "chargeCustomerFail": ("visa", "0341", "credit", "US"),
}


_ID_TABLE = bytes(ord(ALNUM[b % len(ALNUM)]) for b in range(256))


def rand_id(prefix: str, n: int, rng: random.Random | None = None) -> str:
    """Stripe-like id: prefix + n alphanumerics (deterministic when ``rng`` is given)."""
    if rng is None:
        return prefix + "".join(secrets.choice(ALNUM) for _ in range(n))
    return prefix + rng.randbytes(n).translate(_ID_TABLE).decode()


def empty_address() -> dict[str, Any]:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def fingerprint(brand: str, last4: str, livemode: bool) -> str:
    h = hashlib.sha256(f"{brand}:{last4}:{livemode}".encode()).digest()
    return "".join(ALNUM[b % len(ALNUM)] for b in h[:16])


@dataclass
class ModeStore:
    livemode: bool
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[tuple[int, int]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    email_idx: dict[str, list[str]] = field(default_factory=dict)
    pms: dict[str, dict[str, Any]] = field(default_factory=dict)
    cus_pms: dict[str, list[str]] = field(default_factory=dict)
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cus_subs: dict[str, list[str]] = field(default_factory=dict)
    accounts: list[dict[str, Any]] = field(default_factory=list)  # sorted by (created, seq)
    account_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0
    portal_config_id: str = ""
    portal_config_created: int = 0

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # ------------------------------------------------------------------ customers
    def add_customer(self, rec: dict[str, Any], *, sorted_append: bool = False) -> None:
        self.customers[rec["id"]] = rec
        if rec.get("deleted"):
            return
        key = (rec["created"], rec["seq"])
        if sorted_append or not self.keys or key > self.keys[-1]:
            self.keys.append(key)
            self.ids.append(rec["id"])
        else:
            i = bisect_left(self.keys, key)
            self.keys.insert(i, key)
            self.ids.insert(i, rec["id"])
        if rec.get("email") is not None:
            self.email_idx.setdefault(rec["email"], []).append(rec["id"])

    def remove_from_indexes(self, rec: dict[str, Any]) -> None:
        key = (rec["created"], rec["seq"])
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]
            del self.ids[i]
        self.unindex_email(rec)

    def unindex_email(self, rec: dict[str, Any]) -> None:
        email = rec.get("email")
        if email is not None and email in self.email_idx:
            lst = self.email_idx[email]
            if rec["id"] in lst:
                lst.remove(rec["id"])
            if not lst:
                del self.email_idx[email]

    def index_email(self, rec: dict[str, Any]) -> None:
        if rec.get("email") is not None:
            self.email_idx.setdefault(rec["email"], []).append(rec["id"])

    def live_customer_count(self) -> int:
        return len(self.keys)

    # ------------------------------------------------------------------ rendering
    def render_customer(self, rec: dict[str, Any], expand: set[str] | None = None) -> dict[str, Any]:
        if rec.get("deleted"):
            return {"id": rec["id"], "object": "customer", "deleted": True}
        expand = expand or set()
        dpm: Any = rec.get("default_pm")
        if dpm and "invoice_settings.default_payment_method" in expand and dpm in self.pms:
            dpm = self.render_pm(self.pms[dpm])
        out: dict[str, Any] = {
            "id": rec["id"],
            "object": "customer",
            "address": dict(rec["address"]) if rec.get("address") else None,
            "balance": rec.get("balance", 0),
            "created": rec["created"],
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": rec.get("description"),
            "discount": None,
            "email": rec.get("email"),
            "invoice_prefix": rec["id"][4:12].upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": dpm,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": self.livemode,
            "metadata": dict(rec.get("metadata") or {}),
            "name": rec.get("name"),
            "next_invoice_sequence": 1,
            "phone": rec.get("phone"),
            "preferred_locales": list(rec.get("preferred_locales") or []),
            "shipping": _copy_shipping(rec.get("shipping")),
            "tax_exempt": rec.get("tax_exempt", "none"),
            "test_clock": None,
        }
        if "subscriptions" in expand:
            subs = [self.subs[s] for s in self.cus_subs.get(rec["id"], []) if self.subs[s]["status"] != "canceled"]
            subs.sort(key=lambda s: (s["created"], s["seq"]), reverse=True)
            out["subscriptions"] = {
                "object": "list",
                "data": [self.render_sub(s) for s in subs[:10]],
                "has_more": len(subs) > 10,
                "url": f"/v1/customers/{rec['id']}/subscriptions",
            }
            if len(subs) > 10:
                out["subscriptions"]["total_count"] = len(subs)
        # Since API version 2020-08-27 `sources` and `tax_ids` appear only when expanded. The sandbox
        # holds no legacy sources and no tax ids, so the expanded lists are empty but well-formed
        # (ApmsSourcesSourceList / TaxIDsList in Stripe's OpenAPI spec).
        for name in ("sources", "tax_ids"):
            if name in expand:
                out[name] = {"object": "list", "data": [], "has_more": False, "url": f"/v1/customers/{rec['id']}/{name}"}
        return out

    def render_pm(self, pm: dict[str, Any]) -> dict[str, Any]:
        brand, last4, funding, country = pm["card"]
        return {
            "id": pm["id"],
            "object": "payment_method",
            "billing_details": {"address": empty_address(), "email": None, "name": None, "phone": None},
            "card": {
                "brand": brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": country,
                "exp_month": pm["exp_month"],
                "exp_year": pm["exp_year"],
                "fingerprint": fingerprint(brand, last4, self.livemode),
                "funding": funding,
                "generated_from": None,
                "last4": last4,
                "networks": {"available": [brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": pm["created"],
            "customer": pm.get("customer"),
            "livemode": self.livemode,
            "metadata": dict(pm.get("metadata") or {}),
            "type": "card",
        }

    def render_sub(self, sub: dict[str, Any]) -> dict[str, Any]:
        created = sub["created"]
        period_start = created
        # monthly periods advanced to cover "now"
        now = int(time.time())
        while period_start + 30 * 86400 <= now and sub["status"] != "canceled":
            period_start += 30 * 86400
        canceled = sub["status"] == "canceled"
        price_id = sub["price"]
        return {
            "id": sub["id"],
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": created,
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": sub.get("canceled_at"),
            "cancellation_details": {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested" if canceled else None,
            },
            "collection_method": "charge_automatically",
            "created": created,
            "currency": "usd",
            "current_period_end": period_start + 30 * 86400,
            "current_period_start": period_start,
            "customer": sub["customer"],
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discount": None,
            "ended_at": sub.get("canceled_at"),
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": sub["item_id"],
                        "object": "subscription_item",
                        "billing_thresholds": None,
                        "created": created,
                        "metadata": {},
                        "price": self.render_price(price_id, created),
                        "quantity": 1,
                        "subscription": sub["id"],
                        "tax_rates": [],
                    }
                ],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub['id']}",
            },
            "latest_invoice": None,
            "livemode": self.livemode,
            "metadata": dict(sub.get("metadata") or {}),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": created,
            "status": sub["status"],
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }

    def render_price(self, price_id: str, created: int) -> dict[str, Any]:
        amount = 1000 + (sum(price_id.encode()) % 9) * 500
        return {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": "usd",
            "custom_unit_amount": None,
            "livemode": self.livemode,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": "prod_" + hashlib.sha1(price_id.encode()).hexdigest()[:14],
            "recurring": {
                "aggregate_usage": None,
                "interval": "month",
                "interval_count": 1,
                "trial_period_days": None,
                "usage_type": "licensed",
            },
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
        }

    def render_portal_config(self) -> dict[str, Any]:
        return {
            "id": self.portal_config_id,
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            "created": self.portal_config_created,
            "default_return_url": None,
            "features": {
                "customer_update": {"allowed_updates": ["email", "address", "phone"], "enabled": True},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {
                    "cancellation_reason": {
                        "enabled": False,
                        "options": ["too_expensive", "missing_features", "switched_service", "unused", "other"],
                    },
                    "enabled": True,
                    "mode": "at_period_end",
                    "proration_behavior": "none",
                },
                "subscription_pause": {"enabled": False},
                "subscription_update": {
                    "default_allowed_updates": [],
                    "enabled": False,
                    "proration_behavior": "none",
                    "products": [],
                },
            },
            "is_default": True,
            "livemode": self.livemode,
            "login_page": {"enabled": False, "url": None},
            "metadata": {},
            "updated": self.portal_config_created,
        }

    # ------------------------------------------------------------------ payment methods / subs
    def new_pm(self, card_key: str, customer: str | None, created: int, rng: random.Random | None = None) -> dict[str, Any]:
        r = rng or random
        pm: dict[str, Any] = {
            "id": rand_id("pm_", 24, rng),
            "card": CARD_TABLE[card_key],
            "exp_month": r.randint(1, 12),
            "exp_year": r.randint(2027, 2031),
            "created": created,
            "seq": self.next_seq(),
            "customer": customer,
            "metadata": {},
        }
        self.pms[pm["id"]] = pm
        if customer:
            self.cus_pms.setdefault(customer, []).append(pm["id"])
        return pm

    def new_sub(self, customer: str, price: str, created: int, rng: random.Random | None = None, sub_id: str | None = None) -> dict[str, Any]:
        sub: dict[str, Any] = {
            "id": sub_id or rand_id("sub_", 24, rng),
            "item_id": rand_id("si_", 14, rng),
            "customer": customer,
            "price": price,
            "created": created,
            "seq": self.next_seq(),
            "status": "active",
            "canceled_at": None,
            "metadata": {},
        }
        self.subs[sub["id"]] = sub
        self.cus_subs.setdefault(customer, []).append(sub["id"])
        return sub


def _copy_shipping(sh: dict[str, Any] | None) -> dict[str, Any] | None:
    if not sh:
        return None
    return {"address": dict(sh.get("address") or empty_address()), "name": sh.get("name"), "phone": sh.get("phone")}


# ---------------------------------------------------------------------- pagination helpers
def created_bounds(keys: list[tuple[int, int]], created: Any) -> tuple[int, int]:
    """Index range [lo, hi) of ``keys`` matching a parsed ``created`` filter (int or dict)."""
    lo, hi = 0, len(keys)
    if created is None:
        return lo, hi
    if isinstance(created, int):
        return bisect_left(keys, (created,)), bisect_left(keys, (created + 1,))
    if "gt" in created:
        lo = max(lo, bisect_left(keys, (created["gt"] + 1,)))
    if "gte" in created:
        lo = max(lo, bisect_left(keys, (created["gte"],)))
    if "lt" in created:
        hi = min(hi, bisect_left(keys, (created["lt"],)))
    if "lte" in created:
        hi = min(hi, bisect_left(keys, (created["lte"] + 1,)))
    return lo, max(lo, hi)


def page_indices(
    keys: list[Any],
    lo: int,
    hi: int,
    limit: int,
    starting_after: Any | None = None,
    ending_before: Any | None = None,
) -> tuple[list[int], bool]:
    """Newest-first page over ascending ``keys[lo:hi]``; cursors are sort keys."""
    if ending_before is not None:
        lo = max(lo, bisect_right(keys, ending_before))
        end = min(hi, lo + limit)
        return list(range(end - 1, lo - 1, -1)), end < hi
    if starting_after is not None:
        hi = min(hi, bisect_left(keys, starting_after))
    start = max(lo, hi - limit)
    return list(range(hi - 1, start - 1, -1)), start > lo


def paginate_records(
    records: list[dict[str, Any]],
    limit: int,
    starting_after: dict[str, Any] | None,
    ending_before: dict[str, Any] | None,
    created: Any = None,
    key: Callable[[dict[str, Any]], Any] = lambda r: (r["created"], r["seq"]),
) -> tuple[list[dict[str, Any]], bool]:
    recs = sorted(records, key=key)
    keys = [key(r) for r in recs]
    lo, hi = created_bounds(keys, created)
    idx, more = page_indices(
        keys,
        lo,
        hi,
        limit,
        key(starting_after) if starting_after else None,
        key(ending_before) if ending_before else None,
    )
    return [recs[i] for i in idx], more


__all__ = [
    "ALNUM",
    "CARD_TABLE",
    "ModeStore",
    "StripeError",
    "created_bounds",
    "empty_address",
    "insort",
    "page_indices",
    "paginate_records",
    "rand_id",
]
