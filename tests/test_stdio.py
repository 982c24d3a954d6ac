"""The real thing: the console entry point as a stdio subprocess, driven by an MCP client."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests import loopback
from tests.conftest import SANDBOX_KEY

pytestmark = pytest.mark.anyio


def server_env(sb, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update(
        {"STRIPE_API_KEY": SANDBOX_KEY, "STRIPE_API_BASE": sb.base_url, "STRIPE_IDENTITY_MCP_LOG_LEVEL": "DEBUG"}
    )
    env.update(extra)
    return env


async def test_stdio_server_lists_read_tools_and_finds_duplicates(empty_sandbox):
    for name in ("A", "B"):
        loopback.post(
            empty_sandbox.base_url + "/v1/customers",
            data={"email": "twice@example.com", "name": name},
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        ).raise_for_status()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "stripe_identity_mcp", "serve"], env=server_env(empty_sandbox)
    )
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = (await client.list_tools()).tools
            assert {"describe_access", "find_customers_by_email", "get_customer", "list_customers"} <= {
                t.name for t in tools
            }
            assert all(t.annotations.read_only_hint for t in tools)
            r = await client.call_tool("find_customers_by_email", {"email": "twice@example.com"})
            assert not r.is_error, r.content[0].text
            assert r.structured_content["exact_count"] == 2
            assert any("share this email" in w for w in r.structured_content["warnings"])
            r = await client.call_tool("get_customer", {"customer_id": "cus_nope"})
            assert r.is_error
        errlog.seek(0)
        log = errlog.read()
    assert SANDBOX_KEY not in log  # DEBUG logs on stderr carry no key


def test_serve_without_a_key_explains_and_exits_non_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    proc = subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "STRIPE_API_KEY" in proc.stderr and "--sandbox" in proc.stderr
    assert proc.stdout == ""


def test_bad_key_prefix_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env["STRIPE_API_KEY"] = "pk_test_publishable"
    proc = subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0 and "sk_test_" in proc.stderr
    assert "pk_test_publishable" not in proc.stderr
