"""The export engine against the sandbox over loopback: cancellation + resume, concurrent creates/deletes.

These drive `run_export` with the real StripeClient (paced, retrying) because the test needs to act
from inside the export (cancel after K records, create or delete customers between pages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from stripe_identity_mcp.deps import open_deps
from stripe_identity_mcp.export import checkpoint as ckpt
from stripe_identity_mcp.export.engine import ExportError, Progress, run_export
from stripe_identity_mcp.export.paths import checkpoint_path
from tests import loopback
from tests.conftest import make_settings
from tests.export.helpers import KEY, acreate_customer, csv_rows, jsonl_ids, live_ids

pytestmark = pytest.mark.anyio


async def cancelled_run(settings: Any, out: Path, fmt: str, after: int, **kw: Any) -> int:
    """Run an export and cancel it from its progress callback once `after` records are written."""
    seen = 0
    async with open_deps(settings) as app, anyio.create_task_group() as tg:

        async def on_progress(p: Progress) -> None:
            nonlocal seen
            seen = p.count
            if p.count >= after:
                tg.cancel_scope.cancel()

        async def job() -> None:
            await run_export(app.stripe, out, fmt, on_progress=on_progress, **kw)  # type: ignore[arg-type]
            raise AssertionError("export finished although it was cancelled")

        tg.start_soon(job)
    return seen


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_resume_after_cancellation_gives_identical_set(sandbox_factory: Any, tmp_path: Path, fmt: str) -> None:
    with sandbox_factory(customers=2500) as sb:
        settings = make_settings(sb)
        expected = live_ids(sb)
        ref, out = tmp_path / f"ref.{fmt}", tmp_path / f"part.{fmt}"
        async with open_deps(settings) as app:
            full = await run_export(app.stripe, ref, fmt)  # type: ignore[arg-type]

        for after in (300, 1200):  # cancel twice, resume twice
            resume = after != 300
            seen = await cancelled_run(settings, out, fmt, after, resume=resume)
            assert after <= seen < len(expected)
            state = ckpt.load(checkpoint_path(out))
            assert state.count == seen and state.windows
            assert out.stat().st_size == state.offset
        # simulate a crash mid-write: junk after the checkpointed offset is dropped on resume
        with open(out, "ab") as f:
            f.write(b'{"id":"cus_half_written"')
        async with open_deps(settings) as app:
            done = await run_export(app.stripe, out, fmt, resume=True)  # type: ignore[arg-type]

    def ids(path: Path) -> list[str]:
        return jsonl_ids(path) if fmt == "jsonl" else [r["id"] for r in csv_rows(path)]

    got, want = ids(out), ids(ref)
    assert len(got) == len(set(got)) == done.count == full.count
    assert set(got) == set(want) == expected
    assert done.resumed and done.created_lt == full.created_lt or done.created_lt >= full.created_lt
    assert not checkpoint_path(out).exists()
    if fmt == "csv":
        assert out.read_text().count("id,email,name") == 1  # one header, even after two resumes


async def test_created_during_export_excluded_deterministically(sandbox_factory: Any, tmp_path: Path) -> None:
    with sandbox_factory(customers=1500) as sb:
        before = live_ids(sb)
        settings = make_settings(sb)
        made: list[dict[str, Any]] = []
        async with loopback.AsyncClient(timeout=10) as http, open_deps(settings) as app:

            async def on_progress(p: Progress) -> None:
                if len(made) < 5:  # between pages, while other windows are still being paged
                    made.append(await acreate_customer(http, sb, email=f"during{len(made)}@x.io"))

            result = await run_export(app.stripe, tmp_path / "d.jsonl", "jsonl", on_progress=on_progress)
        after = live_ids(sb)
    assert len(made) >= 5 and {c["id"] for c in made} <= after
    assert all(c["created"] >= result.created_lt for c in made)
    ids = jsonl_ids(tmp_path / "d.jsonl")
    assert len(ids) == len(set(ids)) and set(ids) == before


async def test_deleted_cursor_customer_does_not_lose_records(sandbox_factory: Any, tmp_path: Path) -> None:
    """Deleting the customer a window's cursor points at: the window continues from the record before."""
    out = tmp_path / "del.jsonl"
    deleted: list[str] = []
    with sandbox_factory(customers=1500) as sb:
        before = live_ids(sb)
        settings = make_settings(sb)
        async with loopback.AsyncClient(timeout=10) as http, open_deps(settings) as app:

            async def on_progress(p: Progress) -> None:
                if deleted:
                    return
                last = json.loads(out.read_bytes().splitlines()[-1]) if out.stat().st_size else None
                if last:  # the last written record is some window's cursor
                    r = await http.delete(f"{sb.base_url}/v1/customers/{last['id']}", headers={"Authorization": f"Bearer {KEY}"})
                    r.raise_for_status()
                    deleted.append(last["id"])

            result = await run_export(app.stripe, out, "jsonl", on_progress=on_progress, concurrency=1)
    ids = jsonl_ids(out)
    assert deleted and deleted[0] in ids  # read before its deletion: documented as included
    assert len(ids) == len(set(ids)) and set(ids) == before
    assert result.count == len(before)


async def test_resume_refuses_mismatched_parameters(sandbox_factory: Any, tmp_path: Path) -> None:
    with sandbox_factory(customers=600) as sb:
        settings = make_settings(sb)
        out = tmp_path / "m.jsonl"
        await cancelled_run(settings, out, "jsonl", 100)
        async with open_deps(settings) as app:
            with pytest.raises(ExportError, match="format"):
                await run_export(app.stripe, out, "csv", resume=True)
            with pytest.raises(ExportError, match="created_lt"):
                await run_export(app.stripe, out, "jsonl", resume=True, created_lt=1)
            with pytest.raises(ExportError, match="empty range"):
                await run_export(app.stripe, tmp_path / "e.jsonl", "jsonl", created_gte=10, created_lt=10)
            done = await run_export(app.stripe, out, "jsonl", resume=True)
        assert set(jsonl_ids(out)) == live_ids(sb) and done.count == len(live_ids(sb))


async def test_a_slow_disk_does_not_hold_the_scan(
    sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's fsync that takes long (a busy disk: seen at 0.2-0.8 s) runs beside the scan:
    the first one is held until three more pages have arrived. Were it on the event loop, no page
    could arrive meanwhile and it would give up after 10 s."""
    import os
    import threading

    from stripe_identity_mcp.export import engine

    monkeypatch.setattr(engine, "CHECKPOINT_EVERY_S", 0.0)
    real_fsync = os.fsync
    pages = 0
    held_at: list[int] = []
    more = threading.Event()
    released: list[bool] = []

    def slow_fsync(fd: int) -> None:
        if not held_at and pages:  # not the checkpoint made before the scan starts
            held_at.append(pages)
            released.append(more.wait(timeout=10))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    async def on_progress(p: Progress) -> None:
        nonlocal pages
        pages += 1
        if held_at and pages >= held_at[0] + 3:
            more.set()

    with sandbox_factory(customers=1500) as sb:
        expected = live_ids(sb)
        out = tmp_path / "slow.jsonl"
        async with open_deps(make_settings(sb)) as app:
            result = await run_export(app.stripe, out, "jsonl", on_progress=on_progress)
    assert released == [True], "the scan stood still while a checkpoint was made durable"
    ids = jsonl_ids(out)
    assert len(ids) == len(set(ids)) == result.count and set(ids) == expected
    assert not checkpoint_path(out).exists()
