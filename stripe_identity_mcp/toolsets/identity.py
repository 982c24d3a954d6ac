"""Identity toolset: one email across Stripe's three user concepts, plus read-only resources.

`resolve_identity` asks customers, SCIM team members and Connect accounts concurrently; a failure or
missing credential in one part becomes a note on that part, never a failed answer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

from stripe_identity_mcp.cards import CARD_HELP, excerpt, find_card_numbers
from stripe_identity_mcp.clients.errors import NotFoundError, StripeIdentityError
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.models.identity import (
    ConnectAccountSummary,
    IdentityCustomer,
    IdentityReport,
    TeamMemberRecord,
    summarize_account,
)
from stripe_identity_mcp.models.outputs import summarize
from stripe_identity_mcp.toolsets.base import Toolset, resource, tool
from stripe_identity_mcp.toolsets.common import READ, deps, tool_error
from stripe_identity_mcp.toolsets.customers import email_passes

log = logging.getLogger(__name__)

MAX_ACCOUNT_PAGES = 10  # Stripe cannot filter accounts by email: scan at most 1 000 (newest first)
ACCOUNT_PAGE_SIZE = 100
NOT_CONFIGURED = (
    "not configured: set STRIPE_SCIM_TOKEN (Stripe SCIM needs an SSO organisation) to include Dashboard team members"
)
API_KEY_WARNING = (
    "team member {who} is deactivated/removed, but API keys stay valid until rotated: "
    "roll every key they could see (Dashboard → Developers → API keys)."
)

AnyCaseEmail = Annotated[str, Field(min_length=3, max_length=512, pattern=r"^[^@\s]+@[^@\s]+$")]

ID_SHAPES = {
    "customer": re.compile(r"^cus_[A-Za-z0-9]+$"),
    "team_member": re.compile(r"^[A-Za-z0-9-]+$"),
    "connect_account": re.compile(r"^acct_[A-Za-z0-9]+$"),
}


def _message(exc: Exception, app: AppDeps) -> str:
    if isinstance(exc, StripeIdentityError):
        return str(tool_error(exc, app))
    log.exception("resolve_identity part failed unexpectedly")
    return "failed unexpectedly (details in the server log)"


def team_record(user: Any) -> TeamMemberRecord:
    groups = getattr(user, "groups", None)
    return TeamMemberRecord(
        id=user.id,
        email=getattr(user, "userName", None),
        name=getattr(user, "displayName", None),
        active=getattr(user, "active", None),
        groups=None if groups is None else [g.display or g.value for g in groups],
    )


async def _customers(app: AppDeps, email: str, report: IdentityReport) -> None:
    passes = await email_passes(app.stripe, email)  # both passes at once: one round trip
    exact, truncated, variants = passes.exact, passes.truncated, passes.variants
    if passes.search_error is not None:
        report.warnings.append(
            f"customers: case-variant search failed, only exact matches shown ({passes.search_error.message})."
        )
    report.customers = [IdentityCustomer(**summarize(c).model_dump()) for c in exact]
    report.customers += [IdentityCustomer(**summarize(c).model_dump(), match="case_variant") for c in variants]
    n, v = len(exact), len(variants)
    if n + v > 1:
        ids = ", ".join(c.id for c in report.customers)
        split = f" ({n} exact, {v} differing only by letter case)" if v else ""
        report.warnings.append(
            f"duplicate customers: {n + v} customer records for this email{split}: {ids}. "
            "Stripe does not deduplicate; ask which one before acting."
        )
    if truncated:
        report.warnings.append(f"customers: stopped after {n} exact matches; export_customers has them all.")
    deleted = [c.id for c in report.customers if c.deleted]
    if deleted:
        report.warnings.append(f"customers: {', '.join(deleted)} deleted (permanent; cannot be restored or updated).")
    lag = "case pass uses search, lags up to 1 min"
    if report.customers:
        report.notes["customers"] = f"{n} exact + {v} case variant; {lag}"
    else:
        report.notes["customers"] = f"none in {app.mode_label} mode (deleted customers are not listed); {lag}"


async def _team(app: AppDeps, email: str, report: IdentityReport) -> None:
    if app.scim is None:
        report.team_status = "not configured"
        report.notes["team_member"] = NOT_CONFIGURED
        return
    user = await app.scim.find_by_email(email)
    if user is None:
        report.team_status = "absent"
        report.notes["team_member"] = "no Dashboard team member (SCIM user) has this email"
        return
    record = team_record(user)
    report.team_member = record
    if record.active is False:
        report.team_status = "inactive"
        report.notes["team_member"] = "SCIM user deactivated (cannot log in)"
        report.warnings.append(API_KEY_WARNING.format(who=record.email or record.id))
    else:
        report.team_status = "active"
        report.notes["team_member"] = (
            "active Dashboard login (separate from customer records); roles come from SAML at sign-in or a "
            "Dashboard group-to-role mapping (not visible over SCIM)"
        )


async def _connect(app: AppDeps, email: str, report: IdentityReport) -> None:
    wanted = email.lower()
    found: list[ConnectAccountSummary] = []
    cursor = None
    scanned = 0
    bounded = False
    for page_no in range(MAX_ACCOUNT_PAGES):
        page = await app.stripe.list_accounts(limit=ACCOUNT_PAGE_SIZE, starting_after=cursor)
        scanned += len(page.data)
        found.extend(summarize_account(a) for a in page.data if (a.email or "").lower() == wanted)
        if not page.has_more or not page.data:
            break
        cursor = page.data[-1].id
        bounded = page_no == MAX_ACCOUNT_PAGES - 1
    report.connect_accounts = found
    note = f"{len(found)} of {scanned} scanned match (no email filter in Stripe; case-insensitive)"
    if bounded:
        note += f"; scan bounded to the newest {scanned}, older accounts not checked"
        report.warnings.append(f"connect: only the newest {scanned} Connect accounts were scanned.")
    report.notes["connect_accounts"] = note


async def resolve(app: AppDeps, email: str) -> IdentityReport:
    report = IdentityReport(email=email, mode=app.mode_label, team_status="error")
    parts: dict[str, Callable[[AppDeps, str, IdentityReport], Awaitable[None]]] = {
        "customers": _customers,
        "team_member": _team,
        "connect_accounts": _connect,
    }

    async def run(name: str) -> None:
        try:
            await parts[name](app, email, report)
        except Exception as exc:  # one part failing must not fail the others
            report.notes[name] = "error: " + _message(exc, app)

    async with anyio.create_task_group() as tg:
        for name in parts:
            tg.start_soon(run, name)
    mode = app.settings.mode
    report.warnings.append(
        f"mode: customers and Connect accounts searched in {mode} mode only (each mode has its own); "
        "team members are not per mode."
    )
    report.notes = {k: report.notes[k] for k in parts if k in report.notes}
    return report


MAX_ID_CHARS = 255  # Stripe object ids (and the tools' id arguments) are at most 255 characters


def _check_id(kind: str, value: str) -> str:
    # Resource URIs are caller text like tool arguments (card_guard covers only tools): a card
    # number in one is neither sent to Stripe/SCIM nor echoed back.
    if find_card_numbers(value):
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"invalid {kind} id: it looks like a card number; {CARD_HELP}. Nothing was sent to Stripe.",
        )
    if (
        not value
        or len(value) > MAX_ID_CHARS
        or ".." in value
        or "/" in value
        or "%" in value
        or not ID_SHAPES[kind].fullmatch(value)
    ):
        raise MCPError(code=INVALID_PARAMS, message=f"invalid {kind} id {excerpt(value)}")
    return value


def _json(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)


async def _read(app: AppDeps, fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await fn()
    except NotFoundError as exc:  # SEP-2164: a missing instance is invalid params (-32602), not an internal error
        raise ResourceNotFoundError(str(tool_error(exc, app))) from None
    except StripeIdentityError as exc:
        raise ResourceError(str(tool_error(exc, app))) from None


@tool(READ)
async def resolve_identity(email: AnyCaseEmail, ctx: Context) -> IdentityReport:
    """Look up one email as customers, Dashboard team member and Connect accounts, each labelled.

    Use first for "who is x@y.com". Warnings flag duplicates, removed members' live API keys, mode.
    """
    return await resolve(deps(ctx), email)


@resource(
    "stripe://customers/{customer_id}",
    name="customer",
    description="A Stripe customer (billing record) as compact JSON.",
    mime_type="application/json",
)
async def customer_resource(customer_id: str, ctx: Context) -> str:
    app = deps(ctx)
    _check_id("customer", customer_id)
    customer = await _read(
        app,
        lambda: app.stripe.retrieve_customer(
            customer_id, expand=["subscriptions", "invoice_settings.default_payment_method"]
        ),
    )
    return _json(IdentityCustomer(**summarize(customer, "full").model_dump()))


@resource(
    "stripe://accounts/{account_id}",
    name="connect_account",
    description="A Connect account as compact JSON.",
    mime_type="application/json",
)
async def account_resource(account_id: str, ctx: Context) -> str:
    app = deps(ctx)
    _check_id("connect_account", account_id)
    return _json(summarize_account(await _read(app, lambda: app.stripe.retrieve_account(account_id))))


@resource(
    "stripe://team-members/{member_id}",
    name="team_member",
    description="A Dashboard team member (SCIM user) as compact JSON.",
    mime_type="application/json",
    needs_scim=True,
)
async def team_member_resource(member_id: str, ctx: Context) -> str:
    app = deps(ctx)
    _check_id("team_member", member_id)
    if app.scim is None:
        raise ResourceError(NOT_CONFIGURED)
    scim = app.scim
    record = team_record(await _read(app, lambda: scim.get_user(member_id)))
    out = json.loads(_json(record))
    if record.active is False:
        out["warning"] = API_KEY_WARNING.format(who=record.email or record.id)
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


TOOLSET = Toolset(
    name="identity",
    description="One email across customers, team members and Connect accounts; read-only resources.",
    read=(resolve_identity,),
    resources=(customer_resource, account_resource, team_member_resource),
)
