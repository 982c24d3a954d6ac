"""The HTTP transport as an OAuth 2.1 resource server, over real streamable HTTP on 127.0.0.1: a local
issuer (tests/http/oauth_issuer.py) mints tokens; raw httpx checks statuses and challenges; real MCP
clients check tools and calls; the sandbox's state and the audit log are checked, not only answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.toolsets import REGISTRY
from tests import loopback
from tests.conftest import elicitation, make_settings
from tests.http.conftest import INIT, MCP_HEADERS, http_client, http_server, serve_cli
from tests.http.oauth_issuer import Issuer, SigningKey, running_issuer

AUDIENCE = "https://mcp.example.test/mcp"
STATE_KEY = "k" * 40
OTHER_KEY = "o" * 40
CUSTOMER_READ_TOOLS = {td.name for ts in REGISTRY if ts.name == "customers" for td in ts.read}  # customers:read


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def oauth_settings(sb: Any, tmp_path: Path, issuer: Issuer, **overrides: Any) -> Any:
    values: dict[str, Any] = {"allow_writes": True, "audit_log": tmp_path / "audit.jsonl", "oauth_issuer": issuer.url}
    values.update(overrides)
    return make_settings(sb, **values)


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


def call(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hs256_with_public_key(issuer: Issuer, audience: str) -> str:
    """The key-confusion attack: HMAC-"sign" with the issuer's public key (PyJWT itself refuses to mint it)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.keys[0].kid}).encode())
    payload = _b64(json.dumps(issuer.claims(audience)).encode())
    signature = hmac.new(issuer.keys[0].public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer "), header
    out = {}
    for part in header.removeprefix("Bearer ").split(", "):
        key, _, value = part.partition("=")
        out[key] = value.strip('"')
    return out


# --- (1) metadata and the 401 challenge ------------------------------------------------------------


def test_metadata_is_served_and_every_401_points_at_it(sandbox, tmp_path, issuer):
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        before = sandbox.app.state.sandbox.requests
        suffixed = loopback.get(srv.base + "/.well-known/oauth-protected-resource/mcp")
        root = loopback.get(srv.base + "/.well-known/oauth-protected-resource")
        missing = loopback.post(srv.url, json=INIT, headers=MCP_HEADERS)
        stream = loopback.get(srv.url, headers={"Accept": "text/event-stream"})
        garbage = loopback.post(srv.url, json=INIT, headers=bearer("not-a-jwt"))
        empty = loopback.post(srv.url, json=INIT, headers={**MCP_HEADERS, "Authorization": "Basic abc"})
        assert sandbox.app.state.sandbox.requests == before  # nothing reached Stripe
    assert suffixed.status_code == 200 and root.status_code == 200
    doc = suffixed.json()
    assert root.json() == doc
    assert doc["resource"] == srv.url
    assert doc["authorization_servers"] == [issuer.url]
    assert doc["bearer_methods_supported"] == ["header"]
    assert {"customers:read", "customers:write", "billing:read", "team:write", "export:read"} <= set(doc["scopes_supported"])
    assert "live:write" not in doc["scopes_supported"]  # a test-mode key: live:write means nothing here
    metadata_url = srv.base + "/.well-known/oauth-protected-resource/mcp"
    for response in (missing, stream, garbage, empty):
        assert response.status_code == 401
        params = challenge_params(response.headers["www-authenticate"])
        assert params["resource_metadata"] == metadata_url
    assert "error" not in challenge_params(missing.headers["www-authenticate"])
    assert challenge_params(garbage.headers["www-authenticate"])["error"] == "invalid_token"
    assert challenge_params(empty.headers["www-authenticate"])["error"] == "invalid_token"


# --- (2) token validation ------------------------------------------------------------------------------


def test_each_bad_token_gets_401_invalid_token_and_a_good_one_passes(sandbox, tmp_path, issuer):
    now = int(time.time())
    stranger = SigningKey.generate(kid=issuer.keys[0].kid)  # same kid, another key: a forged signature
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        good = issuer.mint(srv.url)
        head, payload, signature = good.split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        claims = issuer.claims(srv.url)
        cases = {
            "expired": issuer.mint(srv.url, exp=now - 120, iat=now - 600),
            "not yet valid": issuer.mint(srv.url, nbf=now + 600),
            "wrong iss": issuer.mint(srv.url, iss="https://evil.example"),
            "wrong aud": issuer.mint(srv.url, aud="https://other-resource.example/mcp"),
            "no exp": issuer.mint(srv.url, exp=None),
            "tampered payload": f"{head}.{_b64(json.dumps({**claims, 'scope': 'customers:write'}).encode())}.{signature}",
            "tampered signature": f"{head}.{payload}.{flipped}",
            "forged key": issuer.mint(srv.url, key=stranger),
            "alg none": jwt.encode(claims, None, algorithm="none"),
            "hs256 with the public key": hs256_with_public_key(issuer, srv.url),
        }
        answers = {name: loopback.post(srv.url, json=INIT, headers=bearer(token)) for name, token in cases.items()}
        accepted = loopback.post(srv.url, json=INIT, headers=bearer(good))
        aud_list = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url, aud=["https://x.example", srv.url])))
    for name, response in answers.items():
        assert response.status_code == 401, name
        params = challenge_params(response.headers["www-authenticate"])
        assert params["error"] == "invalid_token", name
        assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp"), name
        assert cases[name] not in response.text, name
    assert "expired" in answers["expired"].json()["message"]
    assert "not valid yet" in answers["not yet valid"].json()["message"]
    assert "another issuer" in answers["wrong iss"].json()["message"]
    assert "another resource" in answers["wrong aud"].json()["message"]
    assert "algorithm not allowed" in answers["alg none"].json()["message"]
    assert "algorithm not allowed" in answers["hs256 with the public key"].json()["message"]
    assert accepted.status_code == 200, accepted.text
    assert aud_list.status_code == 200, aud_list.text


def test_unknown_kid_refetches_the_rotated_jwks_at_most_once_per_interval(sandbox, tmp_path, issuer):
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        first = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url)))
        fetched = issuer.jwks_fetches
        rotated = SigningKey.generate()
        issuer.rotate(rotated)
        after_rotation = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url, key=rotated)))
        refetched = issuer.jwks_fetches
        ghosts = [SigningKey.generate() for _ in range(5)]
        flood = [loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url, key=k))) for k in ghosts]
        old_key_still = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url, key=issuer.keys[1])))
    assert first.status_code == 200 and fetched == 1 and issuer.discovery_fetches == 1
    assert after_rotation.status_code == 200, after_rotation.text
    assert refetched == 2  # the unknown kid made us fetch the key set again
    assert all(r.status_code == 401 for r in flood)
    assert all("kid" in r.json()["message"] for r in flood)
    assert issuer.jwks_fetches == 2  # bounded: unknown kids within the interval fetch nothing
    assert old_key_still.status_code == 200


def test_unreachable_issuer_is_503_not_a_hang_nor_a_401(sandbox, tmp_path):
    with running_issuer() as gone:
        url = gone.url
    settings = make_settings(sandbox, audit_log=tmp_path / "audit.jsonl", oauth_issuer=url)
    with http_server(settings) as srv:
        token = jwt.encode({"sub": "x"}, SigningKey.generate().private, algorithm="RS256", headers={"kid": "k"})
        started = time.monotonic()
        response = loopback.post(srv.url, json=INIT, headers=bearer(token), timeout=30)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert elapsed < 15


# --- (3) scopes → capabilities -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_customers_read_token_lists_only_customer_read_tools_and_gets_403_on_a_write(
    sandbox, tmp_path, issuer, protocol_mode
):
    store = sandbox.app.state.sandbox.stores["test"]
    count = len(store.customers)
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        token = issuer.mint(srv.url, scope="customers:read openid profile")
        async with http_client(srv.url, token, mode=protocol_mode) as client:
            tools = await client.list_tools()
            read = await client.call_tool("get_customer", {"customer_id": FIXED_IDS["jane"]})
        write = loopback.post(srv.url, json=call("create_customer", {"email": "x@example.com"}), headers=bearer(token))
        team = loopback.post(srv.url, json=call("list_team_members"), headers=bearer(token))
        unknown = loopback.post(srv.url, json=call("no_such_tool"), headers=bearer(token))
    assert {t.name for t in tools.tools} == CUSTOMER_READ_TOOLS | {"describe_access"}
    assert not read.is_error and read.structured_content["id"] == FIXED_IDS["jane"]
    assert write.status_code == 403
    params = challenge_params(write.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope" and params["scope"] == "customers:write"
    assert team.status_code == 403 and challenge_params(team.headers["www-authenticate"])["scope"] == "team:read"
    assert unknown.status_code != 403  # not a scope question: the MCP server answers it
    assert len(store.customers) == count
    assert audit_lines(tmp_path) == []


@pytest.mark.anyio
async def test_scope_matrix_is_intersected_with_the_process_flags(sandbox, tmp_path, issuer):
    store = sandbox.app.state.sandbox.stores["test"]
    with http_server(oauth_settings(sandbox, tmp_path, issuer, toolsets=("customers", "billing", "team"))) as srv:
        writer = issuer.mint(srv.url, scope="customers:write team:read connect:write")
        billing = issuer.mint(srv.url, scope="billing:read")
        nothing = issuer.mint(srv.url, scope="openid email")
        async with http_client(srv.url, writer) as client:
            writer_tools = {t.name for t in (await client.list_tools()).tools}
            created = await client.call_tool("create_customer", {"email": "scoped@example.com"})
        async with http_client(srv.url, billing, mode="auto") as client:
            billing_tools = {t.name for t in (await client.list_tools()).tools}
        refused = loopback.post(srv.url, json=INIT, headers=bearer(nothing))
        team_write = loopback.post(srv.url, json=call("deactivate_team_member", {"email": "a@b.c"}), headers=bearer(writer))
    assert CUSTOMER_READ_TOOLS | {"create_customer", "delete_customer", "list_team_members"} <= writer_tools
    assert not any("connect" in name or "account" in name for name in writer_tools)  # the process lacks connect
    assert "deactivate_team_member" not in writer_tools
    assert not created.is_error, created.content[0].text
    assert any(c.get("email") == "scoped@example.com" for c in store.customers.values())
    assert not billing_tools & (CUSTOMER_READ_TOOLS | {"create_customer"})
    assert billing_tools - {"describe_access"}
    assert refused.status_code == 403 and challenge_params(refused.headers["www-authenticate"])["error"] == "insufficient_scope"
    assert team_write.status_code == 403
    assert challenge_params(team_write.headers["www-authenticate"])["scope"] == "team:write"


@pytest.mark.anyio
async def test_write_scope_never_widens_a_read_only_process(sandbox, tmp_path, issuer):
    store = sandbox.app.state.sandbox.stores["test"]
    count = len(store.customers)
    with http_server(oauth_settings(sandbox, tmp_path, issuer, allow_writes=False)) as srv:
        token = issuer.mint(srv.url, scope="customers:write live:write")
        async with http_client(srv.url, token) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            attempt = await client.call_tool("create_customer", {"email": "nope@example.com"})
        doc = loopback.get(srv.base + "/.well-known/oauth-protected-resource").json()
    assert tools == CUSTOMER_READ_TOOLS | {"describe_access"}
    assert attempt.is_error
    assert len(store.customers) == count
    assert not any(s.endswith(":write") for s in doc["scopes_supported"])


# --- (4) the person in the audit log ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_audit_log_names_the_person_and_the_client(sandbox, tmp_path, issuer, protocol_mode):
    jane, omar = FIXED_IDS["jane"], FIXED_IDS["omar"]
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        alice = issuer.mint(srv.url, scope="billing:write")
        bob = issuer.mint(
            srv.url, scope="billing:write customers:read", sub="user-5678", email=None, preferred_username="bob", client_id=None, azp="claude"
        )
        results: dict[str, Any] = {}
        async with http_client(srv.url, alice, mode=protocol_mode) as a, http_client(srv.url, bob, mode=protocol_mode) as b:

            async def portal(client: Client, customer: str, label: str) -> None:
                args = {"customer_id": customer, "return_url": f"https://{label}.example"}
                results[label] = await client.call_tool("create_portal_session", args)

            async with anyio.create_task_group() as tasks:  # at the same time: the caller is per request
                for _ in range(3):
                    tasks.start_soon(portal, a, jane, "a")
                    tasks.start_soon(portal, b, omar, "b")
    assert not results["a"].is_error and not results["b"].is_error
    lines = audit_lines(tmp_path)
    assert len(lines) == 6
    pairs = {(line["target"], line["caller"]) for line in lines}  # every line, not just the last per target
    assert pairs == {
        (jane, "user:user-1234 email=alice@example.com client=vscode-mcp"),
        (omar, "user:user-5678 username=bob client=claude"),
    }
    text = (tmp_path / "audit.jsonl").read_text()
    assert alice not in text and bob not in text


def test_a_session_opened_by_one_person_is_404_for_another(sandbox, tmp_path, issuer):
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        alice = issuer.mint(srv.url, scope="customers:read")
        mallory = issuer.mint(srv.url, scope="customers:read", sub="user-666")
        opened = loopback.post(srv.url, json=INIT, headers=bearer(alice))
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        hijack = loopback.post(srv.url, json=listing, headers={**bearer(mallory), "Mcp-Session-Id": session})
    assert opened.status_code == 200
    assert hijack.status_code == 404


# --- (5) confirmations across replicas -----------------------------------------------------------------


class Replicas(httpx2.AsyncBaseTransport):
    """Sends every request that answers a round trip (carries `requestState`) to another server."""

    def __init__(self, answer_url: str, answer_token: str | None = None) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.answer = httpx2.URL(answer_url)
        self.answer_token = answer_token
        self.answered = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if b'"requestState"' in request.content:
            self.answered += 1
            request.url = request.url.copy_with(port=self.answer.port)
            request.headers["Host"] = f"{self.answer.host}:{self.answer.port}"
            if self.answer_token is not None:
                request.headers["Authorization"] = f"Bearer {self.answer_token}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def split_client(url: str, token: str, transport: Replicas, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(30, read=60)
    async with (
        httpx2.AsyncClient(headers=headers, transport=transport, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http), mode="auto", **kwargs) as client,  # type: ignore[arg-type]
    ):
        yield client


def replica_settings(sb: Any, tmp_path: Path, issuer: Issuer, key: str, **overrides: Any) -> Any:
    return oauth_settings(sb, tmp_path, issuer, oauth_audience=AUDIENCE, state_keys=key, **overrides)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "case", ["same key", "rotated ring", "other key", "other person", "expired"]
)
async def test_confirmation_started_on_one_server_is_answered_on_another(sandbox, tmp_path, issuer, case, caplog):
    caplog.set_level(logging.WARNING, logger="mcp.server.request_state")
    store = sandbox.app.state.sandbox.stores["test"]
    omar = FIXED_IDS["omar"]
    answer_key = {"same key": STATE_KEY, "rotated ring": f"{OTHER_KEY},{STATE_KEY}", "other key": OTHER_KEY}.get(case, STATE_KEY)
    ttl = {"confirm_ttl_s": 0.05} if case == "expired" else {}
    asked: list[str] = []
    callbacks = elicitation("accept", asked)
    if case == "expired":
        inner = callbacks["elicitation_callback"]

        async def slow(ctx: Any, params: Any) -> Any:
            await anyio.sleep(0.3)  # the human takes longer than the state lives
            return await inner(ctx, params)

        callbacks = {"elicitation_callback": slow}
    token = issuer.mint(AUDIENCE, scope="customers:write")
    other = issuer.mint(AUDIENCE, scope="customers:write", sub="user-999") if case == "other person" else None
    first = replica_settings(sandbox, tmp_path, issuer, STATE_KEY, **ttl)
    second = replica_settings(sandbox, tmp_path, issuer, answer_key, **ttl)
    with http_server(first, stateless=True) as a, http_server(second, stateless=True) as b:
        transport = Replicas(b.url, other)
        async with split_client(a.url, token, transport, **callbacks) as client:
            result = await _delete(client, omar)
    assert transport.answered >= 1  # the answer really went to the second server
    if case in ("same key", "rotated ring"):
        assert not isinstance(result, Exception) and not result.is_error, result
        assert store.customers[omar].get("deleted")
        assert asked  # the human was asked, on the first server
        [line] = [entry for entry in audit_lines(tmp_path) if entry["tool"] == "delete_customer"]
        assert line["outcome"] == "ok" and line["caller"].startswith("user:user-1234")
    else:
        assert isinstance(result, MCPError), result
        assert "Invalid or expired requestState" in str(result)  # the SDK's frozen refusal: the seal did it
        reason = {"other key": "unknown key", "other person": "principal", "expired": "expired"}[case]
        assert any(r.getMessage().endswith(f": {reason}") for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert not store.customers[omar].get("deleted")  # failed closed: nothing was deleted


async def _delete(client: Client, customer: str) -> Any:
    try:
        return await client.call_tool("delete_customer", {"customer_id": customer, "confirm": customer})
    except Exception as exc:  # noqa: BLE001 - a refused round is an MCP error; the test inspects it
        return exc


# --- (6) deterministic tools/list ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tools_list_is_sorted_and_the_same_for_both_protocol_generations(sandbox, tmp_path, issuer):
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        token = issuer.mint(srv.url, scope="customers:write billing:read connect:read")
        async with http_client(srv.url, token, mode="legacy") as legacy, http_client(srv.url, token, mode="auto") as modern:
            old = [t.name for t in (await legacy.list_tools()).tools]
            listed = await modern.list_tools()
            new = [t.name for t in listed.tools]
            again = [t.name for t in (await modern.list_tools()).tools]
    assert old == sorted(old) and old == new == again
    assert listed.ttl_ms == 300_000 and listed.cache_scope == "private"  # depends on who asks: never shared


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["same token", "other token"])
async def test_bot_token_confirmation_crosses_replicas_but_not_tokens(sandbox, tmp_path, case):
    """Bot tokens keep working as before; their round trips are bound to the token (`token:<name>`)."""
    from tests.http.conftest import make_tokens

    store = sandbox.app.state.sandbox.stores["test"]
    omar = FIXED_IDS["omar"]
    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("bot-a", "writes"), ("bot-b", "writes"))
    settings = make_settings(
        sandbox, allow_writes=True, audit_log=tmp_path / "audit.jsonl", tokens_file=path, state_keys=STATE_KEY
    )
    asked: list[str] = []
    with http_server(settings, stateless=True) as a, http_server(settings, stateless=True) as b:
        transport = Replicas(b.url, tokens["bot-b"] if case == "other token" else None)
        async with split_client(a.url, tokens["bot-a"], transport, **elicitation("accept", asked)) as client:
            result = await _delete(client, omar)
    assert transport.answered >= 1 and asked
    if case == "same token":
        assert not isinstance(result, Exception) and not result.is_error, result
        assert store.customers[omar].get("deleted")
    else:
        assert isinstance(result, MCPError) and "Invalid or expired requestState" in str(result)
        assert not store.customers[omar].get("deleted")


# --- configuration ---------------------------------------------------------------------------------------


def test_public_url_is_the_resource_and_the_default_audience(sandbox, tmp_path, issuer):
    settings = oauth_settings(sandbox, tmp_path, issuer, public_url="https://mcp.example.test/")
    with http_server(settings) as srv:
        doc = loopback.get(srv.base + "/.well-known/oauth-protected-resource").json()
        missing = loopback.post(srv.url, json=INIT, headers=MCP_HEADERS)
        public = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(AUDIENCE)))
        local = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url)))
    assert doc["resource"] == AUDIENCE
    assert challenge_params(missing.headers["www-authenticate"])["resource_metadata"] == (
        "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
    )
    assert public.status_code == 200, public.text
    assert local.status_code == 401  # minted for the bound address, not for the public resource


def test_oauth_configuration_errors_say_what_to_fix(sandbox, tmp_path):
    from pydantic import ValidationError

    from stripe_identity_mcp.settings import ConfigError, invalid_settings_message
    from stripe_identity_mcp.transport_http import HttpOptions, prepare_http

    plain = make_settings(sandbox, oauth_issuer="http://idp.example.com")
    with pytest.raises(ConfigError, match="--oauth-issuer must be an https:// URL"):
        prepare_http(plain, HttpOptions(port=0))
    with pytest.raises(ValidationError) as short:
        make_settings(sandbox, state_keys="short-secret-value")
    message = invalid_settings_message(short.value)
    assert "STRIPE_IDENTITY_MCP_STATE_KEYS" in message and "short-secret-value" not in message
    with pytest.raises(ValidationError) as userinfo:
        make_settings(sandbox, oauth_issuer="https://user:pw@idp.example.com")
    assert "--oauth-issuer" in invalid_settings_message(userinfo.value)
    assert "pw@" not in invalid_settings_message(userinfo.value)
    secrets = make_settings(sandbox, state_keys=f"{STATE_KEY},{OTHER_KEY}").secrets()
    assert STATE_KEY in secrets and OTHER_KEY in secrets  # redacted from logs like the API key


def test_cli_flags_serve_oauth_with_the_embedded_sandbox(tmp_path, issuer):
    import os

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["PYTHONPATH"] = str(root)
    args = ["--sandbox", "--port", "0",
            "--oauth-issuer", issuer.url, "--oauth-audience", AUDIENCE, "--oauth-jwks-url", issuer.url + "/jwks",
            "--audit-log", str(tmp_path / "audit.jsonl")]  # fmt: skip
    token = issuer.mint(AUDIENCE)
    with serve_cli(args, cwd=tmp_path, env=env) as served:
        url = served.url
        doc = loopback.get(url.removesuffix("/mcp") + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        accepted = loopback.post(url, json=INIT, headers=bearer(token), timeout=10)
        refused = loopback.post(url, json=INIT, headers=bearer(issuer.mint(url)), timeout=10)
    seen, out, err = served.seen, served.out, served.err
    assert doc["resource"] == url and doc["authorization_servers"] == [issuer.url]
    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 401  # --oauth-audience: the bound URL is not the audience
    assert issuer.discovery_fetches == 0  # --oauth-jwks-url: no discovery
    assert any("OAuth: access tokens from" in line for line in seen)
    assert token not in out + err + "".join(seen)


@pytest.mark.anyio
async def test_live_key_writes_also_need_live_write(sandbox, tmp_path, issuer):
    settings = oauth_settings(sandbox, tmp_path, issuer, api_key="sk_live_sandbox", allow_live_writes=True)
    with http_server(settings) as srv:
        test_only = issuer.mint(srv.url, scope="customers:write")
        live = issuer.mint(srv.url, scope="customers:write live:write")
        async with http_client(srv.url, test_only) as client:
            without = {t.name for t in (await client.list_tools()).tools}
        async with http_client(srv.url, live) as client:
            with_live = {t.name for t in (await client.list_tools()).tools}
        refused = loopback.post(srv.url, json=call("create_customer", {"email": "l@example.com"}), headers=bearer(test_only))
        doc = loopback.get(srv.base + "/.well-known/oauth-protected-resource").json()
    assert "create_customer" not in without and CUSTOMER_READ_TOOLS <= without
    assert "create_customer" in with_live
    assert refused.status_code == 403
    assert challenge_params(refused.headers["www-authenticate"])["scope"] == "customers:write live:write"
    assert "live:write" in doc["scopes_supported"]


def test_a_silent_issuer_times_out_into_a_503(sandbox, tmp_path, monkeypatch):
    import socket

    from stripe_identity_mcp import oauth_jwt

    monkeypatch.setattr(oauth_jwt, "FETCH_TIMEOUT_S", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) and never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        settings = make_settings(sandbox, audit_log=tmp_path / "audit.jsonl", oauth_issuer=url)
        with http_server(settings) as srv:
            token = jwt.encode({"sub": "x"}, SigningKey.generate().private, algorithm="RS256", headers={"kid": "k"})
            started = time.monotonic()
            first = loopback.post(srv.url, json=INIT, headers=bearer(token), timeout=30)
            elapsed = time.monotonic() - started
            again = loopback.post(srv.url, json=INIT, headers=bearer(token), timeout=30)  # backs off: no new wait
            health = loopback.get(srv.base + "/healthz")
    finally:
        silent.close()
    assert first.status_code == 503 and again.status_code == 503
    assert elapsed < 10
    assert health.status_code == 200


@pytest.mark.anyio
async def test_scp_list_and_azp_claims_work_like_scope_and_client_id(sandbox, tmp_path, issuer):
    """Okta/Entra put scopes in `scp` (a list) and the client in `azp`/`cid`."""
    with http_server(oauth_settings(sandbox, tmp_path, issuer)) as srv:
        token = issuer.mint(srv.url, scope=None, scp=["customers:read", "offline_access"], client_id=None, cid="okta-app")
        async with http_client(srv.url, token, mode="auto") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == CUSTOMER_READ_TOOLS | {"describe_access"}


def test_bot_tokens_and_people_side_by_side(sandbox, tmp_path, issuer):
    from tests.http.conftest import make_tokens

    path = tmp_path / "tokens.toml"
    tokens = make_tokens(path, ("support-bot", "read-only"))
    with http_server(oauth_settings(sandbox, tmp_path, issuer, tokens_file=path)) as srv:
        bot = loopback.post(srv.url, json=INIT, headers=bearer(tokens["support-bot"]))
        person = loopback.post(srv.url, json=INIT, headers=bearer(issuer.mint(srv.url)))
        wrong_bot = loopback.post(srv.url, json=INIT, headers=bearer(tokens["support-bot"] + "x"))
    assert bot.status_code == 200 and person.status_code == 200
    assert wrong_bot.status_code == 401
    params = challenge_params(wrong_bot.headers["www-authenticate"])
    assert params["error"] == "invalid_token" and params["resource_metadata"].endswith("/oauth-protected-resource/mcp")
    assert tokens["support-bot"] not in wrong_bot.text


# --- opaque tokens (RFC 7662 introspection) ------------------------------------------------------------


def test_opaque_tokens_are_introspected_cached_and_checked(sandbox, tmp_path, issuer, capfd):
    client_id, secret = issuer.introspection_client
    settings = oauth_settings(
        sandbox,
        tmp_path,
        issuer,
        oauth_introspection_url=issuer.url + "/introspect",
        oauth_client_id=client_id,
        oauth_client_secret=secret,
        log_level="DEBUG",
    )
    now = int(time.time())
    with http_server(settings) as srv:
        active = {"active": True, "iss": issuer.url, "aud": srv.url, "sub": "user-42", "scope": "customers:read",
                  "client_id": "inspector", "exp": now + 300}  # fmt: skip
        issuer.opaque = {
            "opaque-good": active,
            "opaque-revoked": {"active": False},
            "opaque-no-aud": {k: v for k, v in active.items() if k != "aud"},
            "opaque-other-aud": {**active, "aud": "https://other.example/mcp"},
            "opaque-expired": {**active, "exp": now - 120},
        }
        good = loopback.post(srv.url, json=INIT, headers=bearer("opaque-good"))
        again = loopback.post(srv.url, json=INIT, headers=bearer("opaque-good"))
        calls_after_good = issuer.introspections
        write = loopback.post(srv.url, json=call("create_customer", {"email": "o@example.com"}), headers=bearer("opaque-good"))
        refused = {t: loopback.post(srv.url, json=INIT, headers=bearer(t)) for t in issuer.opaque if t != "opaque-good"}
        issuer.introspection_client = (client_id, "rotated-at-the-idp-0123456789")
        bad_credentials = loopback.post(srv.url, json=INIT, headers=bearer("opaque-never-seen"))
    assert good.status_code == 200 and again.status_code == 200
    assert calls_after_good == 1  # the second request used the cached answer
    assert write.status_code == 403
    for token, response in refused.items():
        assert response.status_code == 401, token
        assert challenge_params(response.headers["www-authenticate"])["error"] == "invalid_token"
    assert "not active" in refused["opaque-revoked"].json()["message"]
    assert "another resource" in refused["opaque-no-aud"].json()["message"]
    assert "another resource" in refused["opaque-other-aud"].json()["message"]
    assert "expired" in refused["opaque-expired"].json()["message"]
    assert bad_credentials.status_code == 503
    assert "credentials" in bad_credentials.json()["message"]
    out, err = capfd.readouterr()
    assert secret not in out + err and secret not in bad_credentials.text


def test_introspection_needs_client_credentials(sandbox, tmp_path, issuer):
    from stripe_identity_mcp.settings import ConfigError
    from stripe_identity_mcp.transport_http import HttpOptions, prepare_http

    settings = oauth_settings(sandbox, tmp_path, issuer, oauth_introspection_url=issuer.url + "/introspect")
    with pytest.raises(ConfigError, match="STRIPE_IDENTITY_MCP_OAUTH_CLIENT_SECRET"):
        prepare_http(settings, HttpOptions(port=0))
