"""The registry decides what is served: writes once, by settings; annotations checked at build time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mcp import Client
from mcp.types import ToolAnnotations

from stripe_identity_mcp.server import build_server
from stripe_identity_mcp.toolsets import REGISTRY, all_read_tools, all_tools, all_write_tools
from stripe_identity_mcp.toolsets.base import MisannotatedTool, PromptDef, Toolset, tool
from stripe_identity_mcp.toolsets.common import DESTRUCTIVE, READ, WRITE
from tests.conftest import make_settings, mcp_client

pytestmark = pytest.mark.anyio

NOWHERE = SimpleNamespace(base_url="http://127.0.0.1:9", scim_base="http://127.0.0.1:9/scim/v2")
READS = {td.name for td in all_read_tools()}
WRITES = {td.name for td in all_write_tools()}


async def _listed(settings) -> dict[str, ToolAnnotations | None]:
    async with mcp_client(settings) as client:
        return {t.name: t.annotations for t in (await client.list_tools()).tools}


def test_every_toolset_is_a_value_with_tools_and_a_description():
    assert REGISTRY and all(isinstance(ts, Toolset) and ts.description for ts in REGISTRY)
    assert WRITES and READS and not READS & WRITES
    assert len({td.name for td in all_tools()}) == len(all_tools())  # no name twice


@pytest.mark.parametrize(
    "flags",
    [{}, {"allow_writes": True, "read_only": True}, {"api_key": "sk_live_sandbox", "allow_writes": True}],
    ids=["default", "read-only-wins", "live-key-without-live-writes"],
)
async def test_writes_off_serves_every_read_tool_and_no_write_tool_of_any_toolset(sandbox, flags):
    listed = await _listed(make_settings(sandbox, **flags))
    assert set(listed) == READS  # every toolset is on (SCIM configured): all reads, not one write
    assert all(a is not None and a.read_only_hint is True for a in listed.values())


async def test_writes_on_serves_the_whole_registry_with_its_annotations(sandbox):
    listed = await _listed(make_settings(sandbox, allow_writes=True))
    assert set(listed) == READS | WRITES
    for td in all_tools():
        assert listed[td.name] == td.annotations, td.name
    destructive = {name for name, a in listed.items() if a is not None and a.destructive_hint}
    assert destructive == {td.name for td in all_write_tools() if td.destructive} and destructive <= WRITES


async def test_without_tools_are_not_registered(sandbox):
    gone = sorted(WRITES)[:2] + sorted(READS - {"describe_access"})[:1]
    async with mcp_client(make_settings(sandbox, allow_writes=True)) as client:
        full = {t.name for t in (await client.list_tools()).tools}
    server = build_server(make_settings(sandbox, allow_writes=True), without_tools=gone)
    assert {t.name for t in await server.list_tools()} == full - set(gone)


@tool(WRITE)
async def sneaky_write() -> str:
    """Changes something, but listed as a read."""
    return "changed"


@tool(READ)
async def harmless_read() -> str:
    """Reads something, but listed as a write."""
    return "read"


@tool(ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=True))
async def unhinted_read() -> str:
    """A read without read_only_hint."""
    return "read"


@tool(DESTRUCTIVE)
async def get_customer() -> str:
    """Same name as a registered tool."""
    return "x"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (Toolset(name="customers", description="x", read=(sneaky_write,)), ["sneaky_write", "read=", "read_only_hint=True"]),
        (Toolset(name="customers", description="x", read=(unhinted_read,)), ["unhinted_read", "read=", "read_only_hint=True"]),
        (Toolset(name="billing", description="x", write=(harmless_read,)), ["harmless_read", "write=", "read_only_hint=False"]),
        (Toolset(name="billing", description="x", write=(get_customer,)), ["get_customer", "'customers'", "'billing'"]),
    ],
    ids=["write-in-read", "read-without-hint", "read-in-write", "duplicate-name"],
)
def test_a_misannotated_tool_stops_build_server_naming_it(bad, words):
    # Writes off: the check covers the whole registry, not only what these settings would serve.
    # Nothing is contacted while building, so no sandbox is needed.
    with pytest.raises(MisannotatedTool) as caught:
        build_server(make_settings(NOWHERE), toolsets=REGISTRY + (bad,))
    for word in words:
        assert word in str(caught.value)



def triage_billing(customer_id: str) -> str:
    """Walk through a billing question for one customer."""
    return f"Look up {customer_id} with list_customer_subscriptions."


TRIAGE = Toolset(name="billing", description="x", prompts=(PromptDef(fn=triage_billing, title="Billing triage"),))


@pytest.mark.parametrize(("toolsets", "listed"), [(None, True), (("connect",), False)], ids=["billing-on", "billing-off"])
async def test_a_toolsets_prompt_is_served_with_its_toolset(sandbox, toolsets, listed):
    server = build_server(make_settings(sandbox, toolsets=toolsets), toolsets=REGISTRY + (TRIAGE,))
    async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert ("triage_billing" in prompts) is listed
        if listed:
            assert prompts["triage_billing"].title == "Billing triage"
            got = await client.get_prompt("triage_billing", {"customer_id": "cus_1"})
            assert "cus_1" in got.messages[0].content.text
