"""Hostile and flaky upstreams: every wait bounded, the server usable afterwards.

Through the fault proxy (tests/faultproxy.py): a 429 asking for an hour, a body trickled a byte at a
time, a rate-limit header claiming 1 r/s, a JSON body nested 5 000 deep. Each call gets a bounded,
clear answer, and the next call works. `anyio.fail_after` is the bound (a hang fails the test); it
synchronises nothing.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client
from tests.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.anyio

CID = FIXED_IDS["jane"]
JSON = {"Content-Type": "application/json"}
RATE_LIMITED = json.dumps({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}})


def via(proxy: FaultProxy, sb: Any, **overrides: Any) -> Any:
    values: dict[str, Any] = {"api_base": proxy.url, "scim_token": None, "max_retries": 2, "retry_deadline_s": 8.0}
    return make_settings(sb, **(values | overrides))


async def test_an_hour_long_retry_after_fails_the_call_at_once_and_blocks_nothing(sandbox):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{CID}$", status=429, body=RATE_LIMITED, headers={**JSON, "Retry-After": "3600"}))
        async with mcp_client(via(proxy, sandbox)) as client:
            with anyio.fail_after(10):
                limited = await client.call_tool("get_customer", {"customer_id": CID})
                after = [await client.call_tool("get_customer", {"customer_id": CID}) for _ in range(3)]
    text = limited.content[0].text
    assert limited.is_error and "rate limited; retry after 3600s" in text, text
    assert all(not r.is_error for r in after), after[0].content[0].text


async def test_a_trickled_body_is_bounded_by_the_attempt_timeout(sandbox):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{CID}$", action="trickle", delay_s=0.2, count=3))
        settings = via(proxy, sandbox, timeout_s=1.0, retry_deadline_s=3.0, max_retries=1)
        async with mcp_client(settings) as client:
            with anyio.fail_after(10):
                slow = await client.call_tool("get_customer", {"customer_id": CID})
                proxy.clear()
                fine = await client.call_tool("get_customer", {"customer_id": CID})
    assert slow.is_error and "timed out" in slow.content[0].text, slow.content[0].text
    assert not fine.is_error


async def test_a_rate_limit_header_of_one_is_a_bounded_adjustment(sandbox):
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{CID}$", action="headers",
                       headers={"Stripe-Ratelimit-Limit": "1", "Stripe-Ratelimit-Remaining": "0"}))  # fmt: skip
        async with mcp_client(via(proxy, sandbox, test_rate=100.0)) as client:
            with anyio.fail_after(10):
                first = await client.call_tool("get_customer", {"customer_id": CID})
                for _ in range(20):  # at 1 r/s these would take 20 s
                    assert not (await client.call_tool("get_customer", {"customer_id": CID})).is_error
                access = await client.call_tool("describe_access", {})
    assert not first.is_error
    assert access.structured_content["rate_limit"]["global"]["rate_per_s"] >= 25.0  # the floor: a quarter of 100


async def test_a_deeply_nested_body_is_a_clear_error_and_the_server_stays_usable(sandbox):
    nested = '{"object":"customer","id":"cus_1","x":' + "[" * 5000 + "]" * 5000 + "}"
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{CID}$", status=200, body=nested, headers=JSON))
        async with mcp_client(via(proxy, sandbox)) as client:
            with anyio.fail_after(10):
                deep = await client.call_tool("get_customer", {"customer_id": CID})
                fine = await client.call_tool("get_customer", {"customer_id": CID})
    text = deep.content[0].text
    assert deep.is_error and "nested too deeply" in text and "Traceback" not in text, text
    assert not fine.is_error


async def test_a_deeply_nested_error_body_is_a_clear_error(sandbox):
    nested = '{"error":' + "[" * 5000 + "]" * 5000 + "}"
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{CID}$", status=400, body=nested, headers=JSON))
        async with mcp_client(via(proxy, sandbox)) as client:
            with anyio.fail_after(10):
                deep = await client.call_tool("get_customer", {"customer_id": CID})
    assert deep.is_error and "HTTP 400 with an unexpected body" in deep.content[0].text, deep.content[0].text
    assert SANDBOX_KEY not in deep.content[0].text
