"""Regressions found by tests/test_fuzz_tools.py: hostile inputs get a clear ToolError, never a crash."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

PREFIX = "Error executing tool {}: "


@pytest.mark.parametrize(
    ("tool", "args", "argument"),
    [
        ("find_duplicate_customers", {"created_lt": 2**63}, "created_lt"),
        ("find_duplicate_customers", {"created_gte": 253402300800}, "created_gte"),
        ("list_customers", {"created_gte": -1}, "created_gte"),
        ("list_customers", {"created_lte": "0001-01-01"}, "created_lte"),
        ("list_connected_accounts", {"created_gte": "²³"}, "created_gte"),
        ("export_customers", {"format": "csv", "filename": "x.csv", "created_lt": 10**30}, "created_lt"),
    ],
)
async def test_created_out_of_range_is_a_clear_error_and_sends_nothing(sandbox, tmp_path, tool, args, argument):
    settings = make_settings(sandbox, export_dir=str(tmp_path))
    async with mcp_client(settings) as client:
        before = sandbox.app.state.sandbox.requests
        r = await client.call_tool(tool, args)
        assert r.is_error
        text = r.content[0].text
        assert text.startswith(PREFIX.format(tool) + argument), text
        assert "out of range" in text or "neither unix seconds" in text
        assert sandbox.app.state.sandbox.requests == before
        assert not (tmp_path / "x.csv").exists()
        ok = await client.call_tool(tool if tool != "export_customers" else "list_customers", {} if tool != "find_duplicate_customers" else {"created_gte": "2020-01-01"})
        assert not ok.is_error, ok.content[0].text
