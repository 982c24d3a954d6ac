"""API keys: the sandbox's keys, how a request names one, and how answers redact one."""

from __future__ import annotations

import base64

from ..forms import StripeError

KEYS: dict[str, tuple[str, frozenset[str] | None]] = {
    "sk_test_sandbox": ("test", None),
    "sk_live_sandbox": ("live", None),
    "rk_test_sandbox": ("test", frozenset({"rak_customer_read", "rak_payment_method_read"})),
}

NO_KEY_MSG = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_")


def redact_key(key: str) -> str:
    prefix = next((p for p in KEY_PREFIXES if key.startswith(p)), "")
    rest = key[len(prefix):]
    tail = rest[-4:] if len(rest) > 8 else ""
    return f"{prefix}****{tail}"


def redact_key_permission(key: str) -> str:
    prefix = next((p for p in KEY_PREFIXES if key.startswith(p)), "")
    rest = key[len(prefix):]
    return f"{prefix}*****{rest[-5:] if len(rest) > 5 else ''}"


def authenticate(headers: dict[str, str]) -> tuple[str, str, frozenset[str] | None]:
    """(key, mode, permissions) of the request's API key, or Stripe's 401."""
    auth = headers.get("authorization", "").strip()
    key = ""
    if auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    elif auth.lower().startswith("basic "):
        try:
            raw = base64.b64decode(auth[6:].strip()).decode()
            key = raw.split(":", 1)[0]
        except Exception:
            key = ""
    elif auth:
        raise StripeError(401, "Invalid API Key provided: " + redact_key(auth.split(" ")[-1]))
    if not key:
        raise StripeError(401, NO_KEY_MSG)
    if key not in KEYS:
        raise StripeError(401, f"Invalid API Key provided: {redact_key(key)}")
    mode, perms = KEYS[key]
    return key, mode, perms


def key_guess(headers: dict[str, str]) -> str:
    """The request's valid key, or "" (counts in-flight requests before the key is judged)."""
    try:
        return authenticate(headers)[0]
    except StripeError:
        return ""
