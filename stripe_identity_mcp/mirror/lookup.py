"""What the customer tools ask the mirror (`--mirror PATH`): case variants and duplicate groups.

Answers from the mirror are as of its last sync (or webhook); every caller labels them with that
age. A missing or unfinished mirror is an error the tools turn into a warning or a tool error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stripe_identity_mcp.export.duplicates import (
    DuplicateScan,
    Member,
    _member,
    normalise_email,
)
from stripe_identity_mcp.export.engine import STRIPE_EPOCH
from stripe_identity_mcp.mirror import store


def age_label(conn: Any, mode: str | None = None) -> str:
    """`synced 12s ago` (+ `last webhook 3s ago`): how current a mirror answer is.

    `mode`: the server's key mode; a mirror of the other mode holds other customers and is refused.
    """
    held = store.get_meta(conn, "mode")
    if mode is not None and held is not None and held != mode:
        raise store.MirrorError(f"the mirror holds {held}-mode customers and this key is {mode} mode")
    now = time.time()
    synced = store.freshness(conn)
    if synced is None:
        raise store.MirrorError("the mirror has no finished sync yet: run `stripe-identity-mcp sync --db PATH`")
    label = f"synced {now - synced:,.0f}s ago"
    hook = store.get_meta(conn, "webhook_at")
    if hook is not None:
        label += f", last webhook {now - float(hook):,.0f}s ago"
    return label


def case_variants(path: Path, email: str, known: set[str], mode: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Live mirror customers whose email equals `email` ignoring case but not exactly."""
    conn = store.connect(path, create=False)
    try:
        label = age_label(conn, mode)
        found = [c for c in store.by_email_lower(conn, email) if c["id"] not in known and c.get("email") != email]
        return sorted(found, key=lambda c: (-int(c.get("created") or 0), c["id"])), label
    finally:
        conn.close()


def duplicates(
    path: Path, *, created_gte: int | None, created_lt: int | None, max_groups: int, mode: str | None = None
) -> tuple[DuplicateScan, str]:
    """The duplicate report of `find_duplicates`, from the mirror (no request to Stripe)."""
    started = time.monotonic()
    conn = store.connect(path, create=False)
    try:
        label = age_label(conn, mode)
        gte = created_gte if created_gte is not None else STRIPE_EPOCH
        lt = created_lt if created_lt is not None else int(time.time()) + 1
        by_email: dict[str, list[Member]] = {}
        scanned = 0
        for c in store.live_customers(conn):
            if not gte <= int(c.get("created") or 0) < lt:
                continue
            scanned += 1
            key = normalise_email(c.get("email"))
            if key is not None:
                by_email.setdefault(key, []).append(_member(c))
    finally:
        conn.close()
    dups = [(email, sorted(ms, key=lambda m: (m.created, m.id))) for email, ms in by_email.items() if len(ms) > 1]
    dups.sort(key=lambda g: (-len(g[1]), g[0]))
    scan = DuplicateScan(
        groups=dups[:max_groups], groups_total=len(dups), customers_scanned=scanned, created_gte=gte,
        created_lt=lt, seconds=round(time.monotonic() - started, 3), requests=0,
    )
    return scan, label
