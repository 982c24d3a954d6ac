"""Destructive tools: confirm argument × client elicitation × human answer × protocol generation.

The sandbox's own state proves whether the customer was deleted; nothing is inferred from texts alone.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from mcp.types import ElicitResult

from stripe_identity_mcp.sandbox import FIXED_IDS
from tests import loopback
from tests.conftest import SANDBOX_KEY, elicitation, make_settings, mcp_client

pytestmark = pytest.mark.anyio

ANSWERS = [None, "accept", "decline", "cancel"]  # None: the client cannot elicit
CONFIRMS = ["absent", "wrong", "right"]


def new_customer(sb: Any, email: str) -> str:
    r = loopback.post(
        f"{sb.base_url}/v1/customers",
        data={"email": email},
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
    )
    r.raise_for_status()
    return r.json()["id"]


def is_deleted(sb: Any, customer_id: str) -> bool:
    return bool(sb.sandbox.stores["test"].customers[customer_id].get("deleted"))


def settings_for(sb: Any, tmp_path: Any, **overrides: Any) -> Any:
    return make_settings(sb, allow_writes=True, scim_token=None, audit_log=tmp_path / "audit.jsonl", **overrides)


async def test_delete_customer_confirmation_matrix(sandbox, protocol_mode, tmp_path):
    settings = settings_for(sandbox, tmp_path)
    for answer, confirm in itertools.product(ANSWERS, CONFIRMS):
        customer_id = new_customer(sandbox, f"matrix-{answer}-{confirm}-{protocol_mode}@example.com")
        asked: list[str] = []
        args = {"customer_id": customer_id}
        if confirm == "wrong":
            args["confirm"] = "cus_SomeoneElse1"
        elif confirm == "right":
            args["confirm"] = customer_id
        async with mcp_client(settings, mode=protocol_mode, **elicitation(answer, asked)) as client:
            result = await client.call_tool("delete_customer", args)
        case = f"answer={answer} confirm={confirm} mode={protocol_mode}"
        should_delete = confirm == "right" and answer in (None, "accept")
        assert is_deleted(sandbox, customer_id) is should_delete, case
        assert result.is_error is (not should_delete), case
        if should_delete:
            assert result.structured_content["deleted"] is True, case
            assert "permanent" in result.structured_content["note"], case
            continue
        text = result.content[0].text
        assert "nothing was deleted" in text.lower(), case
        if confirm != "right":
            assert f"confirm='{customer_id}'" in text, case
            assert asked == [], case  # no question before the argument is right
        else:
            assert text.endswith("not confirmed; nothing was deleted."), case
        if confirm == "right" and answer is not None:
            assert len(asked) == 1 and customer_id in asked[0], case


async def test_preview_lists_the_subscriptions_that_will_be_cancelled(sandbox, protocol_mode, tmp_path):
    jane, sub = FIXED_IDS["jane"], FIXED_IDS["jane_sub"]
    asked: list[str] = []
    settings = settings_for(sandbox, tmp_path)
    async with mcp_client(settings, mode=protocol_mode, **elicitation("decline", asked)) as client:
        declined = await client.call_tool("delete_customer", {"customer_id": jane, "confirm": jane})
    assert declined.is_error and not is_deleted(sandbox, jane)
    assert len(asked) == 1
    assert "Permanently delete" in asked[0] and "jane@acme.com" in asked[0]
    assert f"1 active subscription(s) {sub} will be cancelled immediately" in asked[0]
    assert sandbox.sandbox.stores["test"].subs[sub]["status"] != "canceled"

    async with mcp_client(settings, mode=protocol_mode, **elicitation("accept", asked)) as client:
        done = await client.call_tool("delete_customer", {"customer_id": jane, "confirm": jane})
        after = await client.call_tool("get_customer", {"customer_id": jane})
    assert not done.is_error, done.content[0].text
    assert done.structured_content["cancelled_subscriptions"] == [sub]
    assert sandbox.sandbox.stores["test"].subs[sub]["status"] == "canceled"
    assert after.structured_content["deleted"] is True


async def test_param_only_mode_does_not_ask_even_a_capable_client(sandbox, protocol_mode, tmp_path):
    customer_id = new_customer(sandbox, f"param-only-{protocol_mode}@example.com")
    asked: list[str] = []
    settings = settings_for(sandbox, tmp_path, confirm="param-only")
    async with mcp_client(settings, mode=protocol_mode, **elicitation("decline", asked)) as client:
        missing = await client.call_tool("delete_customer", {"customer_id": customer_id})
        assert missing.is_error and not is_deleted(sandbox, customer_id)
        result = await client.call_tool("delete_customer", {"customer_id": customer_id, "confirm": customer_id})
    assert not result.is_error and is_deleted(sandbox, customer_id)
    assert asked == []


async def test_accepting_with_the_box_unticked_is_not_a_confirmation(sandbox, tmp_path):
    customer_id = new_customer(sandbox, "unticked@example.com")

    async def unticked(ctx: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": False})

    async with mcp_client(settings_for(sandbox, tmp_path), elicitation_callback=unticked) as client:
        result = await client.call_tool("delete_customer", {"customer_id": customer_id, "confirm": customer_id})
    assert result.is_error and "not confirmed" in result.content[0].text
    assert not is_deleted(sandbox, customer_id)


async def test_missing_customer_is_refused_before_asking(sandbox, protocol_mode, tmp_path):
    asked: list[str] = []
    async with mcp_client(settings_for(sandbox, tmp_path), mode=protocol_mode, **elicitation("accept", asked)) as c:
        result = await c.call_tool("delete_customer", {"customer_id": "cus_DoesNotExist", "confirm": "cus_DoesNotExist"})
    assert result.is_error and "Nothing was deleted" in result.content[0].text
    assert asked == []


async def test_detach_payment_method_matrix(sandbox, protocol_mode, tmp_path):
    jane_pm = FIXED_IDS["jane_pm"]
    store = sandbox.sandbox.stores["test"]
    settings = settings_for(sandbox, tmp_path)
    for answer, confirm in [("decline", "right"), ("cancel", "right"), (None, "absent"), (None, "wrong")]:
        asked: list[str] = []
        args = {"payment_method": jane_pm}
        if confirm != "absent":
            args["confirm"] = jane_pm if confirm == "right" else "pm_other"
        async with mcp_client(settings, mode=protocol_mode, **elicitation(answer, asked)) as client:
            result = await client.call_tool("detach_payment_method", args)
        assert result.is_error and "detached" in result.content[0].text.lower(), (answer, confirm)
        assert store.pms[jane_pm]["customer"] == FIXED_IDS["jane"], (answer, confirm)
        if answer is not None:
            assert "visa" in asked[0] and "4242" in asked[0] and FIXED_IDS["jane"] in asked[0]
    asked = []
    async with mcp_client(settings, mode=protocol_mode, **elicitation("accept", asked)) as client:
        result = await client.call_tool("detach_payment_method", {"payment_method": jane_pm, "confirm": jane_pm})
    assert not result.is_error, result.content[0].text
    assert store.pms[jane_pm]["customer"] is None and len(asked) == 1
