"""export_customers through a real MCP client against the sandbox over loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from stripe_identity_mcp.export.paths import checkpoint_path
from tests import loopback
from tests.conftest import make_settings, mcp_client
from tests.export.helpers import (
    acreate_customer,
    add_faults,
    create_customer,
    csv_rows,
    jsonl_ids,
    live_ids,
    sandbox_stats,
)

pytestmark = pytest.mark.anyio


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_export_jsonl_exact_set_with_progress(sandbox_factory: Any, tmp_path: Path, protocol_mode: str) -> None:
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total, message))

    with sandbox_factory(customers=1500) as sb:
        expected = live_ids(sb)
        settings = make_settings(sb, export_dir=tmp_path)
        async with mcp_client(settings, mode=protocol_mode) as client:
            r = await client.call_tool(
                "export_customers", {"format": "jsonl", "filename": "all.jsonl"}, progress_callback=on_progress
            )
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    path = tmp_path / "all.jsonl"
    assert out["path"] == str(path.resolve())
    ids = jsonl_ids(path)
    assert len(ids) == len(set(ids)) == out["count"] == len(expected) > 1400
    assert set(ids) == expected
    assert out["sha256"] == sha256(path)
    assert out["requests"] >= out["count"] // 100 and out["resumed"] is False
    assert not checkpoint_path(path.resolve()).exists()
    assert notes, "no progress notification reached the client"
    assert notes[-1][0] == out["count"] and "customers" in (notes[-1][2] or "")
    assert [n[0] for n in notes] == sorted(n[0] for n in notes)


async def test_export_exact_set_under_injected_faults(sandbox_factory: Any, tmp_path: Path) -> None:
    kinds = ("500", "429", "reset", "drop_after_commit")

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not added:  # inject while several windows are being paged concurrently
            added.append(True)
            add_faults(sb, *({"kind": k, "method": "GET", "path": "/v1/customers", "count": 2} for k in kinds))

    added: list[bool] = []
    with sandbox_factory(customers=3000, latency_ms=2) as sb:
        expected = live_ids(sb)
        settings = make_settings(sb, export_dir=tmp_path, max_retries=8)
        async with mcp_client(settings) as client:
            r = await client.call_tool(
                "export_customers", {"format": "jsonl", "filename": "faulty.jsonl"}, progress_callback=on_progress
            )
        stats = sandbox_stats(sb)
    assert not r.is_error, r.content[0].text
    ids = jsonl_ids(tmp_path / "faulty.jsonl")
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert stats["faults_injected"] == 8
    assert r.structured_content["retries"] >= 8 and r.structured_content["rate_limited"] >= 2


async def test_export_gives_up_cleanly_and_resumes(sandbox_factory: Any, tmp_path: Path) -> None:
    """Retries exhausted: a ToolError (no traceback) that says how to resume; the resume completes."""
    with sandbox_factory(customers=500) as sb:
        settings = make_settings(sb, export_dir=tmp_path, max_retries=1)
        add_faults(sb, {"kind": "500", "method": "GET", "path": "/v1/customers", "count": 50})
        async with mcp_client(settings) as client:
            r = await client.call_tool("export_customers", {"format": "jsonl", "filename": "g.jsonl"})
            assert r.is_error
            text = r.content[0].text
            assert "resume=true" in text and "status=500" in text and "Traceback" not in text
            assert checkpoint_path((tmp_path / "g.jsonl").resolve()).exists()
            loopback.delete(f"{sb.base_url}/_sandbox/faults", timeout=10).raise_for_status()  # Stripe recovers
            r = await client.call_tool("export_customers", {"format": "jsonl", "filename": "g.jsonl", "resume": True})
        assert not r.is_error, r.content[0].text
        assert r.structured_content["resumed"] is True
        ids = jsonl_ids(tmp_path / "g.jsonl")
        assert len(ids) == len(set(ids)) and set(ids) == live_ids(sb)


async def test_export_exact_set_under_random_faults(sandbox_factory: Any, tmp_path: Path) -> None:
    with sandbox_factory(customers=1000, fault_rate=0.15, fault_seed=7) as sb:
        expected = live_ids(sb)
        settings = make_settings(sb, export_dir=tmp_path, max_retries=10)
        async with mcp_client(settings) as client:
            r = await client.call_tool("export_customers", {"format": "csv", "filename": "random.csv"})
        assert sandbox_stats(sb)["faults_injected"] > 0
    assert not r.is_error, r.content[0].text
    ids = [row["id"] for row in csv_rows(tmp_path / "random.csv")]
    assert len(ids) == len(set(ids)) and set(ids) == expected


async def test_customers_created_during_export_are_excluded(sandbox_factory: Any, tmp_path: Path) -> None:
    """Documented semantics: the export covers created < its start second; later customers are not in it."""
    created_during: list[dict[str, Any]] = []
    with sandbox_factory(customers=800, latency_ms=2) as sb:
        before = live_ids(sb)
        async with loopback.AsyncClient(timeout=10) as http:

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                if len(created_during) < 6 and progress < 800:
                    created_during.append(await acreate_customer(http, sb, email=f"new{len(created_during)}@x.io"))

            settings = make_settings(sb, export_dir=tmp_path, test_rate=200)
            async with mcp_client(settings) as client:
                r = await client.call_tool(
                    "export_customers", {"format": "jsonl", "filename": "during.jsonl"}, progress_callback=on_progress
                )
        after = live_ids(sb)
    assert not r.is_error, r.content[0].text
    assert created_during, "the export finished before any customer could be created during it"
    new_ids = {c["id"] for c in created_during}
    assert new_ids <= after and not new_ids & before
    ids = jsonl_ids(tmp_path / "during.jsonl")
    assert len(ids) == len(set(ids)) and set(ids) == before
    cutoff = r.structured_content["created_lt"]
    assert all(c["created"] >= int(__import__("datetime").datetime.fromisoformat(cutoff.replace("Z", "+00:00")).timestamp()) for c in created_during)


@pytest.mark.parametrize(
    "filename",
    ["../escape.jsonl", "sub/../../escape.jsonl", "/etc/passwd", "bad\x00name.jsonl", "", "."],
)
async def test_export_refuses_paths_outside_export_dir(empty_sandbox: Any, tmp_path: Path, filename: str) -> None:
    export_dir = tmp_path / "exports"
    settings = make_settings(empty_sandbox, export_dir=export_dir)
    requests_before = sandbox_stats(empty_sandbox)["requests"]
    async with mcp_client(settings) as client:
        r = await client.call_tool("export_customers", {"format": "jsonl", "filename": filename})
    assert r.is_error
    assert sandbox_stats(empty_sandbox)["requests"] == requests_before  # refused before any Stripe call
    assert not (tmp_path / "escape.jsonl").exists()
    assert not export_dir.exists() or list(export_dir.iterdir()) == []


async def test_export_refuses_absolute_path_outside_and_symlinks_out(empty_sandbox: Any, tmp_path: Path) -> None:
    export_dir, outside = tmp_path / "exports", tmp_path / "outside"
    export_dir.mkdir()
    outside.mkdir()
    os.symlink(outside, export_dir / "link_dir")
    os.symlink(outside / "target.jsonl", export_dir / "link_file.jsonl")
    settings = make_settings(empty_sandbox, export_dir=export_dir)
    async with mcp_client(settings) as client:
        for name in (str(outside / "abs.jsonl"), "link_dir/x.jsonl", "link_file.jsonl"):
            r = await client.call_tool("export_customers", {"format": "jsonl", "filename": name})
            assert r.is_error, name
            assert "outside the export directory" in r.content[0].text
        ok = await client.call_tool("export_customers", {"format": "jsonl", "filename": str(export_dir / "in.jsonl")})
    assert not ok.is_error, ok.content[0].text
    assert list(outside.iterdir()) == []
    assert (export_dir / "in.jsonl").exists()


async def test_existing_file_needs_overwrite_or_resume(sandbox: Any, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text("precious\n")
    settings = make_settings(sandbox, export_dir=tmp_path)
    async with mcp_client(settings) as client:
        r = await client.call_tool("export_customers", {"format": "jsonl", "filename": "x.jsonl"})
        assert r.is_error and "already exists" in r.content[0].text
        assert (tmp_path / "x.jsonl").read_text() == "precious\n"
        r = await client.call_tool("export_customers", {"format": "jsonl", "filename": "x.jsonl", "resume": True})
        assert r.is_error and "nothing to resume" in r.content[0].text
        assert (tmp_path / "x.jsonl").read_text() == "precious\n"
        r = await client.call_tool("export_customers", {"format": "jsonl", "filename": "x.jsonl", "overwrite": True})
    assert not r.is_error
    assert set(jsonl_ids(tmp_path / "x.jsonl")) == live_ids(sandbox)


async def test_csv_neutralises_hostile_values(empty_sandbox: Any, tmp_path: Path) -> None:
    hostile = {
        "=HYPERLINK(\"http://evil.example\",\"click\")": "'=HYPERLINK(\"http://evil.example\",\"click\")",
        'a,"b"\nc': 'a,"b"\nc',
        "+1": "'+1",
        "@x": "'@x",
        "-2": "'-2",
        "\tcmd": "'\tcmd",
        "plain, name": "plain, name",
    }
    made = {}
    for name in hostile:
        c = create_customer(empty_sandbox, name=name, email="h@x.io", phone="+15551234", metadata={"note": "=1+1"})
        made[c["id"]] = name
    settings = make_settings(empty_sandbox, export_dir=tmp_path)
    async with mcp_client(settings) as client:
        # just created (this second): the default cut-off (start second, exclusive) would leave them out
        args = {"format": "csv", "filename": "hostile.csv", "created_lt": int(time.time()) + 60}
        r = await client.call_tool("export_customers", args)
    assert not r.is_error, r.content[0].text
    rows = csv_rows(tmp_path / "hostile.csv")
    assert len(rows) == len(made) == r.structured_content["count"]
    for row in rows:
        assert row["name"] == hostile[made[row["id"]]]
        assert row["phone"] == "'+15551234"
        assert json.loads(row["metadata"]) == {"note": "=1+1"}  # a JSON cell starts with '{', safe
        assert row["balance"] == "0" and row["livemode"] == "false"
        assert row["created"].endswith("Z") and row["created_unix"].isdigit()


async def test_tools_are_read_only_and_registered(sandbox: Any, tmp_path: Path) -> None:
    async with mcp_client(make_settings(sandbox, export_dir=tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("export_customers", "find_duplicate_customers"):
        a = tools[name].annotations
        assert a.read_only_hint is True and a.destructive_hint is False and a.open_world_hint is True
