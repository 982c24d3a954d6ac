"""Card-number detection (property-based) and its refusal in every free-text argument of every write tool."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver.exceptions import ToolError

from stripe_identity_mcp.audit import AuditLog, caller_name, redact_value
from stripe_identity_mcp.card_guard import refuse_card_numbers
from stripe_identity_mcp.cards import CARD_BRANDS, find_card_numbers, luhn_ok, mask_card
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.toolsets import all_write_tools
from tests.conftest import make_settings, mcp_client, running_sandbox


def luhn_complete(body: str) -> str:
    """Append the check digit that makes `body` Luhn-valid."""
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: Any) -> str:
    """A Luhn-valid number with a real brand prefix and length (every brand, every range, every length)."""
    _, ranges, lengths = draw(st.sampled_from(CARD_BRANDS))
    low, high = draw(st.sampled_from(ranges))
    prefix = str(draw(st.integers(min_value=int(low), max_value=int(high))))
    length = draw(st.sampled_from(sorted(lengths)))
    body = prefix + draw(st.text(alphabet="0123456789", min_size=length - 1 - len(prefix), max_size=length - 1 - len(prefix)))
    return luhn_complete(body)


@st.composite
def formatted(draw: Any, digits: str) -> str:
    """Digits split into groups, joined by single spaces or dashes (or nothing)."""
    out, i = [], 0
    while i < len(digits):
        size = draw(st.integers(min_value=1, max_value=6))
        out.append(digits[i : i + size])
        i += size
    seps = [draw(st.sampled_from(["", " ", "-"])) for _ in out[1:]]
    return out[0] + "".join(sep + group for sep, group in zip(seps, out[1:], strict=True))


# Text around the number: no digits touching it (a longer digit run is not a card number).
NO_DIGITS = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="\x00"), max_size=30)


@st.composite
def embedded_cards(draw: Any) -> tuple[str, str]:
    digits = draw(card_numbers())
    if len(set(digits)) == 1:
        digits = "4242424242424242"
    text = draw(formatted(digits))
    before, after = draw(NO_DIGITS), draw(NO_DIGITS)
    return digits, f"{before} {text} {after}"


@given(embedded_cards())
@settings(max_examples=300)
def test_every_luhn_valid_number_with_separators_is_found_and_masked(case):
    digits, text = case
    found = find_card_numbers(text)
    assert found == [mask_card(digits)]
    assert digits not in found[0].replace(" ", "")
    assert found[0].startswith(digits[:4]) and found[0].endswith(digits[-4:])
    with pytest.raises(ToolError) as err:
        refuse_card_numbers(description=text)
    message = str(err.value)
    assert "argument 'description'" in message and "pm_" in message and "Nothing was sent to Stripe" in message
    assert digits not in message.replace(" ", "").replace("-", "")


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_numbers_failing_luhn_are_not_cards(body):
    digits = luhn_complete(body)
    broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    assert find_card_numbers(f"order {broken} shipped") == []


@pytest.mark.parametrize(
    "text",
    [
        "call +1 415-555-0100 or +44 20 7946 0958",
        "invoice 2024-01-15 ref 12345678",
        "4242424242424242424242",  # too long to be a card
        "424242424242",  # 12 digits
        "0000 0000 0000 0000",
        "ids cus_Q1 and pm_card_visa",
    ],
)
def test_ordinary_text_is_not_refused(text):
    assert find_card_numbers(text) == []
    refuse_card_numbers(description=text)


def test_refusal_walks_dict_keys_values_and_lists():
    card = "4000 0566 5566 5556"
    for kwargs, where in [
        ({"metadata": {"note": card}}, "metadata['note']"),
        ({"metadata": {card: "x"}}, "metadata (key"),
        ({"metadata_unset": ["a", card]}, "metadata_unset[1]"),
        ({"address": {"line1": f"Card {card}"}}, "address['line1']"),
    ]:
        name = next(iter(kwargs))
        with pytest.raises(ToolError) as err:
            refuse_card_numbers(name=None, **kwargs)
        assert f"argument '{name}'" in str(err.value) and where in str(err.value)
        assert "5566 5556" not in str(err.value)


def test_redaction_masks_cards_hides_secrets_and_truncates():
    out = redact_value(
        {"description": "pay with 4242-4242-4242-4242 please", "client_secret": "cs_x", "note": "z" * 1000,
         "nested": ["sk_test_sandbox", {"password": "p"}]},
        ["sk_test_sandbox"],
    )  # fmt: skip
    text = json.dumps(out)
    assert "4242-4242-4242-4242" not in text and "4242 **** **** 4242" in text
    assert out["client_secret"] == "[redacted]" and out["nested"][1]["password"] == "[redacted]"
    assert "sk_test_sandbox" not in text
    assert len(out["note"]) < 250


def test_audit_log_appends_one_json_line_per_record(tmp_path):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl", ["sk_test_sandbox"])
    log.record(tool="t", target="cus_1", args={"description": "sk_test_sandbox"}, outcome="ok", request_id="req_1")
    log.record(tool="t", target="cus_2", args={}, outcome="refused")
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "sk_test_sandbox" not in lines[0]
    assert json.loads(lines[1])["outcome"] == "refused"
    assert (tmp_path / "sub" / "audit.jsonl").stat().st_mode & 0o077 == 0


def test_caller_name_accepts_a_string_a_contextvar_or_a_callable():
    from contextvars import ContextVar
    from types import SimpleNamespace

    var: ContextVar[str] = ContextVar("caller")
    assert caller_name(AppDeps(settings=None, stripe=None)) == "local"  # type: ignore[arg-type]  # no caller given
    assert caller_name(SimpleNamespace(caller="bot")) == "bot"
    assert caller_name(SimpleNamespace(caller=var)) == "local"
    var.set("ops-bot")
    assert caller_name(SimpleNamespace(caller=var)) == "ops-bot"
    assert caller_name(SimpleNamespace(caller=lambda: "fn")) == "fn"


# --- through the MCP client: every free-text argument of every write tool ------------------------
FREE_TEXT = [
    ("create_customer", {"email": "x@example.com"}, ["name", "phone", "description", "idempotency_key"]),
    ("create_customer", {"email": "x@example.com"}, ["metadata.note", "metadata.KEY", "address.line1"]),
    ("update_customer", {"customer_id": FIXED_IDS["jane"]}, ["name", "email", "phone", "description"]),
    ("update_customer", {"customer_id": FIXED_IDS["jane"]}, ["metadata_set.note", "metadata_unset.0", "address.city"]),
    ("create_portal_session", {"customer_id": FIXED_IDS["jane"]}, ["return_url"]),
    ("attach_payment_method", {"customer_id": FIXED_IDS["jane"]}, ["payment_method"]),
    ("detach_payment_method", {}, ["payment_method"]),
    ("provision_team_member", {"email": "x@example.com"}, ["given_name", "family_name", "display_name", "role"]),
    ("deactivate_team_member", {}, ["member_id"]),
    ("delete_team_member", {}, ["member_id"]),
    ("add_team_member_to_group", {}, ["group_id", "group_name", "member_id"]),
    ("remove_team_member_from_group", {}, ["group_id", "group_name", "member_id"]),
]
WRITE_TOOLS = {td.name for td in all_write_tools()}
TARGETS = [(tool, base, field) for tool, base, fields in FREE_TEXT for field in fields]


def place(base: dict[str, Any], field: str, text: str) -> dict[str, Any]:
    args = dict(base)
    if "." not in field:
        if field == "return_url":
            text = "https://a.example/?" + text.replace(" ", "-")
        args[field] = text
    else:
        name, sub = field.split(".")
        if sub == "0":
            args[name] = [text]
        elif sub == "KEY":
            # Keys are at most 40 characters: keep the card whole (text[-40:] cut it when the text after was long).
            run = re.search(r"\d[\d -]*\d", text)
            assert run is not None
            args[name] = {run.group(0)[:40]: "v"}
        else:
            args[name] = {sub: text}
    return args


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Any]:
    with running_sandbox() as handle:
        yield handle


@given(case=embedded_cards(), target=st.sampled_from(TARGETS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_card_numbers_refused_in_every_free_text_argument(shared_sandbox, tmp_path_factory, case, target):
    digits, text = case
    tool, base, field = target
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    settings_ = make_settings(shared_sandbox, allow_writes=True, audit_log=audit)  # SCIM on: team writes too
    requests_before = shared_sandbox.sandbox.requests
    scim = shared_sandbox.sandbox.scim
    team_before = json.dumps([scim.users, scim.groups], sort_keys=True, default=str)

    async def run() -> Any:
        async with mcp_client(settings_) as client:
            return await client.call_tool(tool, place(base, field, text))

    result = anyio.run(run)
    assert result.is_error, (tool, field)
    message = result.content[0].text
    assert "card number" in message and "Nothing was sent to Stripe" in message, message
    assert f"argument '{field.split('.')[0]}'" in message
    assert digits not in message.replace(" ", "").replace("-", "")
    assert shared_sandbox.sandbox.requests == requests_before  # not a single request reached Stripe
    assert json.dumps([scim.users, scim.groups], sort_keys=True, default=str) == team_before  # nor changed SCIM
    raw = audit.read_text()
    assert digits not in raw.replace(" ", "").replace("-", "") and '"refused"' in raw


def test_every_write_tool_free_text_argument_is_covered():
    """If someone adds a write tool (any toolset of the registry) or a string argument to one, this
    list must grow with it."""

    async def run() -> dict[str, set[str]]:
        with running_sandbox() as sb:
            async with mcp_client(make_settings(sb, allow_writes=True)) as client:
                tools = (await client.list_tools()).tools
        out: dict[str, set[str]] = {}
        for t in tools:
            if t.name not in WRITE_TOOLS:
                continue
            props = t.input_schema["properties"]
            out[t.name] = {
                k for k, v in props.items() if v.get("type") in ("string", "object", "array") and "pattern" not in v
            }
        return out

    covered: dict[str, set[str]] = {}
    for tool, _, fields in FREE_TEXT:
        covered.setdefault(tool, set()).update(f.split(".")[0] for f in fields)
    listed = anyio.run(run)
    assert set(listed) == WRITE_TOOLS  # every write tool of the registry was listed and checked
    for tool, names in listed.items():
        missing = names - covered.get(tool, set()) - {"confirm", "configuration"}
        assert not missing, f"{tool}: card-number coverage missing for {missing}"
