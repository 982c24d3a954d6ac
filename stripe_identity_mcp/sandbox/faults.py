"""Fault rules, random faults and the per-key token-bucket rate limiter.

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
    def from_json(cls, d: dict[str, Any]) -> "FaultRule":
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

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    @property
    def remaining(self) -> int:
        return max(0, int(self.tokens))


class RateLimiter:
    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, rate: float | None) -> tuple[bool, TokenBucket | None]:
        if not rate:
            return True, None
        b = self.buckets.get(key)
        if b is None or b.rate != float(rate):
            b = TokenBucket(rate)
            self.buckets[key] = b
        return b.take(), b
