"""The tool catalogue as a client sees it: annotations, registration rules, context cost."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

# Context cost budgets that scale with the catalogue (SPEC §13): what a client pays per tool is its
# name + description + input schema as compact JSON.
PER_TOOL_BUDGET = 700
# Tools already above PER_TOOL_BUDGET when the budgets became per tool: capped at their size then (a
# ratchet — they may only shrink; new tools get no entry here).
OVER_BUDGET_TODAY = {"update_customer": 820, "list_customers": 810, "create_customer": 725, "export_customers": 765}  # +max_rate (rate limits)
# Average per tool. Today's 25 tools average about 445 characters: 500 leaves ~12% room.
PER_TOOL_AVERAGE = 500


def definition_size(tool) -> int:
    return len(
        json.dumps({"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}, separators=(",", ":"))
    )


async def test_every_tool_sets_all_four_hints_and_read_tools_are_read_only(sandbox):
    settings = make_settings(sandbox, allow_writes=True)
    async with mcp_client(settings) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        a = tool.annotations
        assert a is not None, tool.name
        hints = (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert None not in hints, tool.name
        if a.read_only_hint:
            assert a.destructive_hint is False, tool.name
        assert tool.description and len(tool.description) < 600, tool.name


async def test_read_only_default_registers_no_write_tool(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        tools = (await client.list_tools()).tools
    assert tools and all(t.annotations.read_only_hint for t in tools)


async def test_read_only_flag_wins_over_allow_writes(sandbox):
    async with mcp_client(make_settings(sandbox, allow_writes=True, read_only=True)) as client:
        tools = (await client.list_tools()).tools
    assert all(t.annotations.read_only_hint for t in tools)


async def test_live_key_needs_the_second_opt_in(sandbox):
    live = make_settings(sandbox, api_key="sk_live_sandbox", allow_writes=True)
    async with mcp_client(live) as client:
        tools = (await client.list_tools()).tools
        access = (await client.call_tool("describe_access", {})).structured_content
    assert all(t.annotations.read_only_hint for t in tools)
    assert access["writes"] is False and "--allow-live-writes" in access["writes_note"]


async def test_all_tool_definitions_fit_the_context_budget(sandbox):
    settings = make_settings(sandbox, allow_writes=True)
    async with mcp_client(settings) as client:
        tools = (await client.list_tools()).tools
    sizes = {t.name: definition_size(t) for t in tools}
    detail = ", ".join(f"{name}={size}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]))
    over = {n: s for n, s in sizes.items() if s > OVER_BUDGET_TODAY.get(n, PER_TOOL_BUDGET)}
    assert not over, f"tools over their budget ({PER_TOOL_BUDGET} chars unless listed): {over}"
    total = sum(sizes.values())
    assert total <= PER_TOOL_AVERAGE * len(tools), f"{total} chars for {len(tools)} tools: {detail}"
