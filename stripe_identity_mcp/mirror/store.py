"""The local mirror: a SQLite file (standard library) holding one mode's customers, kept current.

Tables
------
``customers``: one row per customer id — the Stripe object as JSON, ``email_lower`` for case-blind
lookups, ``deleted`` (a tombstone: Stripe never reuses ids, so a deleted customer never comes back)
and ``version`` (the unix second of the state held: the event's ``created`` or the second a page
was read). ``events``: ids of applied events (a replayed event changes nothing). ``meta``: mode,
cursor, freshness, and an unfinished first export's windows (so a killed sync resumes).

Ordering rule: a state replaces the held one when its version is not older (``>=``); a
tombstone is final. Within one Stripe second, order is not knowable from timestamps: ``apply_event``
reports such a webhook as ``ambiguous`` and the caller re-reads the customer from Stripe.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    email_lower TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_email ON customers (email_lower) WHERE deleted = 0;
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Outcome = Literal["created", "updated", "deleted", "unchanged", "duplicate", "stale", "ambiguous", "ignored"]
APPLIED_EVENTS_KEPT_S = 31 * 86400  # Stripe resends for up to 3 days and keeps events 30: ids older are noise


class MirrorError(Exception):
    """A mirror that cannot be used as asked; the message says what to do."""


def connect(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    path = Path(path)
    if not create and not path.exists():
        raise MirrorError(f"no mirror at {path}: create it with `stripe-identity-mcp sync --db {path}`")
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")  # readers (the server) never block the writer (sync, webhooks)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def _row(conn: sqlite3.Connection, cid: str) -> tuple[int, int, str] | None:
    return conn.execute("SELECT deleted, version, data FROM customers WHERE id = ?", (cid,)).fetchone()  # type: ignore[no-any-return]


def put_state(conn: sqlite3.Connection, obj: dict[str, Any], version: int, *, force: bool = False) -> Outcome:
    """Hold `obj` (a live customer's state as of `version`) unless a newer state or a tombstone is held.

    `force`: `obj` was just read from Stripe, so it is current whatever the held version says (the
    held version is kept when higher, so older webhooks arriving later stay stale).
    """
    cid = obj["id"]
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    email = obj.get("email")
    row = _row(conn, cid)
    if row is not None:
        deleted, held_version, held = row
        if deleted or (version < held_version and not force):
            return "stale"
        version = max(version, held_version)
        conn.execute(
            "UPDATE customers SET data = ?, email_lower = ?, version = ? WHERE id = ?",
            (data, email.lower() if email else None, version, cid),
        )
        return "unchanged" if held == data else "updated"
    conn.execute(
        "INSERT INTO customers (id, created, email_lower, deleted, version, data) VALUES (?, ?, ?, 0, ?, ?)",
        (cid, int(obj.get("created") or 0), email.lower() if email else None, version, data),
    )
    return "created"


def put_tombstone(conn: sqlite3.Connection, cid: str, created: int, version: int) -> Outcome:
    row = _row(conn, cid)
    if row is None:
        conn.execute(
            "INSERT INTO customers (id, created, email_lower, deleted, version, data) VALUES (?, ?, NULL, 1, ?, '{}')",
            (cid, created, version),
        )
        return "unchanged"  # never held live: the live set did not change
    if row[0]:
        return "unchanged"
    conn.execute("UPDATE customers SET deleted = 1, email_lower = NULL, version = ? WHERE id = ?", (version, cid))
    return "deleted"


def apply_event(conn: sqlite3.Connection, event: dict[str, Any], *, ordered: bool) -> Outcome:
    """Apply one `customer.*` event (call inside a transaction).

    `ordered`: the event comes from the Events API in Stripe's order (sync), so a state of the same
    second as the held one is newer. Webhooks are not ordered: a same-second state of another event
    is `ambiguous` (held state kept; the caller re-reads the customer).
    """
    etype = str(event.get("type", ""))
    if etype not in ("customer.created", "customer.updated", "customer.deleted"):
        return "ignored"
    eid, created = str(event["id"]), int(event["created"])
    seen = conn.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone() is not None
    if seen and not ordered:
        return "duplicate"
    # In Stripe's order an event seen before (as a webhook) is applied again: a same-second
    # predecessor applied just before it must not be left as the held state.
    obj = event["data"]["object"]
    conn.execute("INSERT OR IGNORE INTO events (id, created) VALUES (?, ?)", (eid, created))
    if etype == "customer.deleted":
        return put_tombstone(conn, obj["id"], int(obj.get("created") or 0), created)
    row = _row(conn, obj["id"])
    if not ordered and row is not None and not row[0] and row[1] == created and json.loads(row[2]) != obj:
        return "ambiguous"
    return put_state(conn, obj, created)


def prune_events(conn: sqlite3.Connection, now: int | None = None) -> None:
    cutoff = (int(time.time()) if now is None else now) - APPLIED_EVENTS_KEPT_S
    conn.execute("DELETE FROM events WHERE created < ?", (cutoff,))


def live_customers(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every live customer, newest first (Stripe's list order)."""
    for (data,) in conn.execute("SELECT data FROM customers WHERE deleted = 0 ORDER BY created DESC, id DESC"):
        yield json.loads(data)


def by_email_lower(conn: sqlite3.Connection, email: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT data FROM customers WHERE deleted = 0 AND email_lower = ?", (email.lower(),))
    return [json.loads(d) for (d,) in rows]


def freshness(conn: sqlite3.Connection) -> float | None:
    """Unix time the mirror was last known current (a finished sync or an applied webhook)."""
    value = get_meta(conn, "current_at")
    return None if value is None else float(value)
