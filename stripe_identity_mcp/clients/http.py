"""Shared HTTP discipline for Stripe and SCIM: pacing, retries, deadlines, redaction, error mapping."""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from stripe_identity_mcp.clients.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    ConflictError,
    InvalidTextError,
    LocalRateLimitError,
    RateLimitError,
    RedirectError,
    ServerError,
    StripeIdentityError,
    UnexpectedResponseError,
    parse_error_body,
    redact,
)
from stripe_identity_mcp.clients.pacing import Pacer, TokenBucket, endpoint_of  # TokenBucket re-exported

M = TypeVar("M", bound="BaseModel")

if TYPE_CHECKING:  # httpx and tenacity load on the first request, not at server start-up
    import ssl

    import httpx
    from pydantic import BaseModel
    from tenacity import RetryCallState

    from stripe_identity_mcp.settings import Settings

log = logging.getLogger("stripe_identity_mcp.http")

_KEPT_HEADERS = {"request-id", "retry-after", "stripe-should-retry", "stripe-rate-limited-reason", "idempotent-replayed"}
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """Every wait of one API call, as one value (tests inject a fast one; nothing else sleeps).

    deadline_s bounds the whole call: pacing waits, attempts (bodies included) and back-off. A wait
    the server asks for (Retry-After) above `max_server_wait_s`, or beyond the deadline, is not
    waited for: the call fails at once with "rate limited; retry after …".
    """

    max_retries: int = 4
    deadline_s: float = 30.0
    attempt_timeout_s: float = 20.0  # one attempt, headers and body, however slowly they trickle
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    max_server_wait_s: float = 10.0
    jitter: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The one policy of both clients (tests pass a fast back-off through settings)."""
        return cls(
            max_retries=settings.max_retries,
            deadline_s=settings.retry_deadline_s,
            attempt_timeout_s=settings.timeout_s,
            backoff_base_s=settings.retry_backoff_s,
            backoff_cap_s=settings.retry_backoff_cap_s,
        )

    def backoff(self, attempt: int) -> float:
        wait = min(self.backoff_cap_s, self.backoff_base_s * (2 ** max(0, attempt - 1)))
        return wait * (0.5 + random.random() / 2) if self.jitter else wait


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    lock_timeouts: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass
class Trace:
    """What the attempts of one call did. `uncertain` attempts reached the server and may have
    committed (timeouts after sending, resets, 5xx, redirects of writes) — so a 404 or 409 on a later
    attempt may be our own earlier attempt's doing, and a replay may be this call's own creation."""

    method: str
    path: str
    attempts: int = 0
    uncertain: list[int] = field(default_factory=list)  # attempt numbers
    # Of those, the ones whose answer never came (timeout, reset): the server may still be acting on them.
    lost: list[int] = field(default_factory=list)

    def lose(self, attempt: int) -> None:
        self.uncertain.append(attempt)
        self.lost.append(attempt)

    @property
    def earlier_attempt_may_have_committed(self) -> bool:
        return any(n < self.attempts for n in self.uncertain)

    @property
    def last_attempt_uncertain(self) -> bool:
        return self.attempts in self.uncertain


class _Retryable(Exception):
    """Internal: carries a retryable failure through tenacity."""

    def __init__(self, error: StripeIdentityError, wait_hint: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait_hint = wait_hint


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for the process, built as httpx builds its default (certifi, or SSL_CERT_FILE /
    SSL_CERT_DIR as found at first use). Loading the CA bundle costs ~30 ms of CPU, and every MCP
    session opens its own client; an SSLContext is safe to share between clients and threads."""
    import httpx

    return httpx.create_ssl_context()


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
                verify=_tls_context(),
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
    """A paced, retrying JSON-over-HTTP caller. Subclasses define auth headers and body encoding.

    Success is only what proves itself: a 3xx is an error (API clients never follow redirects; a
    login page or an intercepting proxy answered), a body that is not JSON — or nested beyond any
    real answer — is an error, and callers parse bodies into models, so `{}` is not an object.
    """

    service = "API"

    def __init__(
        self,
        http: httpx.AsyncClient | LazyHttpClient,
        *,
        base_url: str,
        headers: dict[str, str],
        secrets: list[str],
        bucket: TokenBucket | None = None,
        pacer: Pacer | None = None,
        max_retries: int = 4,
        deadline_s: float = 30.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        if pacer is None and bucket is None:
            raise ValueError("HttpApi needs a bucket or a pacer")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.secrets = secrets
        # Every request takes from its endpoint's bucket and the key's global one (clients/pacing.py).
        self.pacer: Pacer = pacer if pacer is not None else Pacer(bucket)  # type: ignore[arg-type]
        self.policy = policy or RetryPolicy(max_retries=max_retries, deadline_s=deadline_s)
        self.stats = Stats()
        # What the last response said, per task: concurrent tool calls share this client, and each
        # must read back its own request id (for the audit log), replay flag and attempt trace.
        self._last: contextvars.ContextVar[tuple[str | None, bool]] = contextvars.ContextVar(
            f"last_response_{id(self)}", default=(None, False)
        )
        self._trace: contextvars.ContextVar[Trace | None] = contextvars.ContextVar(f"trace_{id(self)}", default=None)

    @property
    def bucket(self) -> TokenBucket:
        """The key's global bucket."""
        return self.pacer.global_bucket

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    @property
    def deadline_s(self) -> float:
        return self.policy.deadline_s

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

    @property
    def last_trace(self) -> Trace | None:
        """The attempts of the current task's last call."""
        return self._trace.get()

    def _should_retry(self, response: httpx.Response) -> tuple[bool, float | None]:
        should = response.headers.get("stripe-should-retry")
        if should == "false":
            return False, None
        retry_after = None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except (ValueError, OverflowError):
            pass
        if retry_after is not None and not 0 <= retry_after < float("inf"):
            retry_after = None
        if should == "true":
            return True, retry_after
        status = response.status_code
        if status == 429 or status >= 500:
            return True, retry_after
        if status == 409:
            return self._is_lock_timeout(response), retry_after
        return False, None

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        """JSON of a response, or None when it is not (JSON) or nested beyond any real answer."""
        try:
            return response.json()
        except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError
            return None

    def _is_lock_timeout(self, response: httpx.Response) -> bool:
        body = self._decode(response)
        error = body.get("error") if isinstance(body, dict) else None
        return isinstance(error, dict) and error.get("code") == "lock_timeout"

    def _error_from(self, response: httpx.Response) -> ApiStatusError:
        # Only the headers a human or a retry decision needs (never Set-Cookie and the like).
        kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
        return parse_error_body(
            response.status_code,
            self._decode(response),
            response.headers.get("request-id"),
            self.secrets,
            method=response.request.method,
            path=self._path(str(response.request.url)).split("?", 1)[0],
            headers=kept,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        return self.http.get() if isinstance(self.http, LazyHttpClient) else self.http

    async def warm(self) -> None:
        """Load the HTTP stack now (httpx, tenacity, the TLS context and the client: ~0.1–0.2 s of
        CPU), in a worker thread. A job about to send many paced requests (an export) calls this
        first: loaded by its first request instead, it stalls the event loop while that request's
        tokens are due, and every later request of the run starts that much later."""

        def load() -> None:
            import tenacity  # noqa: F401  (what `request` imports on its first call)

            self.client  # noqa: B018  (builds the shared client and its TLS context)

        await anyio.to_thread.run_sync(load)

    def _redirect_error(self, method: str, url: str, response: httpx.Response) -> RedirectError:
        location = response.headers.get("location", "")
        shown = redact(location.split("?", 1)[0][:120], self.secrets) if location else "nowhere"
        return RedirectError(
            f"{self.service} answered HTTP {response.status_code} (redirect to {shown}) to {method} "
            f"{self._path(url)}: that is not an API answer (a login page, a wrong base URL or an "
            "intercepting proxy answered); redirects are never followed",
            hint=f"check that {self.base_url} is the API's base URL",
        )

    async def _once(self, method: str, url: str, trace: Trace, remaining: float, **kwargs: Any) -> httpx.Response:
        pacer = self.pacer
        endpoint = endpoint_of(method, self._path(url))
        paced_from = time.monotonic()
        await pacer.acquire(endpoint, max_wait=remaining)
        slot = None
        if pacer.concurrency is not None:
            try:
                slot = await pacer.concurrency.acquire(max_wait=remaining - (time.monotonic() - paced_from))
            except LocalRateLimitError:
                await pacer.refund(endpoint)  # never sent: the pacing tokens it took go back
                raise
        try:
            return await self._send(method, url, trace, endpoint, remaining - (time.monotonic() - paced_from), **kwargs)
        finally:
            if slot is not None:
                pacer.concurrency.release(slot)  # type: ignore[union-attr]

    async def _send(
        self, method: str, url: str, trace: Trace, endpoint: str, left: float, **kwargs: Any
    ) -> httpx.Response:
        import httpx

        pacer = self.pacer
        trace.attempts += 1
        self.stats.requests += 1
        writes = method != "GET"
        try:
            # One bound for the whole attempt, body included: httpx's timeout is per read, and a body
            # trickled a byte at a time would otherwise never end.
            with anyio.fail_after(max(0.01, min(self.policy.attempt_timeout_s, left))):
                response = await self.client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # never sent
            what = redact(type(exc).__name__ + (f": {exc}" if str(exc) else ""), self.secrets)
            raise _Retryable(
                ApiConnectionError(f"could not reach {self.service} at {self.base_url} ({what})")
            ) from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            if writes:
                trace.lose(trace.attempts)
            raise _Retryable(ApiTimeoutError(f"{self.service} timed out on {method} {self._path(url)}")) from exc
        except httpx.HTTPError as exc:
            # Sent, answer lost (a reset, a protocol error) or unreadable (a body that fails to decode):
            # the server may have acted on it, and may still be acting.
            if writes:
                trace.lose(trace.attempts)
            what = redact(type(exc).__name__ + (f": {exc}" if str(exc) else ""), self.secrets)
            raise _Retryable(
                ApiConnectionError(f"could not reach {self.service} at {self.base_url} ({what}); the answer was lost")
            ) from exc
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
        pacer.observe(endpoint, response.headers)
        if 300 <= response.status_code < 400:
            if writes:
                trace.uncertain.append(trace.attempts)
            raise self._redirect_error(method, url, response)
        if response.status_code < 300:
            return response
        retry, wait_hint = self._should_retry(response)
        error = self._error_from(response)
        if response.status_code >= 500 and writes:
            trace.uncertain.append(trace.attempts)  # a 5xx's outcome is indeterminate
        if response.status_code == 429 and error.code == "lock_timeout":
            # An object lock, not a limiter: retried (Stripe-Should-Retry: true), no bucket slows down.
            self.stats.lock_timeouts += 1
        elif response.status_code == 429:
            self.stats.rate_limited += 1
            reason = response.headers.get("stripe-rate-limited-reason")
            await pacer.react(endpoint, reason, wait_hint)
        if retry:
            raise _Retryable(error, wait_hint)
        raise error

    def _path(self, url: str) -> str:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, at least the server's Retry-After (stop() refuses long ones)."""
        exc = state.outcome.exception() if state.outcome else None
        wait = self.policy.backoff(state.attempt_number)
        if isinstance(exc, _Retryable) and exc.wait_hint:
            wait = max(wait, exc.wait_hint)
        return wait

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with pacing and retries; raise a typed StripeIdentityError on failure."""
        from tenacity import AsyncRetrying, retry_if_exception

        url = self.base_url + path
        trace = Trace(method, path)
        self._trace.set(trace)
        started = time.monotonic()
        policy = self.policy

        def remaining() -> float:
            return policy.deadline_s - (time.monotonic() - started)

        def stop(state: RetryCallState) -> bool:
            upcoming = state.upcoming_sleep
            too_long = upcoming > policy.max_server_wait_s and upcoming > policy.backoff_cap_s
            return state.attempt_number > policy.max_retries or too_long or upcoming >= remaining()

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                stop=stop,
                wait=self._wait,
                sleep=anyio.sleep,
                reraise=True,
            ):
                with attempt:
                    if trace.attempts >= 1:
                        self.stats.retries += 1
                        log.info("retry %d of %s %s", trace.attempts, method, path)
                    return await self._once(method, url, trace, remaining(), **kwargs)
        except _Retryable as exc:
            raise self._exhausted(exc, trace, time.monotonic() - started, remaining()) from None
        except StripeIdentityError as exc:
            exc.trace = trace
            if isinstance(exc, LocalRateLimitError) and trace.uncertain:
                exc.hint = "an earlier attempt may have reached the server: check before retrying"
            raise
        except UnicodeEncodeError as exc:  # httpx encoding params / a JSON body
            raise InvalidTextError(self.service, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exhausted(self, failure: _Retryable, trace: Trace, elapsed: float, remaining: float) -> StripeIdentityError:
        error = failure.error
        error.trace = trace
        attempts = trace.attempts
        tried = f"gave up after {attempts} attempt{'s' * (attempts != 1)} over {elapsed:.1f}s"
        wait = failure.wait_hint
        asked_long = wait is not None and (wait > self.policy.max_server_wait_s or wait >= remaining)
        if isinstance(error, ApiStatusError):
            error.retries = attempts - 1
            if isinstance(error, RateLimitError):
                if asked_long:
                    error.message = f"rate limited; retry after {wait:.0f}s ({self.service} asked for that wait)"
                    error.hint = f"{tried}; the server's Retry-After is longer than this call may wait"
                else:
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
        except (ValidationError, RecursionError) as exc:
            fields = (
                sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})[:5]
                if isinstance(exc, ValidationError)
                else ["body"]
            )
            name = getattr(model, "__name__", "object").split("[")[0]
            error = UnexpectedResponseError(
                f"unexpected answer from {self.service}: not a {name} (missing/invalid: {', '.join(fields)})",
                hint=f"request_id={self.last_request_id}" if self.last_request_id else None,
            )
            error.trace = self.last_trace
            raise error from None

    def json(self, response: httpx.Response) -> Any:
        """The decoded body; None only for a body-less answer (204 / empty). Not JSON → an error."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
            kind = "nested too deeply" if isinstance(exc, RecursionError) else "non-JSON"
            error = UnexpectedResponseError(
                f"unexpected {kind} answer from {self.service} (HTTP {response.status_code}, "
                f"{redact(str(response.headers.get('content-type'))[:60], self.secrets)}): not an API answer",
                hint=f"check that {self.base_url} is the API's base URL (a proxy or login page may have answered)",
            )
            error.trace = self.last_trace
            raise error from None
