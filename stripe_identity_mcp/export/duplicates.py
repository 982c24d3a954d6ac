"""Duplicate report: customers whose normalised email matches, over a created range.

Normalisation (`normalise_email`): Unicode NFC, surrounding whitespace stripped, lower-cased (the
local part is case-sensitive in theory, but no mainstream provider treats `Jane@` and `jane@` as
different mailboxes, and Stripe's own list filter being case-sensitive is exactly how these
duplicates arise), a trailing dot on the domain dropped and an internationalised domain converted to
its ASCII (punycode) form — both spell the same domain. NOT normalised: Gmail dots and `+tags`, nor
any provider-specific alias rule: on most providers those are different mailboxes (often different
people), so merging them would suggest deleting a real customer.

Memory: unlike the export, the report holds one small tuple per customer with an email for the
scanned range (normalised email → ids, created, subscription count, default payment method) until
the scan ends; about 200 bytes per customer.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stripe_identity_mcp.clients.stripe import StripeClient
from stripe_identity_mcp.export.engine import STRIPE_EPOCH, ExportError, Progress, Scanner, initial_windows
from stripe_identity_mcp.models.stripe import BILLING_STATUSES

ACTIVE = BILLING_STATUSES


def normalise_email(email: str | None) -> str | None:
    if not email:
        return None
    text = unicodedata.normalize("NFC", email).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return text or None
    domain = domain.rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}"


@dataclass
class Member:
    id: str
    email: str
    name: str | None
    created: int
    subscriptions: int  # active/trialing/past_due/unpaid
    subscriptions_more: bool
    default_payment_method: str | None


@dataclass
class DuplicateScan:
    groups: list[tuple[str, list[Member]]]  # biggest first
    groups_total: int
    customers_scanned: int
    created_gte: int
    created_lt: int
    seconds: float
    requests: int


def _member(c: dict[str, Any]) -> Member:
    subs = c.get("subscriptions") or {}
    data = subs.get("data") or []
    pm = (c.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(pm, dict):
        pm = pm.get("id")
    return Member(
        id=c["id"],
        email=c.get("email") or "",
        name=c.get("name"),
        created=c.get("created", 0),
        subscriptions=sum(1 for s in data if s.get("status") in ACTIVE),
        subscriptions_more=bool(subs.get("has_more")),
        default_payment_method=pm,
    )


async def find_duplicates(
    stripe: StripeClient,
    *,
    created_gte: int | None = None,
    created_lt: int | None = None,
    max_groups: int = 50,
    on_progress: Callable[[Progress], Awaitable[None]] | None = None,
) -> DuplicateScan:
    gte = created_gte if created_gte is not None else STRIPE_EPOCH
    lt = created_lt if created_lt is not None else int(time.time()) + 1
    if gte >= lt:
        raise ExportError(f"empty range: created_gte ({gte}) must be before created_lt ({lt})")
    by_email: dict[str, list[Member]] = {}
    scanned = 0

    def sink(records: list[dict[str, Any]]) -> None:
        nonlocal scanned
        scanned += len(records)
        for c in records:
            key = normalise_email(c.get("email"))
            if key is not None:
                by_email.setdefault(key, []).append(_member(c))

    stats = stripe.stats
    base = (stats.requests, stats.retries, stats.rate_limited)
    started = time.monotonic()
    scanner = Scanner(stripe, initial_windows(gte, lt), sink, extra_params={"expand": ["data.subscriptions"]})

    async def on_page() -> None:
        if on_progress is not None:
            await on_progress(
                Progress(
                    count=scanned,
                    requests=stats.requests - base[0],
                    retries=stats.retries - base[1],
                    rate_limited=stats.rate_limited - base[2],
                    seconds=time.monotonic() - started,
                    windows=len(scanner.windows),
                )
            )

    scanner.on_page = on_page
    await scanner.run()
    dups = [(email, sorted(ms, key=lambda m: (m.created, m.id))) for email, ms in by_email.items() if len(ms) > 1]
    dups.sort(key=lambda g: (-len(g[1]), g[0]))
    return DuplicateScan(
        groups=dups[:max_groups],
        groups_total=len(dups),
        customers_scanned=scanned,
        created_gte=gte,
        created_lt=lt,
        seconds=round(time.monotonic() - started, 3),
        requests=stats.requests - base[0],
    )
