"""Client errors in the words a human can act on: one line, Stripe's fields, a hint; secrets redacted.

The one home of this wording: tool results (toolsets), the audit log's conversion of errors, and
resources all use `tool_error`.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

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

# Stripe's restricted-key permission names → the Dashboard's names for them.
_PERMISSIONS = {
    "rak_customer_write": "Customers: Write",
    "rak_customer_read": "Customers: Read",
    "rak_payment_method_write": "PaymentMethods: Write",
    "rak_billing_portal_session_write": "Customer portal: Write",
    "rak_connected_account_read": "Connect (Accounts): Read",
    "rak_subscription_read": "Subscriptions: Read",
}


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


