"""list_customer_subscriptions: "is she billed twice?" answered from the sandbox's subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from stripe_identity_mcp.sandbox import FIXED_IDS
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client

pytestmark = pytest.mark.anyio


def post(sb: Any, path: str, data: dict[str, Any]) -> dict[str, Any]:
    r = loopback.post(sb.base_url + path, data=data, headers={"Authorization": f"Bearer {SANDBOX_KEY}"})
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


async def test_a_customer_billed_twice_is_flagged(empty_sandbox):
    cid = post(empty_sandbox, "/v1/customers", {"email": "twice@example.com"})["id"]
    first = post(empty_sandbox, "/v1/subscriptions", {"customer": cid, "items[0][price]": "price_pro"})
    second = post(empty_sandbox, "/v1/subscriptions", {"customer": cid, "items[0][price]": "price_pro"})
    other = post(empty_sandbox, "/v1/subscriptions", {"customer": cid, "items[0][price]": "price_addon"})
    loopback.delete(f"{empty_sandbox.base_url}/v1/subscriptions/{other['id']}",
                 headers={"Authorization": f"Bearer {SANDBOX_KEY}"}).raise_for_status()  # fmt: skip
    async with mcp_client(make_settings(empty_sandbox)) as client:
        r = await client.call_tool("list_customer_subscriptions", {"customer_id": cid})
        live = await client.call_tool("list_customer_subscriptions", {"customer_id": cid, "status": "active"})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert {s["id"] for s in out["subscriptions"]} == {first["id"], second["id"], other["id"]}
    by_id = {s["id"]: s for s in out["subscriptions"]}
    assert by_id[other["id"]]["status"] == "canceled" and by_id[other["id"]]["canceled_at"]
    line = by_id[first["id"]]["items"][0]
    assert line["price"] == "price_pro" and line["quantity"] == 1 and line["amount"].endswith("usd / 1 month")
    assert by_id[first["id"]]["current_period_end"] > by_id[first["id"]]["current_period_start"]
    assert by_id[first["id"]]["cancel_at_period_end"] is False
    (warning,) = out["warnings"]
    assert "2 live subscriptions" in warning and first["id"] in warning and second["id"] in warning
    assert {s["id"] for s in live.structured_content["subscriptions"]} == {first["id"], second["id"]}


async def test_seeded_customer_and_unknown_customer(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        jane = await client.call_tool("list_customer_subscriptions", {"customer_id": FIXED_IDS["jane"]})
        nobody = await client.call_tool("list_customer_subscriptions", {"customer_id": "cus_NoSuchOne"})
    assert not jane.is_error and jane.structured_content["subscriptions"]
    assert jane.structured_content["warnings"] == []
    assert not nobody.is_error and nobody.structured_content["subscriptions"] == []  # Stripe lists none
