"""Connect toolset (read): connected accounts — businesses on a platform, not customers or team members."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from stripe_identity_mcp.models.identity import AccountPage, ConnectAccountSummary, summarize_account
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import READ, Timestamp, deps, next_cursor, page_args, tool_errors

ACCOUNT_ID = r"^acct_[A-Za-z0-9]+$"
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID, max_length=255)]
Cursor = Annotated[str | None, Field(pattern=ACCOUNT_ID, max_length=255)]


@tool(READ)
async def list_connected_accounts(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
    created_gte: Timestamp = None,
    created_lte: Timestamp = None,
) -> AccountPage:
    """List Connect accounts (businesses on the platform; not customers or team members), newest first."""
    params = page_args(starting_after, ending_before, created_gte, created_lte)
    app = deps(ctx)
    with tool_errors(app):
        page = await app.stripe.list_accounts(limit=limit, **params)
    return AccountPage(
        mode=app.mode_label,
        accounts=[summarize_account(a) for a in page.data],
        has_more=page.has_more,
        next_cursor=next_cursor(page.data, page.has_more, backwards=bool(ending_before)),
    )


@tool(READ)
async def get_connected_account(account_id: AccountId, ctx: Context) -> ConnectAccountSummary:
    """Get one Connect account: type, email, business, charges/payouts enabled, requirements due."""
    app = deps(ctx)
    with tool_errors(app):
        return summarize_account(await app.stripe.retrieve_account(account_id))


TOOLSET = Toolset(
    name="connect",
    description="Connect accounts: businesses on the platform (not customers, not team members).",
    read=(list_connected_accounts, get_connected_account),
)
