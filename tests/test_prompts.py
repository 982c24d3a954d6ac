"""Prompts from prompts/*.md: listed and rendered through a real MCP client, naming only real tools."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from stripe_identity_mcp.prompts import PromptFileError, load_prompt, load_prompts, prompts_dir
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
EXPECTED = {"support_lookup", "offboard_team_member", "reconcile_duplicate_customers", "provision_paying_customer"}
# Backticked snake_case words in prompt text are tool references (`resolve_identity`).
TOOL_REF = re.compile(r"`([a-z]+(?:_[a-z]+)+)`")
ARGS = {
    "email": "jane@acme.com",
    "question": "is she billed twice?",
    "reason": "left the company",
    "created_after": "2026-01-01",
    "name": "Jane Doe",
    "payment_method": "pm_card_visa",
    "return_url": "https://example.com/account",
}


def required_args(prompt) -> dict[str, str]:
    return {a.name: ARGS[a.name] for a in prompt.arguments or [] if a.required}


async def test_four_prompts_are_listed_with_arguments(sandbox, protocol_mode):
    async with mcp_client(make_settings(sandbox), mode=protocol_mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == EXPECTED
    for prompt in prompts.values():
        assert prompt.description and prompt.arguments
        assert all(a.description for a in prompt.arguments)
    assert [a.name for a in prompts["support_lookup"].arguments if a.required] == ["email"]
    assert {a.name for a in prompts["provision_paying_customer"].arguments if a.required} == {
        "email", "payment_method"
    }  # fmt: skip


async def test_each_prompt_renders_its_arguments_and_names_only_existing_tools(sandbox, protocol_mode):
    settings = make_settings(sandbox, allow_writes=True)  # SCIM configured too: every tool present
    async with mcp_client(settings, mode=protocol_mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        prompts = (await client.list_prompts()).prompts
        for prompt in prompts:
            everything = {a.name: ARGS[a.name] for a in prompt.arguments}
            for args in (required_args(prompt), everything):
                result = await client.get_prompt(prompt.name, args)
                [message] = result.messages
                text = message.content.text
                assert message.role == "user"
                assert "{{" not in text and "}}" not in text, prompt.name
                for value in args.values():
                    assert value in text, (prompt.name, value)
                mentioned = set(TOOL_REF.findall(text))
                assert mentioned, prompt.name
                assert mentioned <= tools, f"{prompt.name} names missing tools {sorted(mentioned - tools)}"


async def test_prompts_reference_the_workflow_tools(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        texts = {}
        for prompt in (await client.list_prompts()).prompts:
            result = await client.get_prompt(prompt.name, required_args(prompt))
            texts[prompt.name] = result.messages[0].content.text
    assert {"resolve_identity", "create_portal_session"} <= set(TOOL_REF.findall(texts["support_lookup"]))
    assert {"get_team_member", "deactivate_team_member"} <= set(TOOL_REF.findall(texts["offboard_team_member"]))
    assert "roll" in texts["offboard_team_member"] and "API keys" in texts["offboard_team_member"]
    # Issue 15: offboarding covers groups and says truthfully where roles come from.
    offboard = " ".join(texts["offboard_team_member"].split())
    assert "groups_before" in offboard and "mapping of those groups to roles" in offboard and "not visible over SCIM" in offboard
    assert {"find_duplicate_customers", "find_customers_by_email", "delete_customer"} <= set(
        TOOL_REF.findall(texts["reconcile_duplicate_customers"])
    )
    assert "Never delete without explicit confirmation" in texts["reconcile_duplicate_customers"]
    steps = TOOL_REF.findall(texts["provision_paying_customer"])
    order = ["create_customer", "attach_payment_method", "create_portal_session"]
    assert [s for s in steps if s in order] == order


async def test_missing_required_argument_is_an_error(sandbox):
    async with mcp_client(make_settings(sandbox)) as client:
        with pytest.raises(MCPError):
            await client.get_prompt("support_lookup", {})
        with pytest.raises(MCPError):
            await client.get_prompt("provision_paying_customer", {"email": "a@b.co"})
        with pytest.raises(MCPError):
            await client.get_prompt("no_such_prompt", {})
        with pytest.raises(MCPError, match="unknown arguments"):
            await client.get_prompt("support_lookup", {"email": "a@b.co", "colour": "red"})


def test_served_from_the_repo_dir_and_packaged_into_wheels():
    assert prompts_dir() == REPO / "prompts"
    assert {p.name for p in load_prompts()} == EXPECTED
    force = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert force["force-include"]["prompts"] == "stripe_identity_mcp/_prompts"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no front matter\n", "front matter"),
        ("---\nname: x\ndescription: d\n", "not closed"),
        ("---\ndescription: d\n---\nbody\n", "name"),
        ("---\nname: Bad-Name\ndescription: d\n---\n", "snake_case"),
        ("---\nname: x\n---\nbody\n", "description"),
        ("---\nname: x\ndescription: d\n---\nHello {{who}}\n", "who"),
        ("---\nname: x\ndescription: d\narguments:\n  - name: a\n    colour: red\n---\n", "colour"),
        ("---\nname: x\ndescription: d\n  stray: indent\n---\n", "indented"),
    ],
)
def test_malformed_prompt_files_are_refused_with_the_reason(tmp_path, text, problem):
    path = tmp_path / "p.md"
    path.write_text(text)
    with pytest.raises(PromptFileError, match=problem):
        load_prompt(path)


def test_front_matter_defaults_fill_optional_arguments(tmp_path):
    path = tmp_path / "p.md"
    path.write_text(
        "---\nname: greet\ndescription: 'Say hi: politely'\narguments:\n"
        "  - name: who\n    description: person\n    required: true\n"
        "  - name: tone\n    default: (friendly)\n---\nHi {{ who }}, tone {{tone}}.\n"
    )
    spec = load_prompt(path)
    assert spec.description == "Say hi: politely"
    assert spec.render({"who": "Ann"}) == "Hi Ann, tone (friendly).\n"
    assert spec.render({"who": "Ann", "tone": "dry"}) == "Hi Ann, tone dry.\n"
    with pytest.raises(ValueError, match="who"):
        spec.render({})
