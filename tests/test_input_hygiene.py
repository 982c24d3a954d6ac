"""Input hygiene through the MCP client: no card number reaches a tool, no rejected value comes back whole."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from stripe_identity_mcp.cards import excerpt
from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.toolsets.common import to_unix
from tests.conftest import elicitation, make_settings, mcp_client

pytestmark = pytest.mark.anyio

CARD = "4000056655665556"  # Stripe's Visa debit test card
# Valid values for required arguments, so the argument under test is the only thing wrong.
REQUIRED = {
    "email": "hygiene@example.com",
    "customer_id": FIXED_IDS["jane"],
    "account_id": FIXED_IDS["acct_jane"],
    "return_url": "https://shop.example/back",
    "payment_method": "pm_card_visa",
    "format": "csv",
    "filename": "hygiene.csv",
}


def with_card(name: str, schema: dict[str, Any]) -> Any:
    """The argument's kind of value, holding the card (spaced, as people paste it)."""
    spaced = " ".join(CARD[i : i + 4] for i in range(0, 16, 4))
    kind = schema.get("type")
    if kind == "object":
        return {"note": f"card {spaced}"}
    if kind == "array":
        return [f"card {spaced}"]
    if "email" in name:
        return f"{CARD}@example.com"  # passes the email pattern: only the card check can stop it
    return f"card {spaced}"


def text_arguments(tools: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for tool in tools:
        props = tool.input_schema.get("properties", {})
        for name, schema in props.items():
            kinds = schema.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if {"string", "object", "array"} & set(kinds) and "enum" not in schema:
                out.append((tool.name, name, schema))
    return out


def call_args(tool: Any, name: str, value: Any) -> dict[str, Any]:
    required = tool.input_schema.get("required", [])
    args = {k: REQUIRED[k] for k in required if k in REQUIRED and k != name}
    args[name] = value
    return args


def all_settings(sandbox: Any, tmp_path: Any) -> Any:
    return make_settings(
        sandbox, allow_writes=True, confirm="param-only", export_dir=tmp_path, audit_log=tmp_path / "audit.jsonl"
    )


async def test_a_card_in_any_text_argument_of_any_tool_is_refused_before_anything_is_sent(sandbox, tmp_path):
    """Reads included: search_customers, list_customers.email, export filenames, team member ids, ..."""
    store = sandbox.sandbox.stores["test"]
    customers_before = json.dumps(store.customers, sort_keys=True, default=str)
    members_before = json.dumps(sandbox.sandbox.scim.users, sort_keys=True, default=str)
    checked: list[str] = []
    async with mcp_client(all_settings(sandbox, tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        requests_before = sandbox.sandbox.requests
        for tool_name, name, schema in text_arguments(list(tools.values())):
            r = await client.call_tool(tool_name, call_args(tools[tool_name], name, with_card(name, schema)))
            text = r.content[0].text
            assert r.is_error, (tool_name, name, text)
            assert CARD not in text.replace(" ", "").replace("-", "") and "5566 5556" not in text, (tool_name, name)
            if "pattern" not in schema or "email" in name:  # a free-text argument: our card refusal, by name
                assert f"argument '{name}'" in text and "card number" in text, (tool_name, name, text)
                assert "Nothing was sent to Stripe" in text
            checked.append(f"{tool_name}.{name}")
        assert sandbox.sandbox.requests == requests_before  # not one Stripe request
    assert json.dumps(store.customers, sort_keys=True, default=str) == customers_before
    assert json.dumps(sandbox.sandbox.scim.users, sort_keys=True, default=str) == members_before
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*.jsonl.part*"))
    # the ones the issue names are among them
    for must in ("search_customers.query", "search_customers.name_contains", "search_customers.metadata_value",
                 "list_customers.email", "export_customers.filename", "list_customers.created_gte",
                 "deactivate_team_member.member_id"):  # fmt: skip
        assert must in checked, must
    audit = (tmp_path / "audit.jsonl").read_text()
    assert '"refused"' in audit and CARD not in audit.replace(" ", "")


class Doorbell:
    """A TCP port that counts connection attempts and hangs up at once (the client fails fast)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.rings = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: done
                return
            self.rings += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


async def test_the_card_check_runs_before_the_confirmation_gate(sandbox, tmp_path):
    """The gate reads the member from SCIM (and asks the human) before the tool body runs: the card
    check must come first, so SCIM never hears of the card."""
    bell = Doorbell()
    asked: list[str] = []
    settings = make_settings(
        sandbox, allow_writes=True, confirm="elicit", scim_base=f"http://127.0.0.1:{bell.port}/scim/v2",
        max_retries=0, audit_log=tmp_path / "audit.jsonl",
    )  # fmt: skip
    try:
        async with mcp_client(settings, **elicitation("accept", asked)) as client:
            for tool in ("deactivate_team_member", "delete_team_member"):
                r = await client.call_tool(tool, {"member_id": CARD, "confirm": CARD})
                text = r.content[0].text
                assert r.is_error and "argument 'member_id'" in text and "card number" in text, text
                assert CARD not in text
            assert bell.rings == 0  # SCIM was never contacted
            control = await client.call_tool("get_team_member", {"member_id": "not-a-card"})
            assert control.is_error and bell.rings >= 1  # ...and would have been noticed
    finally:
        bell.close()
    assert asked == []  # nobody was asked to confirm a card number
    assert (tmp_path / "audit.jsonl").read_text().count('"refused"') == 2


async def test_a_card_sent_as_a_json_number_is_refused(sandbox, tmp_path):
    """start_index has no upper bound: a card typed into it would have gone to SCIM as startIndex."""
    async with mcp_client(all_settings(sandbox, tmp_path)) as client:
        r = await client.call_tool("list_team_members", {"start_index": int(CARD)})
        ok = await client.call_tool("list_team_members", {"start_index": 1764619200009})  # a timestamp is fine
    assert r.is_error and "argument 'start_index'" in r.content[0].text and CARD not in r.content[0].text
    assert not ok.is_error, ok.content[0].text


async def test_a_huge_rejected_value_is_not_echoed(empty_sandbox, tmp_path):
    """The issue: a 10 MB created_gte came back as a 10 MB answer."""
    huge = "2024-01-01" + "x" * 10_000_000
    async with mcp_client(all_settings(empty_sandbox, tmp_path)) as client:
        for tool, argument in (("list_customers", "created_gte"), ("find_duplicate_customers", "created_lt")):
            r = await client.call_tool(tool, {argument: huge})
            text = r.content[0].text
            assert r.is_error and argument in text and "ISO 8601" in text, text[:300]
            assert len(text) < 400, len(text)
        r = await client.call_tool("list_customers", {"created_gte": "9" * 100_000})
        assert r.is_error and len(r.content[0].text) < 400


async def test_every_text_argument_answers_briefly_to_a_long_value(empty_sandbox, tmp_path):
    """A long value in any argument: a refusal says what is wrong without repeating the value.

    (Limits on what is accepted, e.g. SCIM name lengths, are the toolsets' business; a successful
    write naturally shows the stored value.)
    """
    long = "q" * 200_000
    refusals = 0
    async with mcp_client(all_settings(empty_sandbox, tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for tool_name, name, schema in text_arguments(list(tools.values())):
            value: Any = {"k": long} if schema.get("type") == "object" else [long] if schema.get("type") == "array" else long
            r = await client.call_tool(tool_name, call_args(tools[tool_name], name, value))
            if r.is_error:
                refusals += 1
                assert len(r.content[0].text) < 2_000, (tool_name, name, r.content[0].text[:200])
    assert refusals > 20


async def test_a_card_under_a_long_metadata_key_is_refused_briefly(empty_sandbox, tmp_path):
    long_key = "k" * 5_000
    async with mcp_client(all_settings(empty_sandbox, tmp_path)) as client:
        r = await client.call_tool(
            "create_customer", {"email": "long@example.com", "metadata": {long_key: f"card {CARD}"}}
        )
    text = r.content[0].text
    assert r.is_error and "argument 'metadata'" in text and "card number" in text and len(text) < 400, text[:300]
    assert not empty_sandbox.sandbox.stores["test"].customers


@pytest.mark.parametrize(
    ("key", "phrase"),
    [
        ("k" * 256, "1..255 characters"),
        ("", "1..255 characters"),
        ("clé-é", "printable ASCII"),
        ("line\nbreak", "printable ASCII"),
        ("tab\there", "printable ASCII"),
    ],
)
async def test_bad_idempotency_keys_are_refused_before_stripe(empty_sandbox, tmp_path, key, phrase):
    before = empty_sandbox.sandbox.requests
    async with mcp_client(all_settings(empty_sandbox, tmp_path)) as client:
        r = await client.call_tool("create_customer", {"email": "idem@example.com", "idempotency_key": key})
    text = r.content[0].text
    assert r.is_error and "idempotency_key" in text and phrase in text and "Nothing was sent to Stripe" in text, text
    assert len(text) < 400
    assert empty_sandbox.sandbox.requests == before
    assert not empty_sandbox.sandbox.stores["test"].customers
    assert '"refused"' in (tmp_path / "audit.jsonl").read_text()


async def test_a_255_character_idempotency_key_is_used(empty_sandbox, tmp_path):
    key = "a-Z_0.9:~ " + "k" * 245
    async with mcp_client(all_settings(empty_sandbox, tmp_path)) as client:
        first = await client.call_tool("create_customer", {"email": "idem@example.com", "idempotency_key": key})
        again = await client.call_tool(
            "create_customer", {"email": "idem@example.com", "idempotency_key": key, "allow_duplicate_email": True}
        )
    assert not first.is_error, first.content[0].text
    assert len(empty_sandbox.sandbox.stores["test"].customers) == 1
    assert any(k == key for _, k in empty_sandbox.sandbox.idem), "the key reached Stripe unchanged"
    assert again.is_error or again.structured_content["customer"]["id"] == first.structured_content["customer"]["id"]


async def test_a_tool_without_any_card_code_is_covered():
    """The guard needs nothing from the tool: any string, nested or not, is checked before it runs."""
    from mcp import Client

    from stripe_identity_mcp.server import AuditedServer

    server = AuditedServer("guarded")
    calls: list[Any] = []

    @server.tool()
    def note(text: str, tags: dict[str, list[str]] | None = None) -> str:
        calls.append((text, tags))
        return "ok"

    async with Client(server) as client:
        assert (await client.call_tool("note", {"text": "order 1764619200009"})).content[0].text == "ok"
        r = await client.call_tool("note", {"text": "hi", "tags": {"a": ["x", f"pan {CARD}"]}})
    text = r.content[0].text
    assert r.is_error and "argument 'tags' (at tags['a'][1])" in text and "card number" in text and CARD not in text
    assert calls == [("order 1764619200009", None)]


@pytest.mark.parametrize(
    "uri",
    [f"stripe://customers/{CARD}", f"stripe://accounts/{CARD}", f"stripe://team-members/{CARD}",
     f"stripe://team-members/{CARD[:8]}-{CARD[8:]}", "stripe://customers/cus_" + "x" * 5000],
)  # fmt: skip
async def test_resource_uris_with_a_card_or_a_long_id_are_refused_without_an_echo(sandbox, uri):
    from mcp.shared.exceptions import MCPError

    before = sandbox.sandbox.requests
    async with mcp_client(make_settings(sandbox)) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    message = str(caught.value)
    assert "invalid" in message and len(message) < 400, message[:200]
    assert CARD not in message.replace("-", "") and CARD[4:12] not in message
    assert sandbox.sandbox.requests == before


def test_excerpt_is_short_and_card_safe():
    assert excerpt("x" * 10_000_000).startswith("'" + "x" * 40 + "'…(+")
    assert len(excerpt("x" * 10_000_000)) < 70
    # a card straddling the cut is masked, not shown in part
    for pad in range(0, 45):
        shown = excerpt("y" * pad + "4000 0566 5566 5556 tail")
        assert "0566 5566" not in shown and "5566 5556" not in shown, (pad, shown)
    assert excerpt(12) == "'12'"


def test_to_unix_echoes_an_excerpt():
    from mcp.server.mcpserver.exceptions import ToolError

    with pytest.raises(ToolError) as err:
        to_unix("tomorrow" * 1000, "created_gte")
    assert len(str(err.value)) < 200 and "created_gte" in str(err.value)
    assert to_unix("1764619200", "created_gte") == 1764619200
    assert to_unix("2025-12-01T20:00:00Z", "created_gte") == 1764619200
