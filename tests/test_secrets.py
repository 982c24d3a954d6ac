"""No secret anywhere: not in answers, errors, INFO/DEBUG logs (ours, httpx's, httpcore's), nor start-up output.

An "echo upstream" (a real loopback HTTP server) plays a hostile or careless API: every answer is an
error that repeats the credential it received, in full, without its `sk_test_` prefix, inside a URL
with userinfo and in a response header (which only httpcore's DEBUG log shows).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets as pysecrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from stripe_identity_mcp.cli import add_serve_flags, settings_from_args
from stripe_identity_mcp.clients.errors import redact
from stripe_identity_mcp.log_redaction import install_redaction
from stripe_identity_mcp.settings import ConfigError
from tests.conftest import make_settings, mcp_client

BODY = "51Echo" + pysecrets.token_hex(12)  # a realistic, distinctive key body (random per run)
KEY = "sk_test_" + BODY
SCIM_TOKEN = "scimtok_" + pysecrets.token_hex(16)
URL_PASSWORD = "hunter2" + pysecrets.token_hex(4)
# Every substring that must never come back (the body catches an echo without prefix).
FORBIDDEN = (KEY, BODY, SCIM_TOKEN, URL_PASSWORD, BODY[:16])


def leaks(text: str) -> list[str]:
    return [s for s in FORBIDDEN if s in text]


@dataclass
class EchoUpstream:
    base_url: str
    scim_base: str
    authorizations: list[str] = field(default_factory=list)


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: EchoUpstream

    def _answer(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.upstream.authorizations.append(auth)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        credential = auth.split(" ", 1)[-1]
        bare = credential.removeprefix("sk_test_")
        echo = (
            f"Invalid API Key provided: {credential}; key body {bare}; "
            f"retry at https://admin:{URL_PASSWORD}@api.example.com/v1 with header '{auth}'"
        )
        if self.path.startswith("/scim/"):
            body: dict[str, Any] = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "401",
                "detail": echo,
            }
        else:
            body = {"error": {"type": "invalid_request_error", "message": echo}}
        data = json.dumps(body).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_echo1")
        self.send_header("X-Echo-Key", bare)  # seen only by httpcore's DEBUG log of response headers
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass


@contextmanager
def echo_upstream() -> Iterator[EchoUpstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    upstream = EchoUpstream(base_url=base, scim_base=base + "/scim/v2")
    _EchoHandler.upstream = upstream
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def texts(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content) + json.dumps(result.structured_content or {})


FAILING_CALLS = [
    ("get_customer", {"customer_id": "cus_Echo0001"}),
    ("list_customers", {}),
    ("find_customers_by_email", {"email": "jane@acme.com"}),
    ("get_team_member", {"member_id": "c6c60b84-4ec5-5091-9555-fe0347965f54"}),
    ("resolve_identity", {"email": "jane@acme.com"}),
]


@pytest.mark.anyio
async def test_an_upstream_echoing_the_key_without_prefix_leaks_nothing_into_answers():
    with echo_upstream() as upstream:
        settings = make_settings(
            SimpleNamespace(base_url=upstream.base_url, scim_base=upstream.scim_base),
            api_key=KEY, scim_token=SCIM_TOKEN, sandbox=False, max_retries=0,
        )  # fmt: skip
        async with mcp_client(settings) as client:
            answers = [texts(await client.call_tool(name, args)) for name, args in FAILING_CALLS]
            answers.append(texts(await client.call_tool("describe_access", {})))
            with pytest.raises(Exception) as resource_error:
                await client.read_resource("stripe://customers/cus_Echo0001")
            answers.append(str(resource_error.value))
    # The upstream really received the credentials as bearer tokens (no Basic auth), and echoed them.
    assert f"Bearer {KEY}" in upstream.authorizations and f"Bearer {SCIM_TOKEN}" in upstream.authorizations
    assert all(a.startswith("Bearer ") for a in upstream.authorizations)
    assert "Invalid API Key provided" in answers[0] and "status=401" in answers[0]
    for answer in answers:
        assert leaks(answer) == [], answer


async def _stdio_session(upstream: EchoUpstream, errlog: Any) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update({
        "STRIPE_API_KEY": KEY, "STRIPE_SCIM_TOKEN": SCIM_TOKEN, "STRIPE_API_BASE": upstream.base_url,
        "STRIPE_SCIM_BASE": upstream.scim_base, "STRIPE_IDENTITY_MCP_LOG_LEVEL": "DEBUG",
        "STRIPE_IDENTITY_MCP_MAX_RETRIES": "0",
    })  # fmt: skip
    params = StdioServerParameters(command=sys.executable, args=["-m", "stripe_identity_mcp", "serve"], env=env)
    async with Client(stdio_client(params, errlog=errlog)) as client:
        return [texts(await client.call_tool(name, args)) for name, args in FAILING_CALLS]


@pytest.mark.anyio
async def test_debug_logs_of_a_failing_call_hold_no_key_token_or_key_body():
    with echo_upstream() as upstream, tempfile.TemporaryFile("w+") as errlog:
        answers = await _stdio_session(upstream, errlog)
        errlog.seek(0)
        log = errlog.read()
    assert upstream.authorizations, "the server talked to the upstream"
    # DEBUG really was on for the HTTP libraries, and the echoed header reached their log (redacted).
    assert "httpcore" in log and "receive_response_headers" in log, log[-2000:]
    assert "x-echo-key" in log.lower()
    assert "[redacted]" in log
    assert leaks(log) == [], [line for line in log.splitlines() if leaks(line)][:5]
    for answer in answers:
        assert leaks(answer) == [], answer


def _serve(env_extra: dict[str, str], cwd: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "serve"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("STRIPE_API_KEY", KEY + "\r", r"ends with '\r'"),
        ("STRIPE_API_KEY", KEY + "\n", r"ends with '\n'"),
        ("STRIPE_API_KEY", " " + KEY, "starts with ' '"),
        ("STRIPE_SCIM_TOKEN", SCIM_TOKEN + "\r", r"ends with '\r'"),
        ("STRIPE_SCIM_TOKEN", SCIM_TOKEN[:8] + "\x1b" + SCIM_TOKEN[8:], r"contains '\x1b'"),
    ],
    # fixed ids: the values are random per run, and parallel workers must collect the same tests
    ids=["key-cr", "key-lf", "key-leading-space", "token-cr", "token-escape"],
)
def test_credentials_with_whitespace_or_control_characters_are_refused_at_start_up(tmp_path, variable, value, says):
    with echo_upstream() as upstream:
        env = {"STRIPE_API_KEY": KEY, "STRIPE_API_BASE": upstream.base_url, "STRIPE_SCIM_BASE": upstream.scim_base}
        env[variable] = value
        proc = _serve(env, tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert variable in proc.stderr and says in proc.stderr, proc.stderr
    assert "nothing was sent" in proc.stderr and "Traceback" not in proc.stderr
    assert leaks(proc.stderr) == []
    assert upstream.authorizations == []  # refused before any request


def test_a_crlf_dotenv_value_is_refused_without_echoing_the_key(tmp_path):
    # A quoted value keeps the editor's line ending inside it; python-dotenv hands it over as is.
    (tmp_path / ".env").write_bytes(f'STRIPE_API_KEY="{KEY}\r"\r\n'.encode())
    with echo_upstream() as upstream:
        proc = _serve({"STRIPE_API_BASE": upstream.base_url, "STRIPE_SCIM_BASE": upstream.scim_base}, tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert "STRIPE_API_KEY ends with" in proc.stderr and "Windows line endings" in proc.stderr
    assert leaks(proc.stderr) == [] and "Traceback" not in proc.stderr
    assert upstream.authorizations == []


@pytest.mark.parametrize("variable", ["STRIPE_API_BASE", "STRIPE_SCIM_BASE"])
def test_userinfo_in_a_base_url_is_a_config_error_that_shows_no_password(tmp_path, variable):
    with echo_upstream() as upstream:
        bases = {"STRIPE_API_BASE": upstream.base_url, "STRIPE_SCIM_BASE": upstream.scim_base}
        bases[variable] = bases[variable].replace("http://", f"http://admin:{URL_PASSWORD}@")
        proc = _serve({"STRIPE_API_KEY": KEY, "STRIPE_SCIM_TOKEN": SCIM_TOKEN, **bases}, tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{variable} must not contain user:password@" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and leaks(proc.stderr) == []
    assert upstream.authorizations == []  # nothing was sent (httpx would have sent Basic auth)


def test_settings_refuse_userinfo_and_dirty_keys_without_the_value_in_the_error():
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    for argv in (
        ["--api-key", KEY, "--api-base", f"https://admin:{URL_PASSWORD}@api.stripe.com"],
        ["--api-key", KEY + "\r"],
        ["--api-key", KEY, "--scim-base", f"https://{URL_PASSWORD}@access.stripe.com/scim/v2"],
        ["--api-key", KEY, "--api-base", "https://api.stripe.com\r"],  # urlsplit would drop the \r silently
    ):
        with pytest.raises(ConfigError) as caught:
            settings_from_args(parser.parse_args(argv), _env_file=None)
        assert leaks(str(caught.value)) == [] and "STRIPE_" in str(caught.value)


def test_redact_catches_the_body_stripped_forms_userinfo_and_tokens_but_leaves_prose():
    text = (
        f"{KEY} | {BODY} | {KEY}\r | https://admin:{URL_PASSWORD}@h.example/v1 | "
        f"Bearer {SCIM_TOKEN} | sim_{'x' * 43} | {SCIM_TOKEN}"
    )
    out = redact(text, [KEY + "\r", SCIM_TOKEN])
    assert leaks(out) == [] and "sim_xxxx" not in out
    assert "https://[redacted]@h.example/v1" in out
    # A short, non-distinctive body (the sandbox key's "sandbox") is not scrubbed from prose.
    assert redact("the sandbox key is sk_test_sandbox", ["sk_test_sandbox"]) == "the sandbox key is [redacted]"


def test_handlers_and_loggers_created_after_installation_are_redacted_too():
    install_redaction([KEY, SCIM_TOKEN])
    stream_records: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stream_records.append(self.format(record))

    # A library logger configured later, not propagating to root (as uvicorn does with its own config).
    late = logging.getLogger(f"late.library.{pysecrets.token_hex(4)}")
    late.propagate = False
    late.setLevel(logging.DEBUG)
    handler = ListHandler()
    late.addHandler(handler)
    try:
        late.debug("request headers %r", {"authorization": f"Bearer {KEY}"})
        late.info("token %s body %s", SCIM_TOKEN, BODY)
        try:
            raise RuntimeError(f"Illegal header value b'Bearer {KEY}\\r'")
        except RuntimeError:
            late.exception("send_request_headers.failed")
    finally:
        late.removeHandler(handler)
    joined = "\n".join(stream_records)
    assert len(stream_records) == 3 and "RuntimeError" in joined
    assert leaks(joined) == [], joined
