"""`sync`: make the mirror equal Stripe's live customers — a full export once, then events.

First run (or a lost cursor): note the newest `customer.*` event first, then page every customer
with the export engine's Scanner (concurrent windows at the rate ceiling) into the mirror, saving the
windows after every page (a killed first sync resumes where it stopped), then apply the events
since the noted one. Every change made during the export has an event after that cursor, and the
events are applied in Stripe's order, so the mirror ends exact.

Later runs list `customer.*` events newer than the stored cursor (newest first, 100 a page, down
to the cursor) and apply them oldest first in one transaction: a killed run changed nothing and the
next one starts from the same cursor. Requests ≈ the number of event pages.

Stripe keeps events for 30 days. A cursor older than that (or one Stripe no longer returns) means
changes were lost: the run says so and re-exports.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from stripe_identity_mcp.export import checkpoint as ckpt
from stripe_identity_mcp.export.engine import (
    STRIPE_EPOCH,
    Scanner,
    Window,
    initial_windows,
)
from stripe_identity_mcp.mirror import store

RETENTION_S = 30 * 86400
RETENTION_MARGIN_S = 3600  # a cursor this close to the edge may be gone by the time the pages arrive


@dataclass
class SyncProgress:
    count: int
    requests: int
    retries: int
    rate_limited: int
    seconds: float


@dataclass
class SyncResult:
    kind: str  # "full", "resumed", "incremental" or "re-export"
    created: int
    updated: int
    deleted: int
    unchanged: int
    events: int
    requests: int
    seconds: float
    customers: int  # live customers in the mirror now
    current_at: float  # the mirror equals Stripe as of this unix time
    note: str | None = None


ProgressFn = Callable[[SyncProgress], Awaitable[None]]


class _Counter:
    def __init__(self) -> None:
        self.counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}

    def add(self, outcome: str) -> None:
        if outcome in self.counts:
            self.counts[outcome] += 1
        elif outcome in ("stale", "duplicate", "ambiguous"):
            self.counts["unchanged"] += 1


async def _newest_event(stripe: Any) -> dict[str, Any] | None:
    page = await stripe.call("GET", "/v1/events", {"type": "customer.*", "limit": 1})
    data = page.get("data") or []
    return {"id": data[0]["id"], "created": int(data[0]["created"])} if data else None


async def _full_export(
    stripe: Any, conn: sqlite3.Connection, counter: _Counter, on_progress: ProgressFn | None, started: float
) -> bool:
    """Page every customer into the mirror; True when an interrupted export was resumed."""
    state = store.get_meta(conn, "export")
    resumed = state is not None
    if state is None:
        mark = await _newest_event(stripe)  # before the cut-off: every later change is an event after it
        # The current second is included: a customer created in it before `mark` has no event after
        # `mark`, so the export itself must hold it.
        lt = int(time.time()) + 1
        state = {"lt": lt, "version": lt - 2, "cursor": mark, "since": lt - 2,
                 "windows": [asdict(w.state()) for w in initial_windows(STRIPE_EPOCH, lt)]}
        with store.transaction(conn):
            conn.execute("DELETE FROM customers")  # a (re-)export replaces what was held
            conn.execute("DELETE FROM events")
            for key in ("cursor", "since", "current_at"):
                store.set_meta(conn, key, None)
            store.set_meta(conn, "export", state)
    windows = [Window.from_state(ckpt.WindowState(**w)) for w in state["windows"]]
    version = int(state["version"])
    base = stripe.stats.requests
    seen = [0]

    def sink(records: list[dict[str, Any]]) -> None:
        with store.transaction(conn):
            for obj in records:
                counter.add(store.put_state(conn, obj, version))
        seen[0] += len(records)

    scanner = Scanner(stripe, windows, sink)

    async def on_page() -> None:
        with store.transaction(conn):  # after the page's rows: a resumed run re-reads at most this page
            store.set_meta(conn, "export", {**state, "windows": [asdict(w.state()) for w in scanner.windows]})
        if on_progress is not None:
            s = stripe.stats
            await on_progress(SyncProgress(seen[0], s.requests - base, s.retries, s.rate_limited, time.monotonic() - started))

    scanner.on_page = on_page
    await scanner.run()
    with store.transaction(conn):
        store.set_meta(conn, "cursor", state["cursor"])
        store.set_meta(conn, "since", state["since"])
        store.set_meta(conn, "export", None)
    return resumed


class CursorLost(Exception):
    pass


async def _apply_events(stripe: Any, conn: sqlite3.Connection, counter: _Counter) -> int:
    """Apply every customer.* event after the stored cursor, oldest first, in one transaction."""
    cursor = store.get_meta(conn, "cursor")
    since = store.get_meta(conn, "since")
    floor = int(cursor["created"]) if cursor else int(since if since is not None else time.time())
    listed_at = time.time()
    if floor < listed_at - RETENTION_S + RETENTION_MARGIN_S:
        raise CursorLost(f"the mirror's last event is from {_ago(listed_at - floor)} ago; Stripe keeps events 30 days")
    events: list[dict[str, Any]] = []
    found = cursor is None
    after = None
    while True:
        params: dict[str, Any] = {"type": "customer.*", "limit": 100, "created": {"gte": floor}}
        if after:
            params["starting_after"] = after
        page = await stripe.call("GET", "/v1/events", params)
        data = page.get("data") or []
        for event in data:
            if cursor and event["id"] == cursor["id"]:
                found = True
                break
            events.append(event)
        if found and cursor or not page.get("has_more") or not data:
            break
        after = data[-1]["id"]
    if not found:
        raise CursorLost("Stripe no longer returns the mirror's last event (Stripe keeps events for 30 days)")
    events.reverse()  # oldest first
    with store.transaction(conn):
        before = {e["data"]["object"]["id"]: _live_data(conn, e["data"]["object"]["id"]) for e in events}
        for event in events:
            store.apply_event(conn, event, ordered=True)
        for cid, old in before.items():
            counter.add(_outcome(old, _live_data(conn, cid)))
        if events:
            newest = events[-1]
            store.set_meta(conn, "cursor", {"id": newest["id"], "created": int(newest["created"])})
        elif cursor is None:
            store.set_meta(conn, "since", int(listed_at) - 1)
        store.set_meta(conn, "current_at", listed_at)
        store.prune_events(conn)
    return len(events)


def _live_data(conn: sqlite3.Connection, cid: str) -> str | None:
    row = conn.execute("SELECT data FROM customers WHERE id = ? AND deleted = 0", (cid,)).fetchone()
    return None if row is None else str(row[0])


def _outcome(old: str | None, new: str | None) -> str:
    if old is None:
        return "unchanged" if new is None else "created"
    if new is None:
        return "deleted"
    return "unchanged" if old == new else "updated"


def _ago(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days"


async def run_sync(stripe: Any, conn: sqlite3.Connection, *, mode: str, on_progress: ProgressFn | None = None) -> SyncResult:
    held_mode = store.get_meta(conn, "mode")
    if held_mode is not None and held_mode != mode:
        raise store.MirrorError(f"this mirror holds {held_mode}-mode customers; the key is {mode} mode")
    store.set_meta(conn, "mode", mode)
    started = time.monotonic()
    base = stripe.stats.requests
    counter = _Counter()
    note = None
    first = store.get_meta(conn, "cursor") is None and store.get_meta(conn, "since") is None
    kind = "full" if first else "incremental"
    if first:
        kind = "resumed" if await _full_export(stripe, conn, counter, on_progress, started) else "full"
    try:
        events = await _apply_events(stripe, conn, counter)
    except CursorLost as exc:
        note = f"{exc}: changes since then cannot be replayed, so the mirror was re-exported"
        kind = "re-export"
        counter = _Counter()
        with store.transaction(conn):
            for key in ("cursor", "since"):
                store.set_meta(conn, key, None)
        await _full_export(stripe, conn, counter, on_progress, started)
        events = await _apply_events(stripe, conn, counter)
    live = conn.execute("SELECT COUNT(*) FROM customers WHERE deleted = 0").fetchone()[0]
    return SyncResult(
        kind=kind,
        events=events,
        requests=stripe.stats.requests - base,
        seconds=round(time.monotonic() - started, 3),
        customers=int(live),
        current_at=float(store.freshness(conn) or 0.0),
        note=note,
        **counter.counts,
    )
