"""Shared by the mirror tests: the sandbox's live set, the mirror's, and a sync run in-process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import make_settings


def sandbox_live(sb: Any, mode: str = "test") -> dict[str, dict[str, Any]]:
    """What Stripe would list: every non-deleted customer, rendered (at the sandbox, not through us)."""
    st = sb.sandbox.stores[mode]
    return {cid: st.render_customer(st.customers[cid]) for cid in st.ids}


def mirror_live(db: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(str(db))
    try:
        return {cid: json.loads(d) for cid, d in conn.execute("SELECT id, data FROM customers WHERE deleted = 0")}
    finally:
        conn.close()


def sync(sb: Any, db: Path, on_progress: Any = None, **overrides: Any) -> Any:
    from stripe_identity_mcp.mirror.cli import sync_with

    return anyio.run(sync_with, make_settings(sb, **overrides), db, on_progress)


async def async_sync(sb: Any, db: Path, **overrides: Any) -> Any:
    from stripe_identity_mcp.mirror.cli import sync_with

    return await sync_with(make_settings(sb, **overrides), db)
