"""Shared HTTP discipline for Stripe and SCIM: pacing, retries, deadlines, redaction, error mapping."""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from stripe_identity_mcp.clients.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    ConflictError,
    InvalidTextError,
    RateLimitError,
    ServerError,
    StripeIdentityError,
    UnexpectedResponseError,
    parse_error_body,
    redact,
)

M = TypeVar("M")

if TYPE_CHECKING:  # httpx and tenacity load on the first request, not at server start-up
    import httpx
    from tenacity import RetryCallState

log = logging.getLogger("stripe_identity_mcp.http")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 5.0


class TokenBucket:
    """Async token bucket: `rate` tokens/s, holding at most `burst`. Waiters are served in order.

    `observe()` lets the server's `Stripe-Ratelimit-*` headers tighten the pace: when the server
    reports less than a tenth of its budget left, the bucket drains so the next callers wait.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, min(rate / 5, 10.0)))
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = anyio.Lock()
        self.server_limit: int | None = None
        self.server_remaining: int | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # FIFO-ish: one waiter computes its wait at a time
            self._refill()
            self._tokens -= 1.0
            if self._tokens < 0:
                await anyio.sleep(-self._tokens / self.rate)

    def penalise(self, seconds: float) -> None:
        """After a 429, stop everyone for about `seconds`."""
        self._refill()
        self._tokens = min(self._tokens, -seconds * self.rate)

    def observe(self, headers: Mapping[str, str]) -> None:
        try:
            limit = headers.get("stripe-ratelimit-limit")
            remaining = headers.get("stripe-ratelimit-remaining")
            if limit is None or remaining is None:
                return
            self.server_limit, self.server_remaining = int(float(limit)), int(float(remaining))
        except ValueError:
            return
        if self.server_limit > 0 and self.server_limit < self.rate:
            self.rate = float(self.server_limit)  # the server's limit is lower than ours: adopt it
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


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class _Retryable(Exception):
    """Internal: carries a retryable failure through tenacity."""

    def __init__(self, error: StripeIdentityError, wait_hint: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait_hint = wait_hint


def _wait(state: RetryCallState) -> float:
    """Exponential backoff with full jitter (0.5 s → 5 s), at least the server's Retry-After."""
    exc = state.outcome.exception() if state.outcome else None
    backoff = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** (state.attempt_number - 1)))
    wait = backoff * (0.5 + random.random() / 2)
    if isinstance(exc, _Retryable) and exc.wait_hint:
        wait = max(wait, min(exc.wait_hint, BACKOFF_CAP_S * 2))
    return wait


class LazyHttpClient:
    """One shared `httpx.AsyncClient`, made on first use.

    Importing httpx and building its TLS context costs tens of milliseconds; a stdio server should
    answer `initialize` and `tools/list` without paying that before the first real call.
    """

    def __init__(self, timeout_s: float = 20.0, max_connections: int = 64) -> None:
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s)),
                limits=httpx.Limits(
                    max_connections=self.max_connections, max_keepalive_connections=self.max_connections // 2
                ),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpApi:
    """A paced, retrying JSON-over-HTTP caller. Subclasses define auth headers and body encoding."""

    service = "API"

    def __init__(
        self,
        http: httpx.AsyncClient | LazyHttpClient,
        *,
        base_url: str,
        headers: dict[str, str],
        secrets: list[str],
        bucket: TokenBucket,
        write_bucket: TokenBucket | None = None,
        max_retries: int = 4,
        deadline_s: float = 30.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.secrets = secrets
        self.bucket = bucket  # reads
        self.write_bucket = write_bucket or bucket  # Stripe budgets reads and writes separately
        self.max_retries = max_retries
        self.deadline_s = deadline_s
        self.stats = Stats()
        # What the last response said, per task: concurrent tool calls share this client, and each
        # must read back its own request id (for the audit log) and its own replay flag.
        self._last: contextvars.ContextVar[tuple[str | None, bool]] = contextvars.ContextVar(
            f"last_response_{id(self)}", default=(None, False)
        )

    @property
    def last_request_id(self) -> str | None:
        """`Request-Id` of the last response seen by the current task."""
        return self._last.get()[0]

    @last_request_id.setter
    def last_request_id(self, value: str | None) -> None:
        self._last.set((value, self._last.get()[1]))

    @property
    def last_replayed(self) -> bool:
        """Whether the current task's last response carried `Idempotent-Replayed: true`."""
        return self._last.get()[1]

    @last_replayed.setter
    def last_replayed(self, value: bool) -> None:
        self._last.set((self._last.get()[0], value))

    def _should_retry(self, response: httpx.Response) -> tuple[bool, float | None]:
        should = response.headers.get("stripe-should-retry")
        if should == "false":
            return False, None
        retry_after = None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            pass
        if should == "true":
            return True, retry_after
        status = response.status_code
        if status == 429 or status >= 500:
            return True, retry_after
        if status == 409:
            return self._is_lock_timeout(response), retry_after
        return False, None

    @staticmethod
    def _is_lock_timeout(response: httpx.Response) -> bool:
        try:
            return response.json().get("error", {}).get("code") == "lock_timeout"
        except (ValueError, AttributeError):
            return False

    def _error_from(self, response: httpx.Response) -> ApiStatusError:
        try:
            body = response.json()
        except ValueError:
            body = None
        return parse_error_body(response.status_code, body, response.headers.get("request-id"), self.secrets)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.http.get() if isinstance(self.http, LazyHttpClient) else self.http

    async def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        import httpx

        bucket = self.bucket if method == "GET" else self.write_bucket
        await bucket.acquire()
        self.stats.requests += 1
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise _Retryable(ApiTimeoutError(f"{self.service} timed out on {method} {self._path(url)}")) from exc
        except httpx.TransportError as exc:
            what = redact(type(exc).__name__ + (f": {exc}" if str(exc) else ""), self.secrets)
            raise _Retryable(
                ApiConnectionError(f"could not reach {self.service} at {self.base_url} ({what})")
            ) from exc
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
        bucket.observe(response.headers)
        if response.status_code < 400:
            return response
        retry, wait_hint = self._should_retry(response)
        error = self._error_from(response)
        if response.status_code == 429:
            self.stats.rate_limited += 1
            bucket.penalise(wait_hint or 1.0)
        if retry:
            raise _Retryable(error, wait_hint)
        raise error

    def _path(self, url: str) -> str:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with pacing and retries; raise a typed StripeIdentityError on failure."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

        url = self.base_url + path
        attempts = 0
        started = time.monotonic()
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                stop=stop_after_attempt(self.max_retries + 1) | stop_after_delay(self.deadline_s),
                wait=_wait,
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        self.stats.retries += 1
                        log.info("retry %d of %s %s", attempts - 1, method, path)
                    return await self._once(method, url, **kwargs)
        except _Retryable as exc:
            raise self._exhausted(exc.error, attempts, time.monotonic() - started) from None
        except UnicodeEncodeError as exc:  # httpx encoding params / a JSON body
            raise InvalidTextError(self.service, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exhausted(self, error: StripeIdentityError, attempts: int, elapsed: float) -> StripeIdentityError:
        tried = f"gave up after {attempts} attempt{'s' * (attempts != 1)} over {elapsed:.1f}s"
        if isinstance(error, ApiStatusError):
            error.retries = attempts - 1
            if isinstance(error, RateLimitError):
                error.hint = f"rate limited by {self.service}; {tried}. Wait a little or lower concurrency."
            elif isinstance(error, (ServerError, ConflictError)):
                error.hint = f"{self.service} kept failing; {tried}. Retry later; check status.stripe.com."
            return error
        error.message = f"{error.message}; {tried}"
        error.hint = error.hint or f"check that {self.base_url} is reachable from this machine"
        return error

    def parse(self, model: type[M], data: Any) -> M:
        """`model.model_validate(data)`; an answer of another shape is an UnexpectedResponseError."""
        from pydantic import ValidationError

        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})[:5]
            name = getattr(model, "__name__", "object").split("[")[0]
            raise UnexpectedResponseError(
                f"unexpected answer from {self.service}: not a {name} (missing/invalid: {', '.join(fields)})",
                hint=f"request_id={self.last_request_id}" if self.last_request_id else None,
            ) from None

    @staticmethod
    def json(response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ApiConnectionError(
                f"unexpected non-JSON answer (HTTP {response.status_code}, {response.headers.get('content-type')})"
            ) from exc
