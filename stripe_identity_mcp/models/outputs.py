"""Compact tool outputs. Shared shapes keep output schemas small; detail="full" adds the rest."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_serializer

from stripe_identity_mcp.models.stripe import BILLING_STATUSES, Customer


class Compact(BaseModel):
    """Output base: fields that are None are left out of the answer (they cost the model tokens)."""

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class CustomerSummary(Compact):
    """A Stripe Customer (billing record; not a team member, not a Connect account)."""

    id: str
    email: str | None = None
    name: str | None = None
    created: str | None = None
    deleted: bool = False
    subscriptions: int | None = Field(None, description="active subscriptions; null when not looked up")
    default_payment_method: str | None = None
    metadata: dict[str, str] = {}
    phone: str | None = None
    description: str | None = None
    address: dict[str, Any] | None = None
    balance: int | None = None
    currency: str | None = None
    delinquent: bool | None = None
    note: str | None = None


class CaseVariant(Compact):
    id: str
    email: str | None
    source: str | None = None  # "mirror" when found in the local mirror (--mirror), else via search


class EmailLookup(Compact):
    email: str
    mode: str
    exact_count: int = Field(description="customers whose email is exactly this one")
    record_count: int = Field(description="every customer record of this email: exact + case variants")
    customers: list[CustomerSummary]
    case_variants: list[CaseVariant] = []
    warnings: list[str] = []


class CustomerPage(Compact):
    mode: str
    customers: list[CustomerSummary]
    has_more: bool
    next_cursor: str | None = Field(None, description="pass as starting_after for the next page")
    next_page: str | None = Field(None, description="search only: pass as page for the next page")
    warnings: list[str] = []


class AccessReport(Compact):
    mode: Literal["test", "live", "sandbox test", "sandbox live"]
    key_kind: Literal["secret", "restricted"]
    api_base: str
    api_version: str
    toolsets: list[str]
    writes: bool
    writes_note: str | None = None
    confirm: str
    scim_configured: bool
    scim_note: str | None = None
    rate_limit: dict[str, Any]


def _default_pm(customer: Customer) -> str | None:
    settings = customer.invoice_settings
    pm = settings.default_payment_method if settings else None
    if isinstance(pm, dict):
        card = pm.get("card") or {}
        if card.get("brand"):
            return f"{pm.get('id')} ({card.get('brand')} {card.get('last4')})"
        return pm.get("id")
    return pm


def _subscription_count(customer: Customer) -> int | None:
    subs = customer.subscriptions
    if not isinstance(subs, dict):
        return None
    active = [s for s in subs.get("data", []) if s.get("status") in BILLING_STATUSES]
    return len(active)


def summarize(customer: Customer, detail: Literal["compact", "full"] = "compact") -> CustomerSummary:
    from stripe_identity_mcp.timefmt import iso

    if customer.deleted:
        return CustomerSummary(id=customer.id, deleted=True)
    summary = CustomerSummary(
        id=customer.id,
        email=customer.email,
        name=customer.name,
        created=iso(customer.created),
        subscriptions=_subscription_count(customer),
        default_payment_method=_default_pm(customer),
        metadata=customer.metadata,
    )
    if detail == "full":
        summary.phone = customer.phone
        summary.description = customer.description
        summary.address = customer.address.model_dump(exclude_none=True) if customer.address else None
        summary.balance = customer.balance
        summary.currency = customer.currency
        summary.delinquent = customer.delinquent
    return summary
