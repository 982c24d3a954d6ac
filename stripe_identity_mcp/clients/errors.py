"""Error hierarchy shared by the Stripe and SCIM clients, and the body parser for both."""

from __future__ import annotations

import re
from typing import Any

_KEY_RE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+")
# A bearer credential: long and token-shaped (prose such as "bearer token" is left alone).
_BEARER_RE = re.compile(r"(?i)(bearer\s+)(?=[^\s\"',]{12,})(?=[^\s\"',]*[0-9_])[^\s\"',]+")
# Our own HTTP-transport tokens (http_auth.TOKEN_PREFIX + 43 url-safe characters).
_HTTP_TOKEN_RE = re.compile(r"\bsim_[A-Za-z0-9_-]{20,}")
# `scheme://user:password@host`: the userinfo part of any URL (settings refuse it; this catches echoes).
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
# Known Stripe key prefixes; what follows is the key's distinctive body.
_KEY_PREFIX_RE = re.compile(r"^(?:sk|rk|pk)_(?:test|live)_")
# A body shorter than this is not distinctive (`sk_test_sandbox` → "sandbox" is an ordinary word).
MIN_BODY = 12


def secret_variants(secrets: list[str] | tuple[str, ...]) -> list[str]:
    """Every form of each secret worth removing: as given, stripped, and a Stripe key's body alone.

    An upstream (or a proxy) may echo the key without its `sk_test_` prefix; the body is what makes it
    secret, so it is redacted wherever it appears. Longest first, so a whole key is replaced before its body.
    """
    out: set[str] = set()
    for secret in secrets:
        for form in (secret, secret.strip()):
            if form:
                out.add(form)
                body = _KEY_PREFIX_RE.sub("", form)
                if body != form and len(body) >= MIN_BODY:
                    out.add(body)
    return sorted(out, key=len, reverse=True)


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove known secrets (and their bodies), URL userinfo, and anything shaped like a key or token."""
    for secret in secret_variants(secrets):
        text = text.replace(secret, "[redacted]")
    text = _USERINFO_RE.sub(r"\1[redacted]@", text)
    text = _KEY_RE.sub(lambda m: m.group(0)[:8] + "…[redacted]", text)
    text = _HTTP_TOKEN_RE.sub("sim_[redacted]", text)
    return _BEARER_RE.sub(r"\1[redacted]", text)


class StripeIdentityError(Exception):
    """Base of every expected failure talking to Stripe or Stripe's SCIM."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # The attempts of the failed call (clients/http.py Trace): whether an earlier attempt of this
        # call may have committed upstream decides what a 404 or 409 on a retry means.
        self.trace: Any = None
        # Set by a client that has established, after uncertain attempts, that this call changed nothing.
        self.nothing_done = False


class InvalidTextError(StripeIdentityError):
    """An argument holds text that cannot be sent as UTF-8 (e.g. a lone surrogate); nothing was sent."""

    def __init__(self, service: str, exc: UnicodeError | None = None) -> None:
        where = ""
        if isinstance(exc, UnicodeEncodeError):
            where = f" ({exc.object[exc.start:exc.end]!a})"
        super().__init__(
            f"an argument is not valid Unicode text{where}; nothing was sent to {service}",
            hint="remove the invalid character (a lone UTF-16 surrogate) and call again",
        )


class UnexpectedResponseError(StripeIdentityError):
    """The API answered successfully, but not with the object this call expects."""


class ApiConnectionError(StripeIdentityError):
    """Could not reach the API (after retries)."""


class ApiTimeoutError(ApiConnectionError):
    """The request or the retry deadline timed out."""


class RedirectError(UnexpectedResponseError):
    """The API answered 3xx. API clients never follow redirects: a login page or a proxy answered."""


class LocalRateLimitError(StripeIdentityError):
    """The client's own budget (or a server-supplied wait) would outlast the call's deadline; nothing sent."""

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class ApiStatusError(StripeIdentityError):
    """The API answered with an error status. Keeps what stripe-python's errors keep: status, Stripe's
    type/code/param, the request id, and the request (method, path) and response headers."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        retries: int = 0,
        body: dict[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retries = retries
        self.body = body or {}
        self.method = method
        self.path = path
        self.headers = headers or {}


class BadRequestError(ApiStatusError):
    status = 400


class CardError(BadRequestError):
    """Stripe `type: card_error` (402): the card was declined or is invalid; `decline_code` in body."""

    status = 402


class IdempotencyError(BadRequestError):
    """Stripe `type: idempotency_error`: the key was used with other parameters (or is in use)."""


class AuthenticationError(ApiStatusError):
    status = 401


class PermissionDeniedError(ApiStatusError):
    status = 403


class NotFoundError(ApiStatusError):
    status = 404


class ConflictError(ApiStatusError):
    status = 409


class RateLimitError(ApiStatusError):
    status = 429


class LockTimeoutError(RateLimitError):
    """Stripe's 429 `code: lock_timeout`: another request holds the object's lock; retry, not a limiter."""


class ServerError(ApiStatusError):
    status = 500


_BY_STATUS: dict[int, type[ApiStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: CardError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}
# Stripe's error `type` / `code` say more than the status (stripe-python maps by them too).
_BY_CODE: dict[str, type[ApiStatusError]] = {"lock_timeout": LockTimeoutError, "rate_limit": RateLimitError}
_BY_TYPE: dict[str, type[ApiStatusError]] = {"card_error": CardError, "idempotency_error": IdempotencyError}


def error_class(status: int, type: str | None = None, code: str | None = None) -> type[ApiStatusError]:
    """The typed error for an answer: by Stripe's `code`, then its `type`, then the HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if type in _BY_TYPE:
        return _BY_TYPE[type]
    if code == "resource_missing" and status == 404:
        return NotFoundError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiStatusError)


def parse_error_body(
    status: int,
    body: Any,
    request_id: str | None,
    secrets: list[str],
    *,
    method: str | None = None,
    path: str | None = None,
    headers: dict[str, str] | None = None,
) -> ApiStatusError:
    """Build the typed error from a Stripe `{"error": {...}}` or SCIM `{status, scimType, detail}` body."""
    where: dict[str, Any] = {"method": method, "path": path, "headers": headers}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        kind = err.get("type") if isinstance(err.get("type"), str) else None
        code = err.get("code") if isinstance(err.get("code"), str) else None
        return error_class(status, kind, code)(
            redact(str(err.get("message") or f"HTTP {status}"), secrets),
            status=status,
            type=kind,
            code=code,
            param=err.get("param"),
            request_id=request_id,
            body={k: v for k, v in err.items() if k in ("type", "code", "param", "decline_code", "doc_url")},
            **where,
        )
    cls = error_class(status)
    if isinstance(body, dict) and ("scimType" in body or "detail" in body or "schemas" in body):
        return cls(
            redact(str(body.get("detail") or f"SCIM HTTP {status}"), secrets),
            status=status,
            type="scim_error",
            code=body.get("scimType"),
            request_id=request_id,
            **where,
        )
    return cls(f"HTTP {status} with an unexpected body", status=status, request_id=request_id, **where)
