"""`stripe-identity-mcp demo`: a scripted conversation against the embedded sandbox, as a transcript.

Starts the sandbox in this process, starts the real server as a stdio subprocess (exactly what an
MCP client launches), drives it with an MCP client and prints what was asked and answered. This is
not the stdio server, so printing to stdout is fine here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

SANDBOX_KEY = "sk_test_sandbox"
SCIM_TOKEN = "scim_sandbox"
RETURN_URL = "https://example.com/account"
WIDTH = 100


class DemoError(RuntimeError):
    pass


class Transcript:
    def __init__(self, raw: bool) -> None:
        self.raw = raw

    def out(self, text: str = "") -> None:
        print(text, flush=True)

    def section(self, title: str) -> None:
        self.out()
        self.out(f"── {title} " + "─" * max(3, WIDTH - len(title) - 4))

    def user(self, text: str) -> None:
        self.out(f"user       › {text}")

    def call(self, tool: str, args: dict[str, Any]) -> None:
        self.out(f"assistant  → {tool} {json.dumps(args)}")

    def server(self, lines: list[str]) -> None:
        for i, line in enumerate(lines):
            prefix = "server     ← " if i == 0 else " " * 13
            wrapped = textwrap.wrap(line, WIDTH - 13, subsequent_indent="    ") or [""]
            self.out(prefix + wrapped[0])
            for more in wrapped[1:]:
                self.out(" " * 13 + more)

    def dump(self, data: Any) -> None:
        if self.raw:
            self.out(textwrap.indent(json.dumps(data, indent=2, ensure_ascii=False), " " * 13))


def server_env(base_url: str, scim_base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update(
        {
            "STRIPE_API_KEY": SANDBOX_KEY,
            "STRIPE_API_BASE": base_url,
            "STRIPE_SCIM_BASE": scim_base,
            "STRIPE_SCIM_TOKEN": SCIM_TOKEN,
            "STRIPE_IDENTITY_MCP_SANDBOX": "true",
            "STRIPE_IDENTITY_MCP_ALLOW_WRITES": "true",
            "STRIPE_IDENTITY_MCP_LOG_LEVEL": "WARNING",
        }
    )
    return env


@asynccontextmanager
async def connect(base_url: str, scim_base: str, in_process: bool, errlog: Any) -> AsyncIterator[Any]:
    from mcp import Client

    if in_process:
        from pydantic import SecretStr

        from stripe_identity_mcp.server import build_server
        from stripe_identity_mcp.settings import Settings

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            api_key=SecretStr(SANDBOX_KEY),
            api_base=base_url,
            scim_base=scim_base,
            scim_token=SecretStr(SCIM_TOKEN),
            sandbox=True,
            allow_writes=True,
        )
        async with Client(build_server(settings)) as client:
            yield client
        return
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "stripe_identity_mcp", "serve", "--api-base", base_url, "--scim-base", scim_base],
        env=server_env(base_url, scim_base),
        cwd=tempfile.gettempdir(),  # away from any .env in the working directory
    )
    async with Client(stdio_client(params, errlog=errlog)) as client:
        yield client


async def call(t: Transcript, client: Any, tool: str, args: dict[str, Any], *, expect_error: bool = False) -> Any:
    t.call(tool, args)
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""
    if bool(result.is_error) != expect_error:
        raise DemoError(f"{tool} {'succeeded' if expect_error else 'failed'} unexpectedly: {text}")
    return text if result.is_error else result.structured_content


def describe_identity(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['email']} in {report['mode']} mode:"]
    for c in report.get("customers", []):
        bits = [f"[customer]        {c['id']}  {c.get('email')}  {c.get('name') or ''}".rstrip()]
        bits.append("exact email" if c.get("match") == "exact" else "differs only by case")
        if c.get("subscriptions") is not None:
            bits.append(f"{c['subscriptions']} active subscription(s)")
        if c.get("default_payment_method"):
            bits.append(f"default {c['default_payment_method']}")
        lines.append("  " + ", ".join(bits))
    member = report.get("team_member")
    if member:
        state = "ACTIVE" if member.get("active") else "INACTIVE"
        lines.append(f"  [team_member]     {member['id']}  {member.get('email')}  {state}")
    else:
        lines.append(f"  [team_member]     {report['team_status']}")
    for a in report.get("connect_accounts", []):
        lines.append(
            f"  [connect_account] {a['id']}  {a.get('business_name')}  ({a.get('type')}, {a.get('country')}, "
            f"charges {'on' if a.get('charges_enabled') else 'off'})"
        )
    for warning in report.get("warnings", []):
        lines.append(f"  ⚠ {warning}")
    return lines


def assistant_summary(report: dict[str, Any]) -> str:
    customers = report.get("customers", [])
    variants = sum(1 for c in customers if c.get("match") == "case_variant")
    says = []
    if len(customers) > 1:
        case = f" ({variants} differing only by letter case)" if variants else ""
        says.append(f"{len(customers)} customer records share this email{case}, so double billing is plausible;")
        says.append("I will ask which one is hers before changing anything.")
    elif customers:
        says.append(f"One customer record ({customers[0]['id']}).")
    else:
        says.append("No customer record.")
    status = report.get("team_status")
    if status == "inactive":
        says.append("Her Dashboard login was removed, but API keys she could see stay valid until rotated.")
    elif status == "active":
        says.append("She also has an active Dashboard login (a separate thing from her customer record).")
    for account in report.get("connect_accounts", []):
        says.append(f"{account.get('business_name') or account['id']} is a separate Connect account.")
    return " ".join(says)


async def conversation(t: Transcript, client: Any, email: str) -> None:
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    prompts = sorted(p.name for p in (await client.list_prompts()).prompts)
    t.out(f"server offers {len(tools)} tools and {len(prompts)} prompts ({', '.join(prompts)})")

    t.section("1. Support lookup: one email, three kinds of user")
    t.user(f"Who is {email}? She says she is being billed twice.")
    report = await call(t, client, "resolve_identity", {"email": email})
    t.server(describe_identity(report))
    t.dump(report)
    customers = [c for c in report["customers"] if c.get("match") == "exact"] or report["customers"]
    t.out(textwrap.fill(assistant_summary(report), WIDTH, initial_indent="assistant  : ", subsequent_indent=" " * 13))

    t.section("2. A billing-portal link for the customer the agent confirmed")
    if not customers:
        t.out(f"(skipped: {email} has no customer record in the sandbox)")
    else:
        await portal_link(t, client, customers[0]["id"])
    await offboard(t, client, "omar@globex.com")


async def portal_link(t: Transcript, client: Any, customer_id: str) -> None:
    t.user(f"Send her a billing-portal link for {customer_id} so she can check her subscriptions.")
    session = await call(t, client, "create_portal_session", {"customer_id": customer_id, "return_url": RETURN_URL})
    t.server([f"portal URL: {session['url']}", f"note: {session.get('note', '')}"])
    t.dump(session)


async def offboard(t: Transcript, client: Any, leaver: str) -> None:
    t.section("3. Offboarding a Dashboard team member: refused without confirmation, then done")
    t.user(f"{leaver} left the company. Remove his Stripe Dashboard access.")
    member = await call(t, client, "get_team_member", {"email": leaver})
    m = member.get("member", member)
    t.server([f"[team_member] {m['id']}  {m.get('email')}  {m.get('display_name') or ''}  active={m.get('active')}"])
    refusal = await call(t, client, "deactivate_team_member", {"member_id": m["id"]}, expect_error=True)
    t.server([f"REFUSED: {refusal}"])
    t.user("Yes, I confirm: deactivate him.")
    done = await call(t, client, "deactivate_team_member", {"member_id": m["id"], "confirm": leaver})
    lines = [f"{done.get('action', 'deactivated')}: {done.get('id')} ({done.get('email')})"]
    if done.get("note"):
        lines.append(f"note: {done['note']}")
    lines.append(f"⚠ API keys: {done.get('api_keys_warning') or ' '.join(done.get('warnings', []))}")
    t.server(lines)
    t.dump(done)


async def run(args: argparse.Namespace) -> int:
    from stripe_identity_mcp.sandbox import SandboxConfig, serve_in_thread

    t = Transcript(raw=args.raw)
    with serve_in_thread(SandboxConfig()) as sb, tempfile.TemporaryFile("w+") as errlog:
        how = "in-process" if args.in_process else "`python -m stripe_identity_mcp serve` over stdio"
        t.out("stripe-identity-mcp demo: a scripted conversation against the embedded Stripe + SCIM sandbox")
        t.out(f"sandbox at {sb.base_url} (key {SANDBOX_KEY}); MCP server: {how}, writes enabled, SCIM configured")
        failure: DemoError | None = None
        try:
            async with connect(sb.base_url, sb.scim_base, args.in_process, errlog) as client:
                await conversation(t, client, args.email)
        except* DemoError as group:  # the client's task group wraps what the conversation raised
            failure = group.exceptions[0]  # type: ignore[assignment]
        if failure is not None:
            print(f"demo failed: {failure}", file=sys.stderr)
            errlog.seek(0)
            sys.stderr.write(errlog.read()[-4000:])
            return 1
    t.section("Done")
    t.out("Nothing above touched a real Stripe account. Next: `stripe-identity-mcp serve --sandbox` in your MCP")
    t.out("client (see README), or set STRIPE_API_KEY (rk_test_… recommended) to use your own test data.")
    return 0


def main_demo(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stripe-identity-mcp demo",
        description="Start the sandbox and the server, drive a scripted support/offboarding conversation "
        "through a real MCP client and print the transcript. Touches no real Stripe account.",
    )
    parser.add_argument("--email", default="jane@acme.com", help="email for the support lookup (default jane@acme.com)")
    parser.add_argument("--raw", action="store_true", help="also print each tool's JSON result")
    parser.add_argument("--in-process", action="store_true", help="in-memory MCP client instead of a stdio subprocess")
    args = parser.parse_args(argv)
    return anyio.run(run, args)
