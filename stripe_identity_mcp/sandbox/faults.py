"""Fault rules, random faults and the per-key rate limiters (global, per endpoint, search, concurrency).

Rules apply to Stripe (``/v1``) and SCIM (``/scim/v2``) requests. A rule without ``path`` applies to
``/v1`` only (as it always did); a SCIM fault names its path, e.g. ``"path": "/scim/v2/Users"``.

``lock_timeout`` is Stripe's object-lock timeout: a 429 with code ``lock_timeout`` and
``Stripe-Should-Retry: true`` (Stripe's libraries retry it; they do not retry the rate-limit 429).
``"409"`` is accepted as an alias for it, because older tests and benchmarks name it so (Stripe once
answered lock timeouts with 409); it is stored as ``lock_timeout``.

SCIM supports every kind but ``lock_timeout`` (it has no SCIM counterpart; a SCIM 409 means a
uniqueness conflict, which the emulator produces for real). Random faults (``fault_rate``) stay
``/v1``-only.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = {"500", "429", "lock_timeout", "reset", "drop_after_commit", "slow"}
KIND_ALIASES = {"409": "lock_timeout"}
SCIM_PREFIX = "/scim/"
SCIM_FAULT_KINDS = FAULT_KINDS - {"lock_timeout"}


@dataclass
class FaultRule:
    kind: str
    method: str | None = None
    path: str | None = None
    count: int = 1
    delay_ms: float = 0.0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FaultRule:
        asked = str(d.get("kind"))
        kind = KIND_ALIASES.get(asked, asked)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {asked!r}; expected one of {sorted(FAULT_KINDS)}")
        method = d.get("method")
        count = int(d.get("count", 1))
        if count < 1:
            raise ValueError("count must be >= 1")
        path = d.get("path") or None
        if path and str(path).startswith(SCIM_PREFIX) and kind not in SCIM_FAULT_KINDS:
            raise ValueError(f"fault kind {asked!r} is /v1 only; SCIM paths take {sorted(SCIM_FAULT_KINDS)}")
        return cls(
            kind=kind,
            method=method.upper() if method else None,
            path=path,
            count=count,
            delay_ms=float(d.get("delay_ms", 0) or 0),
        )

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.path and not path.startswith(self.path):
            return False
        if not self.path and path.startswith(SCIM_PREFIX):
            return False  # path-less rules keep their /v1-only meaning
        return self.count > 0


@dataclass
class FaultInjector:
    rate: float = 0.0
    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)
    injected: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault (if any) for this request; consumes one count of a matching rule."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                self.injected += 1
                return rule
        if self.rate > 0 and path.startswith("/v1/"):
            if self.rng.random() < self.rate:
                self.injected += 1
                return FaultRule(kind=self.rng.choice(["500", "429", "reset"]))
        return None


class TokenBucket:
    """Capacity = one second's worth of requests; refills continuously at ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        self.refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    @property
    def remaining(self) -> int:
        return max(0, int(self.tokens))


class RateLimiter:
    """Stripe's limiters, per key (a key is one account and mode): the global rate, each endpoint's own
    rate (method + route template), the Search API's shared rate, and requests in flight.

    A request takes one token from every limiter that applies, or from none: a rejected request
    costs nothing, so a client that backs off recovers at once. ``check`` names the first limiter
    that refused, as Stripe's ``Stripe-Rate-Limited-Reason`` does.
    """

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.in_flight: dict[str, int] = {}
        self.max_in_flight = 0  # most /v1 requests of one key in flight at once (stats; tests of overlap)

    def _bucket(self, key: str, name: str, rate: float) -> TokenBucket:
        b = self.buckets.get((key, name))
        if b is None or b.rate != float(rate):
            b = self.buckets[(key, name)] = TokenBucket(rate)
        return b

    def take(self, key: str, rate: float | None) -> tuple[bool, TokenBucket | None]:
        """The global bucket alone (kept for callers that know no endpoint)."""
        if not rate:
            return True, None
        b = self._bucket(key, "global", rate)
        return b.take(), b

    def check(
        self,
        key: str,
        global_rate: float | None,
        limits: list[tuple[str, float | None]],
        concurrency: int | None = None,
    ) -> tuple[str | None, TokenBucket | None]:
        """(reason refused or None, the global bucket). `limits`: (bucket name, rate) beyond the global."""
        if concurrency and self.in_flight.get(key, 0) > concurrency:
            return "global-concurrency", None
        buckets: list[tuple[str, TokenBucket]] = []
        g = self._bucket(key, "global", global_rate) if global_rate else None
        if g is not None:
            buckets.append(("global-rate", g))
        for name, rate in limits:
            if rate:
                buckets.append(("endpoint-rate", self._bucket(key, name, rate)))
        for reason, b in buckets:
            b.refill()
            if b.tokens < 1.0:
                return reason, g
        for _, b in buckets:
            b.tokens -= 1.0
        return None, g

    def enter(self, key: str) -> None:
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight[key])

    def leave(self, key: str) -> None:
        self.in_flight[key] = max(0, self.in_flight.get(key, 0) - 1)
