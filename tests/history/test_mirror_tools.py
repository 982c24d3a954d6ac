"""--mirror in the tools: case variants without search lag, duplicates without requests."""

from __future__ import annotations

import pytest

from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings, mcp_client, running_sandbox
from tests.history.helpers import async_sync
from tests.history.test_webhooks import SECRET
from tests.http.conftest import http_client, http_server, make_tokens

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def create(sb, email: str) -> str:
    return loopback.post(sb.base_url + "/v1/customers", data={"email": email}, headers=AUTH).json()["id"]


async def test_a_case_variant_created_a_second_ago_is_found_in_the_mirror_via_webhook(tmp_path):
    db = tmp_path / "m.db"
    with running_sandbox(empty=True, search_lag_s=600) as sb:  # search cannot see new customers
        exact = create(sb, "casey@example.com")
        await async_sync(sb, db)
        tokens = make_tokens(tmp_path / "t.toml", ("bot", "read-only"))
        settings = make_settings(sb, mirror=db, webhook_secret=SECRET, tokens_file=tmp_path / "t.toml")
        with http_server(settings) as running:
            loopback.post(sb.base_url + "/_sandbox/webhooks", json={"url": running.base + "/webhooks/stripe", "secret": SECRET})
            variant = create(sb, "Casey@Example.COM")
            log = loopback.post(sb.base_url + "/_sandbox/webhooks/flush").json()["log"]  # answers once delivered
            assert [e.get("status") for e in log] == [200]
            async with http_client(running.url, tokens["bot"]) as client:
                r = await client.call_tool("find_customers_by_email", {"email": "casey@example.com"})
        assert not r.is_error, r.content[0].text
        out = r.structured_content
        assert [c["id"] for c in out["customers"]] == [exact]
        assert out["case_variants"] == [{"id": variant, "email": "Casey@Example.COM", "source": "mirror"}]
        assert out["record_count"] == 2
        assert any("local mirror" in w and "synced" in w and "last webhook" in w for w in out["warnings"])
        async with mcp_client(make_settings(sb)) as client:  # without a mirror nothing changes: search lags
            plain = (await client.call_tool("find_customers_by_email", {"email": "casey@example.com"})).structured_content
        assert plain["case_variants"] == [] and plain["record_count"] == 1


async def test_duplicates_answered_from_the_mirror_without_requests(tmp_path):
    db = tmp_path / "m.db"
    with running_sandbox(customers=120) as sb:
        a, b = create(sb, "twin@example.com"), create(sb, "TWIN@example.com")
        await async_sync(sb, db)
        async with mcp_client(make_settings(sb)) as client:
            scanned = (await client.call_tool("find_duplicate_customers", {})).structured_content
        before = sb.sandbox.requests
        async with mcp_client(make_settings(sb, mirror=db)) as client:
            mirrored = (await client.call_tool("find_duplicate_customers", {})).structured_content
        assert sb.sandbox.requests == before and mirrored["requests"] == 0
        assert mirrored["source"].startswith("mirror (synced")
        def groups(rep):
            return {g["email"]: sorted(c["id"] for c in g["customers"]) for g in rep["groups"]}
        assert groups(mirrored) == groups(scanned) and groups(mirrored)["twin@example.com"] == sorted([a, b])
        assert all("subscriptions" not in c for g in mirrored["groups"] for c in g["customers"])
        assert mirrored["customers_scanned"] == scanned["customers_scanned"]


async def test_a_mirror_that_was_never_synced_is_said(tmp_path):
    with running_sandbox(empty=True) as sb:
        async with mcp_client(make_settings(sb, mirror=tmp_path / "none.db")) as client:
            dup = await client.call_tool("find_duplicate_customers", {})
            look = (await client.call_tool("find_customers_by_email", {"email": "x@example.com"})).structured_content
    assert dup.is_error and "sync --db" in dup.content[0].text
    assert any("mirror not used" in w and "sync --db" in w for w in look["warnings"])


async def test_a_mirror_of_the_other_mode_is_refused(tmp_path):
    db = tmp_path / "m.db"
    with running_sandbox(empty=True) as sb:
        create(sb, "mode@example.com")
        await async_sync(sb, db)  # test mode
        async with mcp_client(make_settings(sb, api_key="sk_live_sandbox", mirror=db)) as client:
            dup = await client.call_tool("find_duplicate_customers", {})
            look = (await client.call_tool("find_customers_by_email", {"email": "Mode@example.com"})).structured_content
    assert dup.is_error and "test-mode customers" in dup.content[0].text and "live mode" in dup.content[0].text
    assert look["case_variants"] == [] and any("mirror not used" in w and "test-mode" in w for w in look["warnings"])
