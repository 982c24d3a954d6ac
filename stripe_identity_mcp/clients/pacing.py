"""Stripe's rate-limit model on the client side: one global bucket per key and mode, one per endpoint.

Stripe (docs.stripe.com/rate-limits) limits each account and mode globally (live 100 r/s, test 25 r/s)
and every named API operation — method plus path template, `GET /v1/customers/{id}` for every id —
separately (25 r/s unless stated; the Search API 20 r/s, shared by all search endpoints). A request
counts against both. A 429 names its limiter in `Stripe-Rate-Limited-Reason`; `Pacer.rate_limited`
slows exactly that limiter: the endpoint, the whole key, or the number of requests in flight.

The endpoint bucket is taken first and the global one second: a request queued behind its own
saturated endpoint must not hold a global token meanwhile, or an export saturating
`GET /v1/customers` would delay every other endpoint's calls behind its queue.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio

from stripe_identity_mcp.clients.errors import LocalRateLimitError

# What an endpoint is and Stripe's default limits live in stripe_identity_mcp/endpoints.py (below the
# settings, which parse raised limits with it).
from stripe_identity_mcp.endpoints import (  # noqa: E402,F401
    ENDPOINT_RATE,
    SEARCH,
    SEARCH_RATE,
    endpoint_of,
    is_search,
    parse_endpoint_rates,
)


class TokenBucket:
    """Async token bucket: `rate` tokens/s, holding at most `burst`. Callers reserve in order.

    `observe()` lets the server's `Stripe-Ratelimit-*` headers tighten the pace — boundedly: never
    below `floor_fraction` of the configured rate, and back to it after `recover_s` (one odd header
    must not slow a client until restart). `penalise()` after a 429 is capped at `max_penalty_s`.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        floor_fraction: float = 0.25,
        recover_s: float = 60.0,
        max_penalty_s: float = 2.0,
    ) -> None:
        self.base_rate = float(rate)
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, min(rate / 5, 10.0)))
        self.floor = max(0.1, self.base_rate * floor_fraction)
        self.recover_s = recover_s
        self.max_penalty_s = max_penalty_s
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._restore_at: float | None = None
        self._lock = anyio.Lock()
        self.server_limit: int | None = None
        self.server_remaining: int | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        if self._restore_at is not None and now >= self._restore_at:
            self.rate, self._restore_at = self.base_rate, None
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, max_wait: float | None = None) -> None:
        """Take one token, waiting for it; LocalRateLimitError when that wait would exceed `max_wait`."""
        async with self._lock:  # reservations in arrival order; the wait itself happens outside the lock
            self._refill()
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if max_wait is not None and wait > max_wait:
                raise LocalRateLimitError(
                    f"rate limited; retry after {wait:.1f}s (the client's budget for this key is spent)",
                    retry_after_s=wait,
                    hint="wait a little or lower concurrency; nothing was sent",
                )
            self._tokens -= 1.0
        if wait > 0:
            try:
                await anyio.sleep(wait)
            except BaseException:
                self._tokens += 1.0  # cancelled while waiting: the slot was never used
                raise

    def refund(self) -> None:
        """Give back a token taken for a request that was never sent."""
        self._refill()
        self._tokens = min(self.burst, self._tokens + 1.0)

    def penalise(self, seconds: float) -> None:
        """After a 429, stop everyone for about `seconds` (at most max_penalty_s)."""
        self._refill()
        seconds = min(max(seconds, 0.0), self.max_penalty_s)
        self._tokens = min(self._tokens, -seconds * self.rate)

    def observe(self, headers: Mapping[str, str]) -> None:
        try:
            limit = headers.get("stripe-ratelimit-limit")
            remaining = headers.get("stripe-ratelimit-remaining")
            if limit is None or remaining is None:
                return
            self.server_limit, self.server_remaining = int(float(limit)), int(float(remaining))
        except (ValueError, OverflowError):
            return
        if 0 < self.server_limit < self.rate:  # the server's limit is lower than ours: follow it, boundedly
            self._refill()
            self.rate = max(float(self.server_limit), self.floor)
            self._restore_at = time.monotonic() + self.recover_s
        if self.server_limit > 0 and self.server_remaining < self.server_limit / 10:
            self._refill()
            self._tokens = min(self._tokens, 0.0)

    def snapshot(self) -> dict[str, Any]:
        self._refill()
        return {
            "rate_per_s": self.rate,
            "tokens_now": round(max(self._tokens, 0.0), 2),
            "server_limit": self.server_limit,
            "server_remaining": self.server_remaining,
        }



class ConcurrencyLimit:
    """Requests in flight per key. A `*-concurrency` 429 halves it (not below `floor`) for `recover_s`."""

    def __init__(self, limit: int, *, floor: int = 2, recover_s: float = 30.0) -> None:
        self.base = max(1, int(limit))
        self.floor = min(self.base, floor)
        self.recover_s = recover_s
        self._limiter = anyio.CapacityLimiter(self.base)
        self._restore_at: float | None = None

    @property
    def limit(self) -> int:
        self._maybe_restore()
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    def _maybe_restore(self) -> None:
        if self._restore_at is not None and time.monotonic() >= self._restore_at:
            self._limiter.total_tokens, self._restore_at = self.base, None

    def cut(self) -> None:
        self._maybe_restore()
        self._limiter.total_tokens = max(self.floor, int(self._limiter.total_tokens) // 2)
        self._restore_at = time.monotonic() + self.recover_s

    async def acquire(self, max_wait: float) -> object:
        """A slot (pass it to `release`); LocalRateLimitError if none frees up within `max_wait`."""
        self._maybe_restore()
        token = object()  # one borrower per request: a task may send several requests in a row
        with anyio.move_on_after(max(0.0, max_wait)):
            await self._limiter.acquire_on_behalf_of(token)
            return token
        raise LocalRateLimitError(
            f"rate limited; {self.in_flight} requests to this key are already in flight (limit {self.limit})",
            retry_after_s=1.0,
            hint="wait a little or lower concurrency; nothing was sent",
        )

    def release(self, token: object) -> None:
        self._limiter.release_on_behalf_of(token)


def slowed_by(reason: str) -> str | None:
    """What a 429's `Stripe-Rate-Limited-Reason` slows: "endpoint", "key", "concurrency" or nothing."""
    if reason == "endpoint-rate":
        return "endpoint"
    if reason in ("global-concurrency", "endpoint-concurrency"):
        return "concurrency"
    if reason == "resource-specific":
        return None  # one object's own limit (e.g. updates per PaymentIntent): only this request backs off
    return "key"  # global-rate, or no reason given (older API, a proxy): the whole key slows down


class Pacer:
    """All buckets of one key and mode: the global one, one per endpoint (made on first use), search.

    `endpoint_rate=None` paces by the global bucket alone (SCIM, whose limits Stripe does not publish).
    """

    def __init__(
        self,
        global_bucket: TokenBucket,
        *,
        endpoint_rate: float | None = None,
        search_rate: float | None = None,
        endpoint_rates: Mapping[str, float] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.global_bucket = global_bucket
        self.endpoint_rate = endpoint_rate
        self.search_rate = search_rate
        self.endpoint_rates = dict(endpoint_rates or {})
        self.buckets: dict[str, TokenBucket] = {}
        self.concurrency = ConcurrencyLimit(max_concurrency) if max_concurrency else None
        self.limited: dict[str, int] = {}  # 429s by Stripe-Rate-Limited-Reason ("unnamed" without one)

    def limit_of(self, endpoint: str) -> float | None:
        """The configured limit of an endpoint's own bucket (None: only the global one applies)."""
        if endpoint in self.endpoint_rates:
            return self.endpoint_rates[endpoint]
        if is_search(endpoint) and self.search_rate is not None:
            return self.search_rate
        return self.endpoint_rate

    def bucket_name(self, endpoint: str) -> str:
        """The endpoint's bucket: its own, or the one all search endpoints share."""
        return SEARCH if is_search(endpoint) and endpoint not in self.endpoint_rates else endpoint

    def bucket_for(self, endpoint: str) -> TokenBucket | None:
        name = self.bucket_name(endpoint)
        bucket = self.buckets.get(name)
        if bucket is None:
            rate = self.limit_of(endpoint)
            if rate is None:
                return None
            bucket = self.buckets[name] = TokenBucket(rate)
        return bucket

    def rate_for(self, endpoint: str) -> float:
        """Requests/s this client will send to `endpoint` at most (its bucket and the global one)."""
        own = self.bucket_for(endpoint)
        return min(self.global_bucket.rate, own.rate) if own is not None else self.global_bucket.rate

    def burst_for(self, endpoint: str) -> float:
        own = self.bucket_for(endpoint)
        return min(self.global_bucket.burst, own.burst) if own is not None else self.global_bucket.burst

    async def acquire(self, endpoint: str, max_wait: float) -> None:
        started = time.monotonic()
        own = self.bucket_for(endpoint)
        if own is not None:
            await own.acquire(max_wait=max_wait)
        try:
            await self.global_bucket.acquire(max_wait=max_wait - (time.monotonic() - started))
        except LocalRateLimitError:
            if own is not None:
                own.refund()  # nothing was sent: the endpoint token was never used
            raise

    async def refund(self, endpoint: str) -> None:
        """Give back what `acquire` took for a request that was then never sent (no concurrency slot)."""
        own = self.bucket_for(endpoint)
        if own is not None:
            own.refund()
        self.global_bucket.refund()

    def observe(self, endpoint: str, headers: Mapping[str, str]) -> None:
        # Stripe-Ratelimit-* (where sent) describe the key's allocation: the global bucket.
        self.global_bucket.observe(headers)

    def rate_limited(self, endpoint: str, reason: str | None, wait: float | None) -> None:
        """A rate-limit 429 (not a lock timeout): slow what its reason names."""
        reason = (reason or "").strip().lower()
        self.limited[reason or "unnamed"] = self.limited.get(reason or "unnamed", 0) + 1
        slowed = slowed_by(reason)
        if slowed == "endpoint":
            own = self.bucket_for(endpoint)
            (own or self.global_bucket).penalise(wait or 1.0)
        elif slowed == "concurrency":
            if self.concurrency is not None:
                self.concurrency.cut()
        elif slowed == "key":
            self.global_bucket.penalise(wait or 1.0)

    async def react(self, endpoint: str, reason: str | None, wait: float | None) -> None:
        """`rate_limited`, for callers that may await (a shared budget tells the other replicas too)."""
        self.rate_limited(endpoint, reason, wait)

    async def aclose(self) -> None:
        """Release what the pacer holds (nothing locally; a shared one's connections)."""

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"global": self.global_bucket.snapshot()}
        if self.endpoint_rate is not None:
            out["endpoint_default_per_s"] = self.endpoint_rate
            out["search_per_s"] = self.search_rate if self.search_rate is not None else self.endpoint_rate
            if self.endpoint_rates:
                out["endpoint_overrides"] = dict(self.endpoint_rates)
            out["endpoints"] = {
                name: {k: v for k, v in b.snapshot().items() if not k.startswith("server_")}
                for name, b in sorted(self.buckets.items())
            }
        if self.concurrency is not None:
            out["concurrency"] = {"limit": self.concurrency.limit, "in_flight": self.concurrency.in_flight}
        if self.limited:
            out["rate_limited_by_reason"] = dict(self.limited)
        return out
