"""Streamable HTTP transport over real HTTP: uvicorn on 127.0.0.1 (ephemeral port) in front of the
sandbox; real MCP clients with bearer tokens; raw httpx for status codes and headers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stripe_identity_mcp.http_auth import load_tokens
from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.settings import ConfigError
from stripe_identity_mcp.toolsets import all_write_tools
from stripe_identity_mcp.transport_http import HttpOptions, prepare_http
from tests import loopback
from tests.conftest import make_settings
from tests.http.conftest import INIT, MCP_HEADERS, http_client, http_server, make_tokens, serve_cli

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOOLS = {td.name for td in all_write_tools()}  # the "writes" token: every write tool of every toolset


def settings_for(sb: Any, tmp_path: Path, tokens: Path | None, **overrides: Any) -> Any:
    values: dict[str, Any] = {"allow_writes": True, "audit_log": tmp_path / "audit.jsonl", "tokens_file": tokens}
    values.update(overrides)
    return make_settings(sb, **values)


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_tool_names(tools: Any) -> set[str]:
    return {t.name for t in tools.tools if t.annotations is None or t.annotations.read_only_hint is not True}


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def two_tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.toml"
    return path, make_tokens(path, ("reader", "read-only"), ("writer", "writes"))


# --- authentication ----------------------------------------------------------------------------


def test_missing_or_unknown_token_gets_401_with_bearer_challenge(sandbox, tmp_path, two_tokens):
    path, tokens = two_tokens
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        before = sandbox.app.state.sandbox.requests
        missing = loopback.post(srv.url, json=INIT, headers=MCP_HEADERS)
        bad = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer sim_not-a-real-token"})
        almost = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {tokens['reader']}x"})
        basic = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": f"Basic {tokens['reader']}"})
        good = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {tokens['reader']}"})
    for response in (missing, bad, almost, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] in {"unauthorized", "invalid_token"}
        assert tokens["reader"] not in response.text
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert "error=" not in missing.headers["www-authenticate"]
    assert good.status_code == 200
    assert sandbox.app.state.sandbox.requests == before  # nothing reached Stripe


@pytest.mark.anyio
async def test_mcp_client_with_bad_token_cannot_connect(sandbox, tmp_path, two_tokens):
    path, _ = two_tokens
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        with pytest.raises(Exception):  # noqa: B017 - any failure: the handshake must not succeed
            async with http_client(srv.url, "sim_wrong") as client:
                await client.list_tools()


def test_healthz_needs_no_token_and_reveals_nothing(sandbox, tmp_path, two_tokens):
    path, _ = two_tokens
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        health = loopback.get(srv.base + "/healthz")
        other = loopback.get(srv.base + "/admin")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert "sk_" not in health.text and "scim" not in health.text
    assert other.status_code == 404


# --- per-token scopes --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_read_only_token_sees_no_write_tools_and_cannot_call_one(sandbox, tmp_path, two_tokens, protocol_mode):
    path, tokens = two_tokens
    store = sandbox.app.state.sandbox.stores["test"]
    count = len(store.customers)
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        async with http_client(srv.url, tokens["reader"], mode=protocol_mode) as client:
            tools = await client.list_tools()
            access = await client.call_tool("describe_access", {})
            r = await client.call_tool("create_customer", {"email": "intruder@example.com"})
            read = await client.call_tool("find_customers_by_email", {"email": "jane@acme.com"})
    assert write_tool_names(tools) == set()
    assert "find_customers_by_email" in {t.name for t in tools.tools}
    assert access.structured_content["writes"] is False
    assert r.is_error
    assert len(store.customers) == count
    assert not any(c.get("email") == "intruder@example.com" for c in store.customers.values())
    assert not read.is_error and read.structured_content["customers"]
    assert audit_lines(tmp_path) == []


@pytest.mark.anyio
async def test_write_token_sees_write_tools_and_creates_a_portal_session(sandbox, tmp_path, two_tokens, protocol_mode):
    path, tokens = two_tokens
    jane = FIXED_IDS["jane"]
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        async with http_client(srv.url, tokens["writer"], mode=protocol_mode) as client:
            tools = await client.list_tools()
            r = await client.call_tool(
                "create_portal_session", {"customer_id": jane, "return_url": "https://support.example.com/done"}
            )
    assert WRITE_TOOLS <= write_tool_names(tools)
    assert not r.is_error, r.content[0].text
    assert r.structured_content["customer"] == jane
    assert r.structured_content["url"].startswith("http")
    [line] = audit_lines(tmp_path)
    assert line["tool"] == "create_portal_session" and line["outcome"] == "ok"
    assert line["caller"] == "token:writer"
    assert line["request_id"]


@pytest.mark.anyio
async def test_token_never_gets_more_than_the_process_allows(sandbox, tmp_path):
    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("writer", "writes"), ("narrow", "writes", {"toolsets": ("billing",)}))
    settings = settings_for(sandbox, tmp_path, path, allow_writes=False)
    with http_server(settings) as srv:
        async with http_client(srv.url, tokens["writer"]) as client:
            writer_tools = await client.list_tools()
            r = await client.call_tool("create_customer", {"email": "x@example.com"})
        async with http_client(srv.url, tokens["narrow"]) as client:
            narrow_tools = {t.name for t in (await client.list_tools()).tools}
    assert write_tool_names(writer_tools) == set()  # server runs without --allow-writes
    assert r.is_error
    assert "list_customer_payment_methods" in narrow_tools
    assert "find_customers_by_email" not in narrow_tools  # customers toolset not granted to this token


def test_token_whose_toolsets_the_server_lacks_is_a_startup_error(sandbox, tmp_path):
    path = tmp_path / "tokens.toml"
    make_tokens(path, ("teambot", "read-only", {"toolsets": ("team",)}))
    settings = settings_for(sandbox, tmp_path, path, scim_token=None)
    with pytest.raises(ConfigError, match="teambot"):
        prepare_http(settings, HttpOptions(port=0))


@pytest.mark.anyio
async def test_audit_lines_name_the_token_that_acted(sandbox, tmp_path):
    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("bot-a", "writes"), ("bot-b", "writes"))
    jane, omar = FIXED_IDS["jane"], FIXED_IDS["omar"]
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        async with http_client(srv.url, tokens["bot-a"]) as a, http_client(srv.url, tokens["bot-b"]) as b:
            ra = await a.call_tool("create_portal_session", {"customer_id": jane, "return_url": "https://a.example"})
            rb = await b.call_tool("create_portal_session", {"customer_id": omar, "return_url": "https://b.example"})
    assert not ra.is_error and not rb.is_error
    callers = {line["target"]: line["caller"] for line in audit_lines(tmp_path)}
    assert callers == {jane: "token:bot-a", omar: "token:bot-b"}
    text = (tmp_path / "audit.jsonl").read_text()
    assert tokens["bot-a"] not in text and tokens["bot-b"] not in text


def test_a_session_cannot_be_used_with_another_token(sandbox, tmp_path):
    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("one", "read-only"), ("two", "read-only"))
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        opened = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {tokens['one']}"})
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        headers = {**MCP_HEADERS, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
        stolen = loopback.post(srv.url, json=listing, headers={**headers, "Authorization": f"Bearer {tokens['two']}"})
    assert opened.status_code == 200
    assert stolen.status_code == 404


@pytest.mark.anyio
async def test_stateless_mode_serves_scoped_tools(sandbox, tmp_path, two_tokens):
    path, tokens = two_tokens
    with http_server(settings_for(sandbox, tmp_path, path), stateless=True) as srv:
        async with http_client(srv.url, tokens["writer"]) as client:
            tools = await client.list_tools()
            r = await client.call_tool("get_customer", {"customer_id": FIXED_IDS["jane"]})
        async with http_client(srv.url, tokens["reader"]) as client:
            reader_tools = await client.list_tools()
    assert WRITE_TOOLS <= write_tool_names(tools)
    assert not r.is_error and r.structured_content["id"] == FIXED_IDS["jane"]
    assert write_tool_names(reader_tools) == set()


@pytest.mark.anyio
async def test_loopback_without_tokens_serves_unauthenticated(sandbox, tmp_path):
    with http_server(settings_for(sandbox, tmp_path, None, allow_writes=False)) as srv:
        async with http_client(srv.url) as client:
            r = await client.call_tool("get_customer", {"customer_id": FIXED_IDS["omar"]})
    assert not r.is_error


# --- transport security ------------------------------------------------------------------------


def test_disallowed_origin_and_host_are_refused(sandbox, tmp_path, two_tokens):
    path, tokens = two_tokens
    auth = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['reader']}"}
    with http_server(settings_for(sandbox, tmp_path, path), allowed_origins=["https://chat.example.com"]) as srv:
        port = srv.prepared.port
        evil = loopback.post(srv.url, json=INIT, headers={**auth, "Origin": "https://evil.example"})
        evil_no_token = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Origin": "https://evil.example"})
        local = loopback.post(srv.url, json=INIT, headers={**auth, "Origin": f"http://localhost:{port}"})
        configured = loopback.post(srv.url, json=INIT, headers={**auth, "Origin": "https://chat.example.com"})
        bad_host = loopback.post(srv.url, json=INIT, headers={**auth, "Host": "attacker.example"})
    assert evil.status_code == 403
    assert evil_no_token.status_code == 403  # checked before the token: a browser learns nothing
    assert local.status_code == 200
    assert configured.status_code == 200
    assert bad_host.status_code in {400, 403, 421}


def test_oversized_body_is_rejected(sandbox, tmp_path, two_tokens):
    path, tokens = two_tokens
    body = json.dumps({**INIT, "params": {**INIT["params"], "padding": "x" * (1024 * 1024 + 10)}})
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['reader']}"}
    with http_server(settings_for(sandbox, tmp_path, path)) as srv:
        response = loopback.post(srv.url, content=body, headers=headers)
    assert response.status_code == 413


def test_non_loopback_host_without_tokens_refuses_to_start(tmp_path):
    env = {**subprocess_env(), "STRIPE_API_KEY": "sk_test_sandbox"}
    proc = subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "without bearer tokens" in proc.stderr
    assert "sk_test_sandbox" not in proc.stderr + proc.stdout


def test_empty_or_missing_token_file_is_an_error(sandbox, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="no tokens"):
        prepare_http(settings_for(sandbox, tmp_path, empty), HttpOptions(port=0))
    with pytest.raises(ConfigError, match="does not exist"):
        prepare_http(settings_for(sandbox, tmp_path, tmp_path / "missing.toml"), HttpOptions(port=0))


# --- token CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["tokens.toml", "tokens.json"])
def test_token_create_prints_once_and_stores_only_the_hash(tmp_path, filename):
    path = tmp_path / filename

    def create(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "stripe_identity_mcp", "token", "create", "--name", name, "--file", str(path)]
        return subprocess.run(cmd + list(extra), cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=60)

    first = create("support-bot", "--scope", "read-only", "--toolsets", "customers,billing")
    second = create("portal-bot", "--scope", "writes")
    duplicate = create("support-bot", "--scope", "writes")
    bad = create("x", "--scope", "read-only", "--live-writes")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    token = first.stdout.strip()
    assert first.stdout.count("\n") == 1 and token.startswith("sim_") and len(token) > 40
    assert token not in first.stderr
    text = path.read_text()
    assert token not in text and second.stdout.strip() not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert path.stat().st_mode & 0o077 == 0
    table = load_tokens(path)
    assert [e.name for e in table.entries] == ["support-bot", "portal-bot"]
    assert table.match(token).scope == "read-only"  # type: ignore[union-attr]
    assert table.match(token).toolsets == ("customers", "billing")  # type: ignore[union-attr]
    assert table.match(second.stdout.strip()).scope == "writes"  # type: ignore[union-attr]
    assert table.match(token + "x") is None and table.match("") is None and table.match(None) is None
    assert duplicate.returncode == 2 and "already has" in duplicate.stderr and duplicate.stdout == ""
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(load_tokens(path)) == 2  # failed attempts lost nothing and added nothing


def test_invalid_token_file_entries_are_reported(tmp_path):
    path = tmp_path / "tokens.toml"
    path.write_text('[[tokens]]\nname = "bot"\nsha256 = "abc"\nscope = "admin"\n')
    from stripe_identity_mcp.http_auth import TokenFileError

    with pytest.raises(TokenFileError, match="entry 1 \\(bot\\)"):
        load_tokens(path)


# --- load script ---------------------------------------------------------------------------------


def test_small_load_run_has_zero_errors():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "http_load.py"), "--clients", "5", "--calls", "3", "--timeout", "60"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "errors         0" in proc.stdout
    assert "calls ok       15/15" in proc.stdout


def test_live_writes_need_both_the_token_and_the_process(sandbox, tmp_path):
    from stripe_identity_mcp.http_auth import TokenEntry
    from stripe_identity_mcp.transport_http import scoped_settings

    def entry(scope: str, live: bool) -> TokenEntry:
        return TokenEntry(name="t", sha256="0" * 64, scope=scope, live_writes=live)  # type: ignore[arg-type]

    live_ok = settings_for(sandbox, tmp_path, None, api_key="sk_live_sandbox", allow_live_writes=True)
    live_off = settings_for(sandbox, tmp_path, None, api_key="sk_live_sandbox")
    assert scoped_settings(live_ok, entry("writes", True)).writes_enabled
    assert not scoped_settings(live_ok, entry("writes", False)).writes_enabled
    assert not scoped_settings(live_off, entry("writes", True)).writes_enabled
    assert not scoped_settings(live_ok, entry("read-only", True)).writes_enabled
    assert live_ok.writes_enabled  # the process's own settings are not changed


def test_cli_serves_http_with_the_embedded_sandbox(tmp_path):
    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("cli-bot", "read-only"))
    args = ["--sandbox", "--port", "0", "--tokens-file", str(path), "--audit-log", str(tmp_path / "audit.jsonl")]
    with serve_cli(args, cwd=tmp_path, env=subprocess_env()) as served:
        url = served.url
        health = loopback.get(url.removesuffix("/mcp") + "/healthz", timeout=10)
        denied = loopback.post(url, json=INIT, headers=MCP_HEADERS, timeout=10)
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "get_customer", "arguments": {"customer_id": FIXED_IDS["jane"]}}}  # fmt: skip
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['cli-bot']}"}
        opened = loopback.post(url, json=INIT, headers=headers, timeout=10)
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        loopback.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={**headers, **session}, timeout=10)
        called = loopback.post(url, json=listing, headers={**headers, **session}, timeout=30)
    assert health.status_code == 200
    assert denied.status_code == 401
    assert opened.status_code == 200
    assert called.status_code == 200 and "Jane Doe" in called.text
    everything = "\n".join(served.seen) + served.out + served.err
    assert tokens["cli-bot"] not in everything  # the bearer token never reaches a log
