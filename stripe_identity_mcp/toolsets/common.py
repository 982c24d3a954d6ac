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

from stripe_identity_mcp.clients.errors import (
    ApiConnectionError,
    ApiStatusError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    StripeIdentityError,
    redact,
)
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.safety import excerpt

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

# Stripe's restricted-key permission names → the Dashboard's names for them.
_PERMISSIONS = {
    "rak_customer_write": "Customers: Write",
    "rak_customer_read": "Customers: Read",
    "rak_payment_method_write": "PaymentMethods: Write",
    "rak_billing_portal_session_write": "Customer portal: Write",
    "rak_connected_account_read": "Connect (Accounts): Read",
    "rak_subscription_read": "Subscriptions: Read",
}


def deps(ctx: Context) -> AppDeps:
    return cast(AppDeps, ctx.request_context.lifespan_context)


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Hints keyed on Stripe's error codes (https://docs.stripe.com/error-codes), not on message text.
CODE_HINTS = {
    "lock_timeout": "another request is changing this object right now; retry in a moment",
    "idempotency_key_in_use": "a request with this idempotency key is still in flight; wait for it, then retry",
    "resource_already_exists": "it already exists: look it up instead of creating it",
    "email_invalid": "Stripe does not accept this email address; check its spelling",
    "parameter_invalid_empty": "a parameter was sent empty; give it a value or leave it out",
    "parameter_unknown": "Stripe does not know this parameter for this API version",
    "api_key_expired": "the API key has expired: roll a new one under Developers → API keys",
    "secret_key_required": "this call needs a secret or restricted key, not a publishable one",
    "testmode_charges_only": "this account can only make test-mode calls until it is activated",
}
TYPE_HINTS = {
    "card_error": "the card was refused (see decline_code); ask the customer for another payment method",
    "idempotency_error": "this idempotency key was used for a different request; use a new key (or none)",
}


def _hint(error: StripeIdentityError, app: AppDeps) -> str | None:
    mode = app.mode_label
    if isinstance(error, ApiStatusError):
        coded = CODE_HINTS.get(error.code or "") or TYPE_HINTS.get(error.type or "")
        if coded:
            return f"{coded}{'; ' + error.hint if error.hint else ''}"
    if isinstance(error, NotFoundError):
        if error.type == "scim_error":  # SCIM is per account: modes say nothing about team members
            return "no Dashboard team member has that id: find it with list_team_members or resolve_identity"
        # Stripe's 404 for an id of the other mode has code resource_missing like any other; only its
        # message tells ("a similar object exists in live mode, but a test mode key was used").
        if "similar object exists" in error.message:
            return "the id belongs to the other mode: use a key of that mode"
        return f"nothing with that id in {mode} mode (ids are per mode; deleted objects may be gone)"
    if isinstance(error, AuthenticationError):
        return "the API key or token was rejected: check it is current (rotated or revoked keys stop working)"
    if isinstance(error, PermissionDeniedError):
        # A restricted key's 403 names the missing permission only in its message.
        for rak, label in _PERMISSIONS.items():
            if rak in error.message:
                return f"this restricted key lacks the '{label}' permission ({rak}); grant it under Developers → API keys"
        return "the key lacks a permission this call needs (restricted key?)"
    return error.hint


def tool_error(error: StripeIdentityError, app: AppDeps) -> ToolError:
    """One readable line plus the fields a human needs; secrets redacted."""
    secrets = app.settings.secrets()
    parts = [redact(error.message, secrets)]
    if isinstance(error, ApiStatusError):
        fields = {
            "status": error.status,
            "type": error.type,
            "code": error.code,
            "param": error.param,
            "request_id": error.request_id,
        }
        if error.retries:
            fields["retries"] = error.retries
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, "")) + ")")
    elif isinstance(error, ApiConnectionError):
        parts.append("(connection)")
    hint = _hint(error, app)
    if hint:
        parts.append(f"Hint: {redact(hint, secrets)}")
    return ToolError(" ".join(parts))


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
