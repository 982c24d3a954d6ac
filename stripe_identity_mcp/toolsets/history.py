"""customer_history (customers toolset, read): one customer's changes from Stripe's Events API.

Stripe's `GET /v1/events` cannot filter by object, so the tool pages the account's customer and
payment-method events newest first (100 a page, at most `MAX_PAGES` pages a call) and keeps this
customer's. `next_cursor` continues the scan where it stopped. Stripe keeps events for 30 days;
older changes cannot be shown and the answer says so.

What is shown is compact and safe: each changed field as old → new (metadata key by key, nested
objects by leaf), values as customer-supplied data (cleaned, truncated, card numbers masked);
payment-method events show the card's brand and last4 only; list-valued fields that can hold card
objects (legacy `sources`) are never shown, only named.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from stripe_identity_mcp.cards import find_card_numbers, mask_in
from stripe_identity_mcp.models.outputs import Compact
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import READ, deps, iso, tool_errors
from stripe_identity_mcp.untrusted import clean

EVENT_TYPES = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
    "payment_method.detached",
]
MAX_PAGES = 10  # 1 000 events scanned per call: bounded time and requests, the cursor goes on
PER_CALL = 20  # entries per answer
MAX_VALUE = 120
HIDDEN = {"sources", "subscriptions", "tax_ids", "cash_balance", "invoice_credit_balance"}
RETENTION_NOTE = "Stripe keeps events for 30 days: older changes are not available."

CustomerIdArg = Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]+$", max_length=255)]
EventCursor = Annotated[str | None, Field(pattern=r"^evt_[A-Za-z0-9]+$")]


class Change(Compact):
    field: str
    old: str | None = None
    new: str | None = None


class HistoryEntry(Compact):
    time: str
    type: str
    source: str = Field(description="api (with request id) or dashboard/automatic")
    request_id: str | None = None
    idempotency_key: str | None = None
    changes: list[Change] = []
    card: str | None = None
    event_id: str


class CustomerHistory(Compact):
    customer: str
    mode: str
    entries: list[HistoryEntry]
    scanned: int = Field(description="events examined by this call")
    next_cursor: str | None = Field(None, description="pass as cursor to look further back")
    note: str = RETENTION_NOTE


def shown(value: Any) -> str | None:
    """A field value as data for the model: one clean line, truncated, card numbers masked."""
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        value = value["id"]  # an expanded object: its id is what changed
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    if find_card_numbers(text):
        text = mask_in(text)
    return clean(text, MAX_VALUE)


def _leaves(prefix: str, old: Any, new: Any, out: list[Change]) -> None:
    if prefix.split(".")[0] in HIDDEN:
        out.append(Change(field=prefix.split(".")[0], old="(not shown)", new="(not shown)"))
        return
    if isinstance(old, dict) and (isinstance(new, dict) or new is None) and "id" not in old:
        new = new or {}
        for key in sorted(old):
            _leaves(f"{prefix}.{key}", old.get(key), new.get(key), out)
        return
    if old != new:
        out.append(Change(field=prefix, old=shown(old), new=shown(new)))


def changes_of(event: dict[str, Any]) -> list[Change]:
    """Each changed field old → new; for a creation, the fields it was created with."""
    obj = event.get("data", {}).get("object") or {}
    out: list[Change] = []
    if event.get("type") == "customer.created":
        for key in ("email", "name", "phone", "description"):
            if obj.get(key):
                out.append(Change(field=key, new=shown(obj[key])))
        for key, value in sorted((obj.get("metadata") or {}).items()):
            out.append(Change(field=f"metadata.{clean(key, 40)}", new=shown(value)))
        return out
    if event.get("type") != "customer.updated":
        return out
    previous = event.get("data", {}).get("previous_attributes") or {}
    for key in sorted(previous):
        old = previous[key]
        if key == "metadata" and isinstance(old, dict):
            new_md = obj.get("metadata") or {}
            for mkey in sorted(old):
                # metadata keys are customer-supplied too: shown cleaned like the values
                out.append(Change(field=f"metadata.{clean(mkey, 40)}", old=shown(old[mkey]), new=shown(new_md.get(mkey))))
        else:
            _leaves(key, old, obj.get(key), out)
    return out


def entry_of(event: dict[str, Any]) -> HistoryEntry:
    request = event.get("request") or {}
    obj = event.get("data", {}).get("object") or {}
    card = None
    if event.get("type", "").startswith("payment_method."):
        c = obj.get("card") or {}
        card = f"{obj.get('id')} {clean(c.get('brand'), 20)} ••{clean(c.get('last4'), 4)}".strip()
    return HistoryEntry(
        time=iso(event.get("created")) or "",
        type=str(event.get("type")),
        source="api" if request.get("id") else "dashboard/automatic",
        request_id=request.get("id"),
        idempotency_key=request.get("idempotency_key"),
        changes=changes_of(event),
        card=card,
        event_id=str(event.get("id")),
    )


def concerns(event: dict[str, Any], customer_id: str) -> bool:
    obj = event.get("data", {}).get("object") or {}
    if event.get("type", "").startswith("customer."):
        return obj.get("id") == customer_id
    previous = event.get("data", {}).get("previous_attributes") or {}
    return customer_id in (obj.get("customer"), previous.get("customer"))


async def scan_history(stripe: Any, customer_id: str, starting_after: str | None) -> tuple[list[HistoryEntry], int, str | None]:
    entries: list[HistoryEntry] = []
    scanned = 0
    cursor = starting_after
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"limit": 100, "types": EVENT_TYPES}
        if cursor:
            params["starting_after"] = cursor
        page = await stripe.call("GET", "/v1/events", params)
        data = page.get("data") or []
        for event in data:
            scanned += 1
            cursor = event.get("id")
            if concerns(event, customer_id):
                entries.append(entry_of(event))
                if len(entries) == PER_CALL:
                    return entries, scanned, cursor  # more may follow; continue after this one
        if not page.get("has_more") or not data:
            return entries, scanned, None
    return entries, scanned, cursor


@tool(READ)
async def customer_history(customer_id: CustomerIdArg, ctx: Context, cursor: EventCursor = None) -> CustomerHistory:
    """Changes to one customer (30 days): old/new values, API or Dashboard."""
    app = deps(ctx)
    with tool_errors(app):
        if cursor is None:
            await app.stripe.retrieve_customer(customer_id)  # a wrong id is an error, not "no history"
        entries, scanned, next_cursor = await scan_history(app.stripe, customer_id, cursor)
    return CustomerHistory(
        customer=customer_id, mode=app.mode_label, entries=entries, scanned=scanned, next_cursor=next_cursor
    )


TOOLSET = Toolset(
    name="customers",
    description="One customer's changes, from Stripe's Events API.",
    read=(customer_history,),
)
