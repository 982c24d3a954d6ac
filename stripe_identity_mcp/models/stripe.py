"""Typed views of the Stripe objects we read. Unknown fields are kept (Stripe adds fields often)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class StripeObject(BaseModel):
    model_config = ConfigDict(extra="allow")


class Address(StripeObject):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class InvoiceSettings(StripeObject):
    default_payment_method: str | dict[str, Any] | None = None


class Customer(StripeObject):
    id: str
    object: Literal["customer"]  # required: a body without it is not this object
    created: int | None = None
    email: str | None = None
    name: str | None = None
    phone: str | None = None
    description: str | None = None
    address: Address | None = None
    metadata: dict[str, str] = {}
    livemode: bool = False
    deleted: bool = False
    delinquent: bool | None = None
    currency: str | None = None
    balance: int | None = None
    invoice_settings: InvoiceSettings | None = None
    subscriptions: dict[str, Any] | None = None  # only when expanded


class ListObject(StripeObject, Generic[T]):
    object: Literal["list"]  # required: a body without it is not this object
    data: list[T]
    has_more: bool = False
    url: str | None = None


class SearchResult(StripeObject, Generic[T]):
    object: Literal["search_result"]  # required: a body without it is not this object
    data: list[T]
    has_more: bool = False
    next_page: str | None = None
    total_count: int | None = None


class Card(StripeObject):
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    funding: str | None = None
    country: str | None = None


class PaymentMethod(StripeObject):
    id: str
    object: Literal["payment_method"]  # required: a body without it is not this object
    type: str | None = None
    customer: str | None = None
    card: Card | None = None
    created: int | None = None
    livemode: bool = False


# The one home of what a subscription status means (Stripe: docs.stripe.com/billing/subscriptions/overview).
# Billing: the customer is (or will be, after the trial) charged; counted as "active" in summaries.
BILLING_STATUSES = ("active", "trialing", "past_due", "unpaid")
# Not ended: deleting the customer cancels these too (everything but canceled / incomplete_expired).
NOT_ENDED_STATUSES = (*BILLING_STATUSES, "incomplete", "paused")


class Recurring(StripeObject):
    interval: str | None = None
    interval_count: int | None = None


class Price(StripeObject):
    id: str
    product: str | dict[str, Any] | None = None
    unit_amount: int | None = None
    currency: str | None = None
    recurring: Recurring | None = None
    nickname: str | None = None


class SubscriptionItem(StripeObject):
    id: str
    price: Price | None = None
    quantity: int | None = None
    # Newer API versions (2025-03-31+) keep the billing period on the item, not the subscription.
    current_period_start: int | None = None
    current_period_end: int | None = None


class SubscriptionItems(StripeObject):
    data: list[SubscriptionItem] = []
    has_more: bool = False


class Subscription(StripeObject):
    id: str
    object: Literal["subscription"]  # required: a body without it is not this object
    customer: str | None = None
    status: str | None = None
    created: int | None = None
    items: SubscriptionItems | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None
    cancel_at_period_end: bool | None = None
    cancel_at: int | None = None
    canceled_at: int | None = None
    trial_start: int | None = None
    trial_end: int | None = None


class PortalSession(StripeObject):
    id: str
    object: Literal["billing_portal.session"]  # required: a body without it is not this object
    url: str
    customer: str
    return_url: str | None = None
    configuration: str | None = None
    livemode: bool = False
    created: int | None = None


class Requirements(StripeObject):
    currently_due: list[str] | None = None
    eventually_due: list[str] | None = None
    past_due: list[str] | None = None
    disabled_reason: str | None = None
    current_deadline: int | None = None


class BusinessProfile(StripeObject):
    name: str | None = None
    url: str | None = None


class Account(StripeObject):
    id: str
    object: Literal["account"]  # required: a body without it is not this object
    type: str | None = None
    email: str | None = None
    country: str | None = None
    business_profile: BusinessProfile | None = None
    charges_enabled: bool | None = None
    payouts_enabled: bool | None = None
    details_submitted: bool | None = None
    requirements: Requirements | None = None
    created: int | None = None
    metadata: dict[str, str] = {}


class StripeError(StripeObject):
    type: str | None = None
    code: str | None = None
    param: str | None = None
    message: str | None = None
    doc_url: str | None = None
