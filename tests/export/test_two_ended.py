"""Windows paged from both ends (`ending_before` from an older customer): the cursors meet exactly.

Bursty data (`created_profile="bursty"`: bulk imports of hundreds of customers in one `created`
second, one-hour bursts, long empty stretches) is where both ends matter: an import can only be paged
by cursors, so its two ends page towards each other and must stop where they meet — no customer
twice, none skipped — also when list calls fail mid-chain, when the export is interrupted with both
ends inside one import, and when the customers the oldest end would go on from were deleted meanwhile.
Every check is on the file and at the sandbox (its live ids over HTTP-created state).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from stripe_identity_mcp.deps import open_deps
from stripe_identity_mcp.export import checkpoint as ckpt
from stripe_identity_mcp.export import engine
from stripe_identity_mcp.export.engine import Progress, run_export
from stripe_identity_mcp.export.paths import checkpoint_path
from tests import loopback
from tests.conftest import make_settings
from tests.export.helpers import KEY, add_faults, jsonl_ids, live_ids

pytestmark = pytest.mark.anyio

N = 4500  # bursty: ~750 customers in each of three single seconds


def both_ends_in_one_second(state: ckpt.Checkpoint) -> list[ckpt.WindowState]:
    """Windows of a checkpoint whose two ends both stand inside one `created` second (an import)."""
    return [
        w for w in state.windows
        if w.low_created is not None and w.low_created == w.cursor_created and w.at_low and w.at_top
    ]  # fmt: skip


def assert_exact(out: Path, expected: set[str], count: int) -> None:
    ids = jsonl_ids(out)
    assert len(ids) == len(set(ids)), "a customer was written twice"
    assert set(ids) == expected
    assert count == len(expected)


async def export_watching_checkpoint(settings: Any, out: Path, **kw: Any) -> tuple[Any, list[ckpt.Checkpoint]]:
    """A full export; every checkpoint it writes meanwhile is read back (the file a resume would use)."""
    seen: list[ckpt.Checkpoint] = []

    async def on_progress(p: Progress) -> None:
        path = checkpoint_path(out)
        if path.exists():
            try:
                seen.append(ckpt.load(path))
            except ValueError:
                pass  # replaced while read: the next page reads it again

    async with open_deps(settings) as app:
        result = await run_export(app.stripe, out, "jsonl", on_progress=on_progress, **kw)
    return result, seen


async def test_bursty_export_meets_in_the_middle_exactly_despite_faults(sandbox_factory: Any, tmp_path: Path) -> None:
    """Imports paged from both ends while list calls fail (500s, resets before the answer) mid-chain."""
    with sandbox_factory(customers=N, created_profile="bursty", latency_ms=15) as sb:
        expected = live_ids(sb)
        add_faults(
            sb,
            {"kind": "500", "method": "GET", "path": "/v1/customers", "count": 6},
            {"kind": "reset", "method": "GET", "path": "/v1/customers", "count": 4},
        )
        out = tmp_path / "b.jsonl"
        settings = make_settings(sb, max_retries=8, endpoint_rate=40.0, test_rate=40.0)  # ~1 s: checkpoints
        result, seen = await export_watching_checkpoint(settings, out)
    assert_exact(out, expected, result.count)
    assert result.retries >= 10  # the faults were met (and retried), not skipped
    # The oldest ends were used: some checkpoint written meanwhile shows one that had written records.
    assert any(w.low_created is not None and w.at_low for s in seen for w in s.windows), "no window had two ends"


async def cancel_inside_an_import(settings: Any, out: Path) -> ckpt.Checkpoint:
    """Interrupt an export of `out` at the first page after which the checkpoint on disk shows both
    ends of a window inside one import second (bounded: a handful of tries). Driven by the checkpoint,
    not by a record count: where the ends stand at a given count depends on the answers' timing.
    The caller makes the engine save a checkpoint after every page (CHECKPOINT_EVERY_S = 0)."""
    for _ in range(5):
        async with open_deps(settings) as app, anyio.create_task_group() as tg:

            async def on_progress(p: Progress) -> None:
                try:
                    seen = ckpt.load(checkpoint_path(out))
                except (OSError, ValueError):
                    return  # not written yet, or replaced while read: the next page reads it again
                if both_ends_in_one_second(seen):
                    tg.cancel_scope.cancel()

            async def job() -> None:
                await run_export(app.stripe, out, "jsonl", overwrite=True, on_progress=on_progress)

            tg.start_soon(job)
        if not checkpoint_path(out).exists():
            continue  # it finished before the ends met inside an import: no checkpoint is left
        state = ckpt.load(checkpoint_path(out))
        if both_ends_in_one_second(state):
            return state
    raise AssertionError("no interruption left both ends inside one import")


@pytest.mark.parametrize("delete_low_cursors", [False, True])
async def test_resume_inside_a_two_ended_import_is_exact(
    sandbox_factory: Any, tmp_path: Path, delete_low_cursors: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted with both ends inside one import second, resumed: every customer once.

    With `delete_low_cursors`, the customers the oldest end would continue from (its cursor and its
    fallbacks) are deleted while the export waits: that end cannot go on, so the newest-first cursor
    pages the rest and stops exactly where the oldest end stopped (documented: a deleted customer is
    in the file iff its page was read before the deletion — these were).
    """
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY_S", 0.0)  # the file on disk is the state after each page
    out = tmp_path / "r.jsonl"
    with sandbox_factory(customers=N, created_profile="bursty", latency_ms=10) as sb:
        expected = live_ids(sb)
        settings = make_settings(sb, endpoint_rate=60.0, test_rate=60.0)  # slow enough to interrupt
        state = await cancel_inside_an_import(settings, out)
        written = set(jsonl_ids(out))
        assert written < expected and len(jsonl_ids(out)) == len(written)
        if delete_low_cursors:
            doomed = {i for w in both_ends_in_one_second(state) for i in [w.low_cursor, *w.low_fallback] if i}
            assert doomed and doomed <= written
            with loopback.Client(timeout=10, headers={"Authorization": f"Bearer {KEY}"}) as http:
                for cid in sorted(doomed):
                    http.delete(f"{sb.base_url}/v1/customers/{cid}").raise_for_status()
            assert live_ids(sb) == expected - doomed
        async with open_deps(settings) as app:
            result = await run_export(app.stripe, out, None, resume=True)
    assert result.resumed
    assert_exact(out, expected, result.count)
    assert not checkpoint_path(out).exists()


def test_version_2_checkpoint_loads_without_an_oldest_end(tmp_path: Path) -> None:
    """A checkpoint written before windows had two ends still resumes: newest-first cursors only."""
    doc = {
        "version": 2, "format": "jsonl", "created_gte": 100, "created_lt": 200, "offset": 0, "count": 0,
        "windows": [{"gte": 100, "lt": 200, "cursor": "cus_a", "cursor_created": 150, "fallback": [],
                     "fetched": 3, "at_top": ["cus_a"]}],
    }  # fmt: skip
    path = tmp_path / "x.checkpoint.json"
    path.write_text(json.dumps(doc))
    state = ckpt.load(path)
    (w,) = state.windows
    assert (w.cursor, w.low_cursor, w.low_created, w.at_low, w.low_stopped) == ("cus_a", None, None, [], False)
    doc["windows"][0]["at_low"] = "not a list"  # type: ignore[index]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="at_low"):
        ckpt.load(path)
