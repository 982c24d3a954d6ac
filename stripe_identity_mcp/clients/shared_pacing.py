"""The key's budget shared by every replica through Redis, with a local 1/N fallback when Redis fails.

`SharedPacer` is a Pacer (clients/pacing.py) whose global and endpoint buckets live in Redis
(clients/redis_limiter.py): each take is one atomic script over both buckets, so N replicas together
send at most the key's limits. Its own local buckets hold the configured limits (and what
`Stripe-Ratelimit-*` headers tighten them to): those are the rates passed to the script.

When a Redis call fails or times out, the replica switches at once to a local Pacer at 1/N of every
limit (N = `--replicas`: if every replica loses Redis, together they still stay within the key's
limits), logs one WARNING, and probes Redis at most once per `probe_interval_s` (never per
request); the first answer switches back, with an INFO log. Never unlimited, never a hang: every
Redis call is bounded and every wait by the caller's `max_wait`.

The concurrency limit stays per process (requests in flight are a local fact; its cut after a
`*-concurrency` 429 is local too): size `--max-concurrency` per replica.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import anyio

from stripe_identity_mcp.clients.errors import LocalRateLimitError, redact
from stripe_identity_mcp.clients.pacing import Pacer, TokenBucket, slowed_by
from stripe_identity_mcp.clients.redis_limiter import RedisLimiter

log = logging.getLogger(__name__)


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    # OSError: a socket error redis-py did not wrap; TimeoutError: our own bound (anyio.fail_after).
    return (RedisError, OSError, TimeoutError)


class SharedPacer(Pacer):
    """A Pacer whose global and endpoint buckets are Redis's, with a local 1/N share as the fallback."""

    def __init__(
        self,
        limiter: RedisLimiter,
        rate: float,
        *,
        endpoint_rate: float | None = None,
        search_rate: float | None = None,
        endpoint_rates: Mapping[str, float] | None = None,
        max_concurrency: int | None = None,
        replicas: int = 2,
        secrets: list[str] | None = None,
        probe_interval_s: float = 1.0,
    ) -> None:
        super().__init__(
            TokenBucket(rate),
            endpoint_rate=endpoint_rate,
            search_rate=search_rate,
            endpoint_rates=endpoint_rates,
            max_concurrency=max_concurrency,
        )
        self.limiter = limiter
        self.replicas = max(1, replicas)
        n = self.replicas
        # The fallback: every limit divided by N; the concurrency limit is this pacer's own (per process).
        self.fallback = Pacer(
            TokenBucket(rate / n),
            endpoint_rate=endpoint_rate / n if endpoint_rate is not None else None,
            search_rate=search_rate / n if search_rate is not None else None,
            endpoint_rates={k: v / n for k, v in (endpoint_rates or {}).items()},
        )
        self.secrets = [s for s in (secrets or []) if s]
        self.probe_interval_s = probe_interval_s
        self.shared = True
        self.fallbacks = 0  # times this replica lost Redis
        self._next_probe = 0.0
        # One waiter per bucket per process asks Redis (the others queue behind it here, in order):
        # otherwise every waiter would poll the script each time a token frees up.
        self._queues: dict[str, anyio.Lock] = {}

    # ------------------------------------------------------------------ state changes
    def _lost(self, exc: BaseException) -> None:
        self._next_probe = time.monotonic() + self.probe_interval_s
        if not self.shared:
            return
        self.shared = False
        self.fallbacks += 1
        what = redact(type(exc).__name__ + (f": {exc}" if str(exc) else ""), self.secrets)
        log.warning(
            "rate budget: Redis unreachable (%s); pacing locally at 1/%d of every limit until it answers "
            "(probing every %.0f s)",
            what, self.replicas, self.probe_interval_s,
        )  # fmt: skip

    async def _probe(self, left: float) -> None:
        """In fallback, at most once per probe interval: PING; the first answer restores sharing."""
        now = time.monotonic()
        if self.shared or now < self._next_probe or left <= 0:
            return
        self._next_probe = now + self.probe_interval_s  # set before awaiting: one prober at a time
        try:
            with anyio.fail_after(max(0.01, min(left, self.limiter.timeout_s * 2))):
                await self.limiter.ping()
        except _redis_errors():
            return
        self.shared = True
        log.info("rate budget: Redis answers again; back to the budget shared by every replica")

    # ------------------------------------------------------------------ the Pacer interface
    def _buckets(self, endpoint: str) -> list[tuple[str | None, float, float]]:
        out: list[tuple[str | None, float, float]] = [(None, self.global_bucket.rate, self.global_bucket.burst)]
        own = self.bucket_for(endpoint)
        if own is not None:
            out.append((self.bucket_name(endpoint), own.rate, own.burst))
        return out

    async def acquire(self, endpoint: str, max_wait: float) -> None:
        deadline = time.monotonic() + max_wait
        await self._probe(max_wait)
        if not self.shared:
            await self.fallback.acquire(endpoint, max_wait=max(0.0, deadline - time.monotonic()))
            return
        name = self.bucket_name(endpoint)
        queue = self._queues.setdefault(name, anyio.Lock())
        with anyio.move_on_after(max(0.0, max_wait)) as scope:
            async with queue:
                if await self._take_shared(endpoint, deadline):
                    return
        if scope.cancelled_caught:
            raise self._spent(max_wait)
        # Redis failed meanwhile: this request takes from the local share, with what is left of its wait.
        await self.fallback.acquire(endpoint, max_wait=max(0.0, deadline - time.monotonic()))

    async def _take_shared(self, endpoint: str, deadline: float) -> bool:
        """Take from the shared buckets (True), or False once Redis failed (now in fallback)."""
        buckets = self._buckets(endpoint)
        while True:
            try:
                wait = await self.limiter.take(buckets)
            except _redis_errors() as exc:
                self._lost(exc)
                return False
            if wait <= 0:
                return True
            left = deadline - time.monotonic()
            if wait > left:
                raise self._spent(wait)
            # A little jitter: replicas told the same wait do not all ask again at the same instant.
            await anyio.sleep(wait + random.uniform(0, min(wait, 0.005)))

    @staticmethod
    def _spent(wait: float) -> LocalRateLimitError:
        return LocalRateLimitError(
            f"rate limited; retry after {wait:.1f}s (the budget this key's replicas share is spent)",
            retry_after_s=wait,
            hint="wait a little or lower concurrency; nothing was sent",
        )

    async def refund(self, endpoint: str) -> None:
        if not self.shared:
            await self.fallback.refund(endpoint)
            return
        try:
            await self.limiter.refund([(b, rate) for b, rate, _ in self._buckets(endpoint)])
        except _redis_errors() as exc:
            self._lost(exc)

    def rate_limited(self, endpoint: str, reason: str | None, wait: float | None) -> None:
        # Counted once (here); the local share slows too, so a fallback starts slowed down.
        super().rate_limited(endpoint, reason, wait)
        self.fallback.rate_limited(endpoint, reason, wait)
        self.fallback.limited.clear()

    async def react(self, endpoint: str, reason: str | None, wait: float | None) -> None:
        """The local reactions, then the shared slow-down every replica obeys (a key with a TTL)."""
        self.rate_limited(endpoint, reason, wait)
        slowed = slowed_by((reason or "").strip().lower())
        if not self.shared or slowed not in ("endpoint", "key"):
            return
        bucket = self.bucket_name(endpoint) if slowed == "endpoint" and self.bucket_for(endpoint) else None
        seconds = min(max(wait or 1.0, 0.0), self.global_bucket.max_penalty_s)
        try:
            await self.limiter.slow(bucket, seconds)
        except _redis_errors() as exc:
            self._lost(exc)

    def rate_for(self, endpoint: str) -> float:
        return super().rate_for(endpoint) if self.shared else self.fallback.rate_for(endpoint)

    def burst_for(self, endpoint: str) -> float:
        return super().burst_for(endpoint) if self.shared else self.fallback.burst_for(endpoint)

    def snapshot(self) -> dict[str, Any]:
        if self.shared:
            out = super().snapshot()
            # The tokens live in Redis: local token counts would be untrue here.
            out["global"].pop("tokens_now", None)
            for bucket in out.get("endpoints", {}).values():
                bucket.pop("tokens_now", None)
            out["budget"] = "shared: Redis (every replica of this key and mode takes from one budget)"
        else:
            out = self.fallback.snapshot()
            out.pop("rate_limited_by_reason", None)
            out["budget"] = (
                f"fallback: local 1/{self.replicas} share (Redis unreachable; probing every {self.probe_interval_s:.0f} s)"
            )
            if self.concurrency is not None:
                out["concurrency"] = {"limit": self.concurrency.limit, "in_flight": self.concurrency.in_flight}
            if self.limited:
                out["rate_limited_by_reason"] = dict(self.limited)
        out["redis_fallbacks"] = self.fallbacks
        return out

    async def aclose(self) -> None:
        await self.limiter.aclose()
