"""Compact outputs of the write tools (customers and billing)."""

from __future__ import annotations

from pydantic import Field

from stripe_identity_mcp.models.outputs import Compact, CustomerSummary
from stripe_identity_mcp.models.stripe import PaymentMethod


class CustomerWrite(Compact):
    """A created or updated customer."""

    mode: str
    customer: CustomerSummary
    replayed: bool | None = Field(None, description="true: Stripe returned the result of an earlier identical request")
    changed: list[str] | None = None
    note: str | None = None
    warnings: list[str] = []


class CustomerDeleted(Compact):
    mode: str
    id: str
    deleted: bool
    cancelled_subscriptions: list[str] = []
    note: str
    warnings: list[str] = []


class PortalSessionOut(Compact):
    mode: str
    id: str
    url: str
    customer: str
    return_url: str | None = None
    configuration: str | None = None
    note: str


class PaymentMethodSummary(Compact):
    id: str
    type: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp: str | None = Field(None, description="MM/YYYY")
    customer: str | None = None


class PaymentMethodList(Compact):
    mode: str
    customer: str
    payment_methods: list[PaymentMethodSummary]
    default_payment_method: str | None = None
    has_more: bool = False


class PaymentMethodChange(Compact):
    mode: str
    payment_method: PaymentMethodSummary
    customer: str | None = None
    is_default: bool | None = None
    note: str | None = None


def pm_summary(pm: PaymentMethod) -> PaymentMethodSummary:
    """Brand, last4, expiry and id only — never more of the card."""
    card = pm.card
    exp = None
    if card and card.exp_month and card.exp_year:
        exp = f"{card.exp_month:02d}/{card.exp_year}"
    return PaymentMethodSummary(
        id=pm.id,
        type=pm.type,
        brand=card.brand if card else None,
        last4=card.last4 if card else None,
        exp=exp,
        customer=pm.customer,
    )
