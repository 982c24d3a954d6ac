"""Per-tool schema snapshots: one file per tool in tests/toolsnaps/, reviewed in diffs.

Every tool's definition as a client sees it (name, title, description, annotations, input and output
schema) must equal its snapshot, so a change to what the model reads shows up in review as a diff of
one small file. After an intended change, regenerate them with one command:

    make toolsnaps        # = UPDATE_TOOLSNAPS=1 .venv/bin/python -m pytest -q tests/test_toolsnaps.py

A snapshot without a tool, or a tool without a snapshot, fails too (github-mcp-server's toolsnaps).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

SNAPS = Path(__file__).parent / "toolsnaps"
UPDATE = os.environ.get("UPDATE_TOOLSNAPS") == "1"


def snapshot_of(tool: Any) -> str:
    data = tool.model_dump(mode="json", by_alias=True, exclude_none=True, include={
        "name", "title", "description", "annotations", "input_schema", "output_schema"})  # fmt: skip
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def test_every_tool_matches_its_snapshot(sandbox):
    # Every toolset and writes on: the widest catalogue a server can publish.
    async with mcp_client(make_settings(sandbox, allow_writes=True)) as client:
        tools = (await client.list_tools()).tools
    current = {tool.name: snapshot_of(tool) for tool in tools}
    if UPDATE:
        SNAPS.mkdir(exist_ok=True)
        for old in SNAPS.glob("*.json"):
            if old.stem not in current:
                old.unlink()
        for name, text in current.items():
            (SNAPS / f"{name}.json").write_text(text, encoding="utf-8")
    stored = {path.stem: path.read_text(encoding="utf-8") for path in SNAPS.glob("*.json")}
    assert sorted(stored) == sorted(current), "tools and snapshots differ: run `make toolsnaps` and review the diff"
    changed = [name for name in current if stored[name] != current[name]]
    assert not changed, f"definitions changed for {changed}: run `make toolsnaps` and review the diff"
