"""Export toolset (read): every customer to a file, and the duplicate-email report. Writes nothing to Stripe."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from stripe_identity_mcp.clients.errors import StripeIdentityError
from stripe_identity_mcp.models.outputs import Compact
from stripe_identity_mcp.settings import MIN_EXPORT_RATE
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import READ, Timestamp, deps, iso, to_unix, tool_error

PROGRESS_EVERY_S = 0.25


class ExportSummary(Compact):
    path: str
    format: str
    count: int
    sha256: str
    seconds: float
    requests: int
    retries: int
    rate_limited: int
    max_rate: float | None
    requests_per_s: float
    created_gte: str
    created_lt: str = Field(description="cut-off fixed at start: later customers are not included")
    resumed: bool


class DuplicateMember(Compact):
    id: str
    email: str
    name: str | None = None
    created: str | None = None
    subscriptions: int | None = Field(
        None, description="active (incl. trialing/past_due/unpaid) subscriptions; null from the mirror (not held)"
    )
    default_payment_method: str | None = None


class DuplicateGroup(Compact):
    email: str
    count: int
    customers: list[DuplicateMember]


class DuplicateReport(Compact):
    mode: str
    customers_scanned: int
    groups_total: int
    groups: list[DuplicateGroup]
    truncated: bool
    created_gte: str
    created_lt: str
    normalisation: str
    seconds: float
    requests: int
    source: str | None = Field(None, description="'mirror (synced …s ago)' when answered from --mirror")


NORMALISATION = (
    "emails compared lower-cased, trimmed, NFC, domain without trailing dot and in punycode; "
    "Gmail dots/+tags are NOT merged (different mailboxes on most providers)"
)


class _Throttle:
    """Forward engine progress to the MCP client at most every PROGRESS_EVERY_S (first page always)."""

    def __init__(self, ctx: Context, what: str) -> None:
        self.ctx, self.what, self.last = ctx, what, 0.0

    async def __call__(self, p: object) -> None:
        now = time.monotonic()
        if self.last and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        count, requests = getattr(p, "count", 0), getattr(p, "requests", 0)
        await self.ctx.report_progress(count, None, f"{count} customers {self.what}, {requests} requests")


@tool(READ)
async def export_customers(
    filename: Annotated[str, Field(min_length=1, max_length=255, description="in the export dir")],
    ctx: Context,
    # Described tersely: every tool definition shares one context budget (tests/test_catalogue.py).
    format: Annotated[Literal["jsonl", "csv"] | None, Field(description="default: from extension")] = None,
    created_gte: Timestamp = None,
    created_lt: Timestamp = None,
    resume: Annotated[bool, Field(description="continue an interrupted one")] = False,
    overwrite: bool = False,
    max_rate: Annotated[float | None, Field(ge=MIN_EXPORT_RATE, description="requests/s")] = None,  # see Settings.export_rate
) -> ExportSummary:
    """Export all Stripe customers (or a created range) to JSONL/CSV; resumable; omits ones created after start."""
    from stripe_identity_mcp.export.engine import ExportError, run_export
    from stripe_identity_mcp.export.paths import PathRefused, confine
    from stripe_identity_mcp.export.writers import format_for

    app = deps(ctx)
    try:
        out = confine(app.settings.export_dir, filename)
    except PathRefused as exc:
        raise ToolError(f"refused: {exc}. Give a plain file name such as customers.{format or 'jsonl'}") from None
    try:
        fmt = format_for(filename, format)  # the name the user gave, not a symlink's target
    except ValueError as exc:
        raise ToolError(f"refused: {exc}") from None
    if fmt is None and not resume:
        raise ToolError("give format (jsonl or csv), or a filename ending in .jsonl or .csv")
    gte, lt = to_unix(created_gte, "created_gte"), to_unix(created_lt, "created_lt")
    try:
        result = await run_export(
            app.stripe,
            out,
            fmt,
            created_gte=gte,
            created_lt=lt,
            resume=resume,
            overwrite=overwrite,
            on_progress=_Throttle(ctx, "exported"),
            mode=app.settings.mode,
            max_rate=app.settings.export_rate(max_rate),
        )
    except ExportError as exc:
        raise ToolError(str(exc)) from None
    except StripeIdentityError as exc:
        error = tool_error(exc, app)
        raise ToolError(f"{error} The checkpoint was saved: call again with resume=true.") from None
    except OSError as exc:
        raise ToolError(f"cannot write {filename}: {exc.strerror or exc}") from None
    await ctx.report_progress(result.count, result.count, f"done: {result.count} customers")
    return ExportSummary(
        path=result.path,
        format=result.format,
        count=result.count,
        sha256=result.sha256,
        seconds=result.seconds,
        requests=result.requests,
        retries=result.retries,
        rate_limited=result.rate_limited,
        max_rate=result.max_rate,
        requests_per_s=result.requests_per_s,
        created_gte=iso(result.created_gte) or "",
        created_lt=iso(result.created_lt) or "",
        resumed=result.resumed,
    )


@tool(READ)
async def find_duplicate_customers(
    ctx: Context,
    created_gte: Timestamp = None,
    created_lt: Timestamp = None,
    max_groups: Annotated[int, Field(ge=1, le=500)] = 50,
) -> DuplicateReport:
    """Group Stripe customers sharing an email (case-insensitive) to pick which to keep.

    Scans every customer in the range; shows subscriptions and payment method.
    """
    from stripe_identity_mcp.export.duplicates import find_duplicates
    from stripe_identity_mcp.export.engine import ExportError

    app = deps(ctx)
    source = None
    try:
        if app.settings.mirror is not None:  # milliseconds, no request; labelled with the mirror's age
            from stripe_identity_mcp.mirror import lookup
            from stripe_identity_mcp.mirror.store import MirrorError

            try:
                scan, age = lookup.duplicates(
                    app.settings.mirror,
                    created_gte=to_unix(created_gte, "created_gte"),
                    created_lt=to_unix(created_lt, "created_lt"),
                    max_groups=max_groups,
                    mode=app.settings.mode,
                )
            except MirrorError as exc:
                raise ToolError(f"{exc} (or serve without --mirror to scan Stripe)") from None
            source = f"mirror ({age}); subscriptions not held: get_customer shows them"
        else:
            scan = await find_duplicates(
                app.stripe,
                created_gte=to_unix(created_gte, "created_gte"),
                created_lt=to_unix(created_lt, "created_lt"),
                max_groups=max_groups,
                on_progress=_Throttle(ctx, "scanned"),
            )
    except ExportError as exc:
        raise ToolError(str(exc)) from None
    except StripeIdentityError as exc:
        raise tool_error(exc, app) from None
    groups = [
        DuplicateGroup(
            email=email,
            count=len(members),
            customers=[
                DuplicateMember(
                    id=m.id,
                    email=m.email,
                    name=m.name,
                    created=iso(m.created),
                    subscriptions=None if source else m.subscriptions,
                    default_payment_method=m.default_payment_method,
                )
                for m in members
            ],
        )
        for email, members in scan.groups
    ]
    return DuplicateReport(
        mode=app.mode_label,
        customers_scanned=scan.customers_scanned,
        groups_total=scan.groups_total,
        groups=groups,
        truncated=scan.groups_total > len(groups),
        created_gte=iso(scan.created_gte) or "",
        created_lt=iso(scan.created_lt) or "",
        normalisation=NORMALISATION,
        seconds=scan.seconds,
        requests=scan.requests,
        source=source,
    )


TOOLSET = Toolset(
    name="export",
    description="Every customer to a file, and the duplicate-email report (nothing written to Stripe).",
    read=(export_customers, find_duplicate_customers),
)
