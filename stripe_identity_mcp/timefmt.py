"""The one home of how times are shown: ISO 8601 UTC with a Z, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: int | None) -> str | None:
    """Unix seconds → `2026-12-01T22:30:00Z` (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
