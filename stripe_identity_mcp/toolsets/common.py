"""What every toolset shares: annotations, dependency access, error mapping, compact shapes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from stripe_identity_mcp.cards import excerpt
from stripe_identity_mcp.clients.errors import (
    StripeIdentityError,
)
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.error_text import tool_error
from stripe_identity_mcp.timefmt import iso  # noqa: F401  (re-exported for the toolsets)

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
WRITE_IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)

CustomerId = Annotated[
    str, Field(pattern=r"^cus_[A-Za-z0-9]+$", max_length=255, description="Stripe customer id")
]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=512,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="exact email (Stripe compares case-sensitively)",
    ),
]


def deps(ctx: Context) -> AppDeps:
    return cast(AppDeps, ctx.request_context.lifespan_context)


def stripe_proof(app: AppDeps) -> dict[str, Any]:
    """`prove()`'s Stripe-side arguments: the Stripe client's trace, errors in the tools' words."""
    return {"trace_of": lambda: app.stripe.last_trace, "explain": lambda exc: str(tool_error(exc, app))}


@contextmanager
def tool_errors(app: AppDeps) -> Iterator[None]:
    """Turn every expected client failure into a ToolError (an isError result for the model)."""
    try:
        yield
    except StripeIdentityError as exc:
        raise tool_error(exc, app) from None


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


Timestamp = Annotated[int | str | None, Field(description="unix or ISO 8601 date")]


# Unix seconds a created filter may hold: 1970-01-01 .. 9999-12-31T23:59:59Z (datetime's range).
MAX_UNIX = 253402300799
# The longest ISO 8601 form datetime accepts is ~32 characters ("2024-12-01T00:00:00.000000+00:00").
MAX_TIME_CHARS = 64
# Stripe: "keys can be up to 255 characters long"; they travel in an HTTP header (printable ASCII).
MAX_IDEMPOTENCY_KEY = 255


def check_idempotency_key(key: str | None) -> None:
    """Refuse a key Stripe (or the HTTP header it travels in) cannot take, before anything is sent."""
    if key is None:
        return
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ToolError(
            f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} characters (got {len(key)}). Nothing was sent to Stripe."
        )
    if not (key.isascii() and key.isprintable()):
        raise ToolError(
            "idempotency_key must be printable ASCII (letters, digits, punctuation, spaces; e.g. a UUID). "
            "Nothing was sent to Stripe."
        )


def to_unix(value: int | str | None, name: str) -> int | None:
    """Unix seconds from an int, a digit string or an ISO 8601 date/time (UTC when no zone is given).

    Anything else, or a time outside 1970..9999, is a ToolError naming the argument (the value is
    echoed only as a short excerpt: a 10 MB argument must not come back as a 10 MB answer).
    """
    if value is None:
        return None
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip()
        if len(text) > MAX_TIME_CHARS:  # also spares int() a million-digit string
            raise ToolError(f"{name}: {excerpt(value)} is neither unix seconds nor an ISO 8601 date")
        if text.isascii() and text.isdigit():
            seconds = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                seconds = int(parsed.timestamp())
            except (ValueError, OverflowError):
                raise ToolError(f"{name}: {excerpt(value)} is neither unix seconds nor an ISO 8601 date") from None
    if not 0 <= seconds <= MAX_UNIX:
        raise ToolError(f"{name}: {excerpt(value)} is out of range (unix seconds 0..{MAX_UNIX}, years 1970..9999)")
    return seconds


def page_args(
    starting_after: str | None, ending_before: str | None, created_gte: int | str | None, created_lte: int | str | None
) -> dict[str, Any]:
    """Stripe list parameters for one page (cursor + created range), validated."""
    if starting_after and ending_before:
        raise ToolError("give starting_after or ending_before, not both")
    created = drop_none({"gte": to_unix(created_gte, "created_gte"), "lte": to_unix(created_lte, "created_lte")})
    return {"starting_after": starting_after, "ending_before": ending_before, "created": created or None}


def next_cursor(data: list[Any], has_more: bool, backwards: bool) -> str | None:
    """The id to pass for the next page: the last one, or the first when paging with ending_before."""
    if not has_more or not data:
        return None
    return str(data[0].id if backwards else data[-1].id)
