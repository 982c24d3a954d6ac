"""Compact outputs of the billing toolset's subscription reads."""

from __future__ import annotations

from pydantic import Field

from stripe_identity_mcp.models.outputs import Compact
from stripe_identity_mcp.models.stripe import Subscription, SubscriptionItem
from stripe_identity_mcp.timefmt import iso


class SubscriptionLine(Compact):
    price: str
    product: str | None = None
    quantity: int | None = None
    amount: str | None = Field(None, description="unit amount, e.g. '15.00 usd / 1 month'")


class SubscriptionSummary(Compact):
    id: str
    status: str | None = None
    items: list[SubscriptionLine] = []
    current_period_start: str | None = None
    current_period_end: str | None = None
    cancel_at_period_end: bool | None = None
    cancel_at: str | None = None
    canceled_at: str | None = None
    trial_start: str | None = None
    trial_end: str | None = None
    created: str | None = None


class SubscriptionList(Compact):
    mode: str
    customer: str
    subscriptions: list[SubscriptionSummary]
    has_more: bool = False
    next_cursor: str | None = Field(None, description="pass as starting_after for the next page")
    warnings: list[str] = []


def _amount(item: SubscriptionItem) -> str | None:
    price = item.price
    if price is None or price.unit_amount is None:
        return None
    money = f"{price.unit_amount / 100:.2f} {price.currency or ''}".strip()  # minor units; 2-decimal currencies
    every = ""
    if price.recurring and price.recurring.interval:
        every = f" / {price.recurring.interval_count or 1} {price.recurring.interval}"
    return money + every


def subscription_summary(sub: Subscription) -> SubscriptionSummary:
    items = sub.items.data if sub.items else []
    start = sub.current_period_start or next((i.current_period_start for i in items if i.current_period_start), None)
    end = sub.current_period_end or next((i.current_period_end for i in items if i.current_period_end), None)
    lines = []
    for item in items:
        price = item.price
        product = price.product if price else None
        if isinstance(product, dict):
            product = product.get("id")
        lines.append(
            SubscriptionLine(price=price.id if price else item.id, product=product, quantity=item.quantity, amount=_amount(item))
        )
    return SubscriptionSummary(
        id=sub.id,
        status=sub.status,
        items=lines,
        current_period_start=iso(start),
        current_period_end=iso(end),
        cancel_at_period_end=sub.cancel_at_period_end,
        cancel_at=iso(sub.cancel_at),
        canceled_at=iso(sub.canceled_at),
        trial_start=iso(sub.trial_start),
        trial_end=iso(sub.trial_end),
        created=iso(sub.created),
    )
