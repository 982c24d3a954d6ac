"""describe_access reports the SCIM client's budget next to the Stripe client's (real MCP client, sandbox)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import loopback
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio


def arm(sb: Any, **rule: Any) -> None:
    r = loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 200, r.text


async def test_describe_access_shows_the_scim_budget_and_its_counters(sandbox):
    arm(sandbox, kind="500", path="/scim/v2/Users", method="GET")
    async with mcp_client(make_settings(sandbox, scim_rate=7.5)) as client:  # the configured budget is shown
        before = (await client.call_tool("describe_access", {})).structured_content["rate_limit"]
        listed = await client.call_tool("list_team_members", {"count": 1})  # 500, retried, then 200
        r = await client.call_tool("describe_access", {})
    assert not listed.is_error, listed.content[0].text
    assert not r.is_error, r.content[0].text
    assert before["scim"]["requests"] == 0 and before["scim"]["retries"] == 0
    budget = r.structured_content["rate_limit"]
    scim = budget["scim"]
    assert set(scim) == {"rate_per_s", "tokens_now", "requests", "retries", "rate_limited"}  # no always-null fields
    assert scim["rate_per_s"] == 7.5 and 0 <= scim["tokens_now"] <= 7.5
    assert (scim["requests"], scim["retries"], scim["rate_limited"]) == (2, 1, 0)
    assert budget["requests"] == 0 and budget["retries"] == 0  # SCIM calls do not count as Stripe API calls
    assert {"global", "endpoints", "rate_limited"} <= set(budget)
    assert "scim_sandbox" not in r.content[0].text


async def test_describe_access_without_scim_has_no_scim_budget(empty_sandbox):
    async with mcp_client(make_settings(empty_sandbox, scim_token=None)) as client:
        r = await client.call_tool("describe_access", {})
    assert not r.is_error and r.structured_content["scim_configured"] is False
    assert "scim" not in r.structured_content["rate_limit"]
    assert {
        "global", "endpoint_default_per_s", "search_per_s", "endpoints", "concurrency",
        "requests", "retries", "rate_limited", "lock_timeouts",
    } == set(r.structured_content["rate_limit"])  # fmt: skip
