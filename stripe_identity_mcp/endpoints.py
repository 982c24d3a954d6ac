"""Stripe's endpoints as its rate limiter names them: method + path template, and the default limits.

Pure functions and constants, with no imports from the package: the settings parse raised limits
(`--endpoint-rates`) with them, and the client's pacing (clients/pacing.py) keys its buckets by them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Stripe's documented defaults (docs.stripe.com/rate-limits).
ENDPOINT_RATE = 25.0
SEARCH_RATE = 20.0
SEARCH = "search"  # the bucket all `…/search` endpoints share

# Path segments that name an operation, not an object, in an id position (`/v1/customers/search`).
_ACTIONS = frozenset({"search", "upcoming", "preview"})
# Namespaces that prefix a resource without being one (`/v1/billing_portal/sessions/{id}`).
_NAMESPACES = frozenset({
    "apps", "billing", "billing_portal", "checkout", "climate", "entitlements", "financial_connections",
    "forwarding", "identity", "issuing", "radar", "reporting", "sigma", "tax", "terminal", "test_helpers",
    "treasury",
})  # fmt: skip
_VERSION = re.compile(r"^v\d+$")


def endpoint_of(method: str, path: str) -> str:
    """`GET /v1/customers/cus_123/payment_methods?x` → `GET /v1/customers/{id}/payment_methods`.

    Stripe paths alternate collection and id after the version (and optional namespaces), so the
    position says what an id is, whatever its text (hostile ids percent-encoded by the caller too).
    """
    segments = path.split("?", 1)[0].strip("/").split("/")
    out: list[str] = []
    id_next = False
    for seg in segments:
        if not out and _VERSION.match(seg):
            out.append(seg)
            continue
        if id_next and seg not in _ACTIONS:
            out.append("{id}")
            id_next = False
            continue
        out.append(seg)
        id_next = seg not in _NAMESPACES and seg not in _ACTIONS
    return f"{method.upper()} /" + "/".join(out)


def is_search(endpoint: str) -> bool:
    return endpoint.endswith("/search")


def parse_endpoint_rates(value: object) -> dict[str, float]:
    """`"GET /v1/customers=50, POST /v1/customers=40"` (or a mapping) → {endpoint: rate}; raised limits."""
    if value is None or value == "":
        return {}
    items: list[tuple[str, object]]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            if part.strip():
                name, sep, given = part.rpartition("=")
                if not sep:
                    raise ValueError(f"endpoint rate {part.strip()!r}: expected 'METHOD /path=rate'")
                items.append((name, given))
    elif isinstance(value, (list, tuple)):
        return {k: v for item in value for k, v in parse_endpoint_rates(item).items()}
    else:
        raise ValueError("endpoint rates: expected 'METHOD /path=rate, …'")  # noqa: TRY004 - pydantic wants ValueError
    out: dict[str, float] = {}
    for name, raw in items:
        method, _, path = str(name).strip().partition(" ")
        if method.upper() not in ("GET", "POST", "DELETE") or not path.strip().startswith("/"):
            raise ValueError(f"endpoint rate {str(name).strip()!r}: expected 'METHOD /path' (e.g. 'GET /v1/customers')")
        try:
            rate = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"endpoint rate for {str(name).strip()!r} is not a number") from None
        if not 0 < rate < float("inf"):
            raise ValueError(f"endpoint rate for {str(name).strip()!r} must be > 0")
        out[endpoint_of(method, path.strip())] = rate
    return out
