"""`export --from-db PATH`: the mirror's live customers to JSONL/CSV, without calling Stripe."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from stripe_identity_mcp.export.writers import Encoder, Format
from stripe_identity_mcp.mirror import store

BATCH = 500


def export_from_db(db: Path, out: Path, fmt: Format, *, overwrite: bool = False) -> dict[str, Any]:
    """Write every live customer of the mirror (newest first) to `out`; the summary says how fresh it is."""
    conn = store.connect(db, create=False)
    try:
        current_at = store.freshness(conn)
        if current_at is None:
            raise store.MirrorError(f"{db} holds no finished sync yet: run `stripe-identity-mcp sync --db {db}` first")
        if out.exists() and not overwrite:
            raise store.MirrorError(f"{out} already exists: replace it with --overwrite")
        encoder, digest, count = Encoder(fmt), hashlib.sha256(), 0
        tmp = out.with_name(out.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            chunk = encoder.header()
            f.write(chunk)
            digest.update(chunk)
            batch: list[dict[str, Any]] = []
            for customer in store.live_customers(conn):
                batch.append(customer)
                if len(batch) == BATCH:
                    chunk = encoder.encode(batch)
                    f.write(chunk)
                    digest.update(chunk)
                    count += len(batch)
                    batch = []
            chunk = encoder.encode(batch)
            f.write(chunk)
            digest.update(chunk)
            count += len(batch)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)  # readers never see a half-written export
        return {"path": str(out), "format": fmt, "count": count, "sha256": digest.hexdigest(),
                "source": "mirror", "mirror_current_at": current_at, "requests": 0}
    finally:
        conn.close()
