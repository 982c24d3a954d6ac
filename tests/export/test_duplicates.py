"""find_duplicate_customers through a real MCP client against the sandbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stripe_identity_mcp.export.duplicates import normalise_email
from stripe_identity_mcp.sandbox.seed import JANE_ID, JANE_VARIANT_ID
from tests.conftest import make_settings, mcp_client
from tests.export.helpers import create_customer

pytestmark = pytest.mark.anyio


def test_normalise_email() -> None:
    assert normalise_email("  Jane@Acme.COM ") == "jane@acme.com"
    assert normalise_email("jane@acme.com.") == "jane@acme.com"
    assert normalise_email("a@BÜCHER.de") == normalise_email("a@xn--bcher-kva.de")
    assert normalise_email("j.ane+x@gmail.com") != normalise_email("jane@gmail.com")  # not merged on purpose
    assert normalise_email("") is None and normalise_email(None) is None


async def test_seeded_case_variants_grouped_with_facts(sandbox: Any, protocol_mode: str) -> None:
    notes: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(progress)

    async with mcp_client(make_settings(sandbox), mode=protocol_mode) as client:
        r = await client.call_tool("find_duplicate_customers", {"max_groups": 500}, progress_callback=on_progress)
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["customers_scanned"] == sandbox.app.state.sandbox.stores["test"].live_customer_count()
    jane = next(g for g in out["groups"] if g["email"] == "jane@acme.com")
    by_id = {c["id"]: c for c in jane["customers"]}
    assert {JANE_ID, JANE_VARIANT_ID} <= set(by_id)
    assert by_id[JANE_ID]["subscriptions"] == 1 and by_id[JANE_ID]["default_payment_method"].startswith("pm_")
    assert by_id[JANE_VARIANT_ID]["subscriptions"] == 0 and "default_payment_method" not in by_id[JANE_VARIANT_ID]
    assert by_id[JANE_VARIANT_ID]["email"] == "Jane@Acme.com" and by_id[JANE_ID]["created"].endswith("Z")
    assert out["groups_total"] >= len(out["groups"]) > 1
    assert [g["count"] for g in out["groups"]] == sorted((g["count"] for g in out["groups"]), reverse=True)
    assert "NOT merged" in out["normalisation"]
    assert notes, "no progress notification"


async def test_spaces_and_case_merge_but_plus_tags_do_not(empty_sandbox: Any, tmp_path: Path) -> None:
    a = create_customer(empty_sandbox, email="bob@example.com", name="Bob")
    b = create_customer(empty_sandbox, email="BOB@Example.COM", name="Bob 2")
    create_customer(empty_sandbox, email="bob+billing@example.com", name="Bob tag")
    create_customer(empty_sandbox, email="b.ob@example.com", name="Bob dot")
    create_customer(empty_sandbox, email="solo@example.com")
    settings = make_settings(empty_sandbox)
    async with mcp_client(settings) as client:
        r = await client.call_tool("find_duplicate_customers", {"created_lt": int(time.time()) + 60})
        empty = await client.call_tool("find_duplicate_customers", {"created_lt": "2011-01-01"})
        bad = await client.call_tool("find_duplicate_customers", {"created_gte": "2020-01-01", "created_lt": "2019-01-01"})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["groups_total"] == 1 and out["customers_scanned"] == 5
    group = out["groups"][0]
    assert group["email"] == "bob@example.com" and group["count"] == 2
    assert {c["id"] for c in group["customers"]} == {a["id"], b["id"]}
    assert not empty.is_error and empty.structured_content["customers_scanned"] == 0
    assert bad.is_error and "empty range" in bad.content[0].text
