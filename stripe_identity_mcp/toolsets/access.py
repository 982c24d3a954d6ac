"""describe_access: what this server can do with the configured credentials (always registered)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.models.outputs import AccessReport
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import READ, deps


@tool(READ)
async def describe_access(ctx: Context) -> AccessReport:
    """Report mode (test/live), key kind, toolsets, whether writes are on, SCIM, rate budget.

    Call first when unsure what this server may do.
    """
    app = deps(ctx)
    s = app.settings
    scim_note = None
    if not s.scim_configured:
        scim_note = (
            "team toolset absent: set STRIPE_SCIM_TOKEN (Stripe SCIM needs an SSO-enabled organisation) "
            "to list or offboard Dashboard team members"
        )
    elif s.toolsets and "team" not in s.toolsets:
        scim_note = "team toolset not selected by --toolsets"
    return AccessReport(
        mode=app.mode_label,  # type: ignore[arg-type]
        key_kind=s.key_kind,
        api_base=s.api_base,
        api_version=s.api_version,
        toolsets=list(s.enabled_toolsets()),
        writes=s.writes_enabled,
        writes_note=s.writes_off_reason,
        confirm=s.confirm,
        scim_configured=s.scim_configured,
        scim_note=scim_note,
        rate_limit=rate_budget(app),
    )


def rate_budget(app: AppDeps) -> dict[str, Any]:
    """The Stripe client's budgets (global, per endpoint used so far, search, concurrency) and counters;
    the SCIM client's (one bucket) when configured."""
    budget: dict[str, Any] = {
        **app.stripe.pacer.snapshot(),
        "requests": app.stripe.stats.requests,
        "retries": app.stripe.stats.retries,
        "rate_limited": app.stripe.stats.rate_limited,
        "lock_timeouts": app.stripe.stats.lock_timeouts,
    }
    if app.scim is not None:
        stats = app.scim.stats
        # SCIM sends no rate-limit headers: drop the server_* fields that would always be null.
        budget["scim"] = {
            **{k: v for k, v in app.scim.bucket.snapshot().items() if v is not None},
            "requests": stats.requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
        }
    return budget


TOOLSET = Toolset(
    name="access",
    description="What this server may do with the configured credentials (always served).",
    read=(describe_access,),
    always_on=True,
)
