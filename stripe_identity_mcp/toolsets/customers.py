"""Customers toolset (read): Stripe Customer objects — billing records, not team members."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from stripe_identity_mcp.clients.errors import StripeIdentityError
from stripe_identity_mcp.clients.stripe import StripeClient
from stripe_identity_mcp.models.outputs import CaseVariant, CustomerPage, CustomerSummary, EmailLookup, summarize
from stripe_identity_mcp.models.stripe import Customer
from stripe_identity_mcp.search_query import QueryError, clause, conjunction, validate
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import (
    READ,
    CustomerId,
    Email,
    Timestamp,
    deps,
    next_cursor,
    page_args,
    tool_errors,
)

MAX_EXACT_PAGES = 20  # 2 000 customers with one email is far past any real duplicate problem
MAX_SEARCH_PAGES = 5
LIST_EXPAND = ["data.subscriptions", "data.invoice_settings.default_payment_method"]
SEARCH_LAG = "search lags by up to a minute: customers created or changed very recently may be missing"

Detail = Annotated[Literal["compact", "full"], Field(description="full adds phone, address, balance")]
Cursor = Annotated[str | None, Field(pattern=r"^cus_[A-Za-z0-9]+$")]


async def exact_email_matches(stripe: StripeClient, email: str, expand: list[str]) -> tuple[list[Customer], bool]:
    """Every customer whose email is exactly `email` (Stripe's list filter), across all pages."""
    found: list[Customer] = []
    cursor = None
    for _ in range(MAX_EXACT_PAGES):
        page = await stripe.list_customers(email=email, limit=100, starting_after=cursor, expand=expand)
        found.extend(page.data)
        if not page.has_more or not page.data:
            return found, False
        cursor = page.data[-1].id
    return found, True


async def case_variants(
    stripe: StripeClient, email: str, known: set[str], expand: list[str] | None = None
) -> list[Customer]:
    """Customers whose email equals `email` ignoring case but not exactly (Stripe search; lags)."""
    variants: list[Customer] = []
    page_token = None
    for _ in range(MAX_SEARCH_PAGES):
        # Same expansions as the exact pass: a case variant is shown with the same fields.
        result = await stripe.search_customers(
            clause("email", ":", email), limit=100, page=page_token, expand=expand or LIST_EXPAND
        )
        for customer in result.data:
            if customer.id not in known and customer.email != email and (customer.email or "").lower() == email.lower():
                variants.append(customer)
        if not result.has_more or not result.next_page:
            break
        page_token = result.next_page
    return variants


@dataclass
class EmailPasses:
    exact: list[Customer]
    truncated: bool
    variants: list[Customer]
    search_error: StripeIdentityError | None  # the case-variant pass failed (the exact pass did not)


async def email_passes(stripe: StripeClient, email: str, include_case_variants: bool = True) -> EmailPasses:
    """The exact list pass and the case-variant search pass, concurrently: one round trip, not two.

    The search pass cannot know the exact ids yet; it needs not: a variant's email differs from
    `email` by definition, and ids the exact pass found are dropped afterwards all the same. A
    failing exact pass fails the lookup (the search is cancelled); a failing search is reported.
    """
    exact: list[Customer] = []
    truncated = False
    variants: list[Customer] = []
    failures: dict[str, BaseException] = {}

    async def exact_pass() -> None:
        nonlocal exact, truncated
        try:
            exact, truncated = await exact_email_matches(stripe, email, LIST_EXPAND)
        except Exception as exc:  # re-raised below, unwrapped from the task group
            failures["exact"] = exc
            tg.cancel_scope.cancel()

    async def variant_pass() -> None:
        nonlocal variants
        try:
            variants = await case_variants(stripe, email, set())
        except StripeIdentityError as exc:
            failures["search"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(exact_pass)
        if include_case_variants:
            tg.start_soon(variant_pass)
    if "exact" in failures:
        raise failures["exact"]
    known = {c.id for c in exact}
    search_error = failures.get("search")
    return EmailPasses(
        exact,
        truncated,
        [c for c in variants if c.id not in known],
        search_error if isinstance(search_error, StripeIdentityError) else None,
    )


async def lookup_email(
    stripe: StripeClient,
    email: str,
    mode: str,
    include_case_variants: bool,
    mirror: Path | None = None,
    key_mode: str | None = None,
) -> EmailLookup:
    passes = await email_passes(stripe, email, include_case_variants)
    exact, truncated, variants = passes.exact, passes.truncated, passes.variants
    warnings: list[str] = []
    from_mirror: list[CaseVariant] = []
    if include_case_variants and mirror is not None:
        from stripe_identity_mcp.mirror import lookup
        from stripe_identity_mcp.mirror.store import MirrorError

        try:  # no search lag: the mirror has what the last sync or webhook brought
            found, age = lookup.case_variants(mirror, email, {c.id for c in exact}, key_mode)
            from_mirror = [CaseVariant(id=c["id"], email=c.get("email"), source="mirror") for c in found]
            if from_mirror:
                warnings.append(f"{len(from_mirror)} case variant(s) from the local mirror ({age}).")
        except (MirrorError, sqlite3.Error) as exc:
            warnings.append(f"mirror not used: {exc}")
    if passes.search_error is not None:
        warnings.append(f"case-variant pass skipped: search failed ({passes.search_error.message})")
    if len(exact) > 1:
        warnings.append(f"{len(exact)} customers share this email: Stripe does not deduplicate by email.")
    if truncated:
        warnings.append(f"stopped after {len(exact)} exact matches; use export_customers for the full set.")
    if variants:
        n = len(variants)
        warnings.append(
            f"{n} more customer{'s' * (n != 1)} differ{'s' * (n == 1)} only by case "
            f"(found via search, which lags by up to a minute)."
        )
    if not exact:
        warnings.append(f"no customer has exactly this email in {mode} mode (Stripe compares emails case-sensitively).")
    if include_case_variants and not variants and not from_mirror:
        warnings.append(f"case-variant pass: {SEARCH_LAG}.")
    searched = [CaseVariant(id=c.id, email=c.email) for c in variants if c.id not in {m.id for m in from_mirror}]
    return EmailLookup(
        email=email,
        mode=mode,
        exact_count=len(exact),
        record_count=len(exact) + len(searched) + len(from_mirror),
        customers=[summarize(c) for c in exact],
        case_variants=from_mirror + searched,
        warnings=warnings,
    )


@tool(READ)
async def find_customers_by_email(
    email: Email,
    ctx: Context,
    include_case_variants: Annotated[
        bool, Field(description="also find other-case spellings (via search)")
    ] = True,
) -> EmailLookup:
    """Find every Stripe customer (billing record) with this email, flagging duplicates.

    Customers only; resolve_identity covers team members and Connect accounts too.
    """
    app = deps(ctx)
    with tool_errors(app):
        return await lookup_email(
            app.stripe, email, app.mode_label, include_case_variants, app.settings.mirror, app.settings.mode
        )


@tool(READ)
async def get_customer(
    customer_id: CustomerId,
    ctx: Context,
    detail: Detail = "full",
) -> CustomerSummary:
    """Fetch one Stripe customer by id, with subscription count and default payment method."""
    app = deps(ctx)
    with tool_errors(app):
        customer = await app.stripe.retrieve_customer(
            customer_id, expand=["subscriptions", "invoice_settings.default_payment_method"]
        )
    summary = summarize(customer, detail)
    if customer.deleted:
        summary.note = "this customer was permanently deleted; it cannot be restored or updated"
    return summary


@tool(READ)
async def list_customers(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
    created_gte: Timestamp = None,
    created_lte: Timestamp = None,
    email: Annotated[str | None, Field(max_length=512, description="exact, case-sensitive")] = None,
    detail: Detail = "compact",
) -> CustomerPage:
    """List one page of Stripe customers, newest first; pass next_cursor as starting_after for more."""
    params = page_args(starting_after, ending_before, created_gte, created_lte)
    app = deps(ctx)
    with tool_errors(app):
        page = await app.stripe.list_customers(limit=limit, email=email, expand=LIST_EXPAND, **params)
    return CustomerPage(
        mode=app.mode_label,
        customers=[summarize(c, detail) for c in page.data],
        has_more=page.has_more,
        next_cursor=next_cursor(page.data, page.has_more, backwards=bool(ending_before)),
    )


@tool(READ)
async def search_customers(
    ctx: Context,
    query: Annotated[
        str | None,
        Field(
            max_length=5000,
            description="Stripe search syntax: email:'a@b.com' AND metadata['plan']:'pro'; "
            "fields email name phone created metadata",
        ),
    ] = None,
    name_contains: Annotated[str | None, Field(min_length=3, max_length=200)] = None,
    metadata_key: Annotated[str | None, Field(max_length=40)] = None,
    metadata_value: Annotated[str | None, Field(max_length=500)] = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
    page: Annotated[str | None, Field(max_length=1000, description="previous next_page")] = None,
) -> CustomerPage:
    """Search Stripe customers by query language or by simple fields (escaped for you)."""
    clauses = []
    try:
        if query:
            clauses.append(validate(query))
    except QueryError as exc:
        raise ToolError(f"invalid search query: {exc}") from None
    if name_contains:
        clauses.append(clause("name", "~", name_contains))
    if (metadata_key is None) != (metadata_value is None):
        raise ToolError("metadata_key and metadata_value go together")
    if metadata_key is not None and metadata_value is not None:
        clauses.append(clause("metadata", ":", metadata_value, key=metadata_key))
    if not clauses:
        raise ToolError("give a query or at least one of name_contains / metadata_key+metadata_value")
    if query and len(clauses) > 1 and conjunction(query) == "OR":
        raise ToolError("a query using OR cannot be combined with other fields (Stripe forbids mixing AND/OR)")
    if len(clauses) > 1:
        try:  # the combined query must still be one Stripe accepts (e.g. at most 10 clauses)
            validate(" AND ".join(clauses))
        except QueryError as exc:
            raise ToolError(f"invalid search query (with the other fields added): {exc}") from None
    app = deps(ctx)
    with tool_errors(app):
        result = await app.stripe.search_customers(" AND ".join(clauses), limit=limit, page=page)
    return CustomerPage(
        mode=app.mode_label,
        customers=[summarize(c) for c in result.data],
        has_more=result.has_more,
        next_page=result.next_page,
        warnings=[SEARCH_LAG],
    )


# The write tools are their own module (toolsets/customer_writes.py, same toolset name).
TOOLSET = Toolset(
    name="customers",
    description="Stripe Customer objects (billing records): find by email, get, list, search.",
    read=(find_customers_by_email, get_customer, list_customers, search_customers),
)
