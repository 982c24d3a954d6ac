"""The front of the sandbox: everything around a handler, for ``/v1`` and (faults only) ``/scim/v2``.

For ``/v1``: injected faults, the API key, rate limits, ``Stripe-Version``, form bodies,
idempotency, routing to the handler (the route table ``app.py`` collects), the request log, and
webhook delivery after the answer.

What it does unlike Stripe, on purpose, is listed in ``app.py``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
import string
from typing import Any

import anyio

from .api.auth import authenticate, key_guess
from .api.context import Ctx, Handler
from .forms import StripeError, parse_form
from .routing import RouteTable
from .scim.protocol import ERROR_SCHEMA as SCIM_ERROR_SCHEMA
from .state import API_VERSION, Sandbox

ALNUM = string.ascii_letters + string.digits

_VERSION_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:\.[a-z]+)?")
_BETA_RE = re.compile(r"[a-z][a-z0-9_]*=v\d+")
FIRST_API_VERSION = datetime.date(2011, 1, 1)


def valid_api_version(version: str) -> bool:
    """Whether ``Stripe-Version`` names a version Stripe could have released.

    Stripe versions are release dates, since 2024-09-30 with a release name (``2024-09-30.acacia``),
    optionally followed by beta headers (``; feature_beta=v3``). The emulator knows no release list,
    so it accepts any real calendar date from 2011 to today (UTC) in that shape; anything else
    ("2019-2-19", "latest", a future date) gets Stripe's 400 "Invalid Stripe API version: ...".
    """
    base, *betas = [part.strip() for part in version.split(";")]
    m = _VERSION_RE.fullmatch(base)
    if m is None or not all(_BETA_RE.fullmatch(b) for b in betas):
        return False
    try:
        day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return FIRST_API_VERSION <= day <= datetime.datetime.now(datetime.UTC).date()



_RATE_MSG = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)
_LOCK_MSG = (
    "This object cannot be accessed right now because another API request or Stripe process is currently "
    "accessing it. If you see this error intermittently, retry the request. If you see this error frequently "
    "and are making multiple concurrent requests to a single object, make your requests serially or at a lower "
    "rate. See https://stripe.com/docs/rate-limits#object-lock-timeouts for more details."
)


def _rate_limited(reason: str | None = None) -> StripeError:
    # No Stripe-Should-Retry and no Retry-After: Stripe's libraries (stripe-python ``_should_retry``)
    # retry a 429 only when told ``Stripe-Should-Retry: true``, which Stripe sends for lock timeouts
    # alone; a rate-limited caller is expected to back off on its own schedule. The limiter that
    # refused is named in Stripe-Rate-Limited-Reason (an injected "429" fault names none).
    return StripeError(
        429, _RATE_MSG, code="rate_limit", headers={"Stripe-Rate-Limited-Reason": reason} if reason else None
    )


def _lock_timeout() -> StripeError:
    # Stripe answers an object-lock timeout with 429 (not 409) and asks the libraries to retry.
    return StripeError(429, _LOCK_MSG, code="lock_timeout", headers={"Stripe-Should-Retry": "true"})



class _Drop(Exception):
    pass


def _headers(request_id: str, version: str, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    h = {
        "content-type": "application/json",
        "request-id": request_id,
        "stripe-version": version,
        "access-control-allow-origin": "*",
        "cache-control": "no-cache, no-store",
    }
    if extra:
        h.update({k.lower(): v for k, v in extra.items()})
    return [(k.encode(), v.encode()) for k, v in h.items()]


class Front:
    """Answers ``/v1`` requests through ``routes`` and applies fault rules to SCIM ones."""

    def __init__(self, sandbox: Sandbox, routes: RouteTable[Handler]) -> None:
        self.sb = sandbox
        self.routes = routes

    def endpoint_name(self, method: str, path: str) -> str:
        """Stripe's unit of an endpoint limit: method + route template (`GET /v1/customers/{id}`)."""
        found = self.routes.find(method, path)
        if found is not None:
            return f"{method} {found[0].template}"
        return f"{method} {path}"  # no such route (a 404): its own, unshared limit

    async def _send(self, send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.sb.by_status[str(status)] += 1
        headers = headers + [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _abort(send: Any) -> None:
        """Drop the connection without any response (uvicorn: abort the transport)."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            try:
                transport.abort()
            except Exception:  # pragma: no cover
                transport.close()
            try:
                cycle.disconnected = True  # type: ignore[union-attr]
            except Exception:  # pragma: no cover
                pass
            return
        # Fallback for servers without transport access: start a response and then fail
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"100")]})
        raise _Drop("connection dropped by sandbox fault")

    def _endpoint_limits(self, endpoint: str) -> list[tuple[str, float | None]]:
        """The limiters beyond the global one: the endpoint's own, or the Search API's shared one."""
        c = self.sb.config
        if endpoint in c.endpoint_rate_limits:
            return [(endpoint, float(c.endpoint_rate_limits[endpoint]))]
        if endpoint.endswith("/search"):
            return [("search", c.search_rate_limit)]
        return [(endpoint, c.endpoint_rate_limit)]


    async def handle_v1(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.sb.requests += 1
        method = scope["method"].upper()
        path = scope["path"]
        raw_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = "req_" + "".join(secrets.choice(ALNUM) for _ in range(14))
        version = raw_headers.get("stripe-version") or API_VERSION
        auth_hdr = raw_headers.get("authorization", "")
        livemode_guess = "live_" in auth_hdr
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        # In flight from arrival (the latency included), so a concurrency limit sees real overlap.
        flight_key = key_guess(raw_headers)
        self.sb.limiter.enter(flight_key)
        try:
            await self._handle_v1(scope, send, method, path, raw_headers, request_id, version, livemode_guess, body)
        finally:
            self.sb.limiter.leave(flight_key)

    async def _handle_v1(
        self,
        scope: dict[str, Any],
        send: Any,
        method: str,
        path: str,
        raw_headers: dict[str, str],
        request_id: str,
        version: str,
        livemode_guess: bool,
        body: bytes,
    ) -> None:
        if self.sb.config.latency_ms:
            await anyio.sleep(self.sb.config.latency_ms / 1000.0)

        extra: dict[str, str] = {}

        async def error(e: StripeError, livemode: bool = livemode_guess) -> None:
            hdrs = dict(extra)
            hdrs.update(e.headers)
            await self._send(send, e.status, json.dumps(e.body(request_id, livemode)).encode(), _headers(request_id, version, hdrs))

        fault = self.sb.faults.take(method, path)
        drop_after = False
        if fault is not None:
            if fault.kind == "slow":
                await anyio.sleep(fault.delay_ms / 1000.0)
            elif fault.kind == "500":
                return await error(StripeError(500, "An unknown error occurred, please try again. If the problem persists, contact support at https://support.stripe.com/.", type="api_error", headers={"Stripe-Should-Retry": "true"}))
            elif fault.kind == "429":
                return await error(_rate_limited())
            elif fault.kind == "lock_timeout":
                return await error(_lock_timeout())
            elif fault.kind == "reset":
                self.sb.by_status["reset"] += 1
                return await self._abort(send)
            elif fault.kind == "drop_after_commit":
                drop_after = True

        try:
            key, mode, perms = authenticate(raw_headers)
        except StripeError as e:
            return await error(e)
        livemode = mode == "live"
        rate = self.sb.config.live_rate_limit if livemode else self.sb.config.rate_limit
        endpoint = self.endpoint_name(method, path)
        reason, bucket = self.sb.limiter.check(
            key, rate, self._endpoint_limits(endpoint) if rate else [], self.sb.config.concurrency_limit if rate else None
        )
        self.sb.by_endpoint[endpoint] += 1
        if bucket is not None:
            extra["Stripe-Ratelimit-Limit"] = str(int(rate) if float(rate).is_integer() else rate)  # type: ignore[arg-type]
            extra["Stripe-Ratelimit-Remaining"] = str(bucket.remaining)
        if reason is not None:
            self.sb.rate_limited[reason] += 1
            self.sb.limited_by_endpoint[endpoint] += 1
            return await error(_rate_limited(reason), livemode)
        if not valid_api_version(version):
            bad_version = version
            version = API_VERSION  # the answer is rendered in the account's version, not the rejected one
            return await error(StripeError(400, f"Invalid Stripe API version: {bad_version}"), livemode)

        idem_key = raw_headers.get("idempotency-key") if method == "POST" else None
        try:
            qs = scope.get("query_string", b"").decode("latin-1")
            params = parse_form(qs)
            if method == "POST":
                ctype = raw_headers.get("content-type", "")
                if body and "json" in ctype:
                    raise StripeError(400, "Invalid request: Stripe's API accepts form-encoded request bodies (application/x-www-form-urlencoded), not JSON.", code="parameter_invalid")
                params.update(parse_form(body.decode("utf-8", errors="replace")))
            elif method == "DELETE" and body:
                params.update(parse_form(body.decode("utf-8", errors="replace")))
        except StripeError as e:
            return await error(e, livemode)

        fp = None
        if idem_key:
            if len(idem_key) > 255:
                return await error(StripeError(400, "Invalid Idempotency-Key: must be at most 255 characters", type="idempotency_error"), livemode)
            fp = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
            saved = self.sb.idem.get((key, idem_key))
            if saved is not None:
                if saved[0] != fp:
                    return await error(StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                        f"Try using a key other than '{idem_key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    ), livemode)
                extra["Idempotent-Replayed"] = "true"
                extra["Original-Request"] = saved[3]
                if drop_after:
                    return await self._abort(send)
                return await self._send(send, saved[1], saved[2], _headers(request_id, version, extra))
            extra["Idempotency-Key"] = idem_key

        found = self.routes.find(method, path)
        ctx = Ctx(self.sb, key, mode, perms, method, path, params)
        ctx.request_id, ctx.idempotency_key = request_id, idem_key
        try:
            if found is None:
                raise StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")
            route, path_params = found
            status, obj = route.handler(ctx, path_params)
            payload = json.dumps(obj).encode()
        except StripeError as e:
            status = e.status
            payload = json.dumps(e.body(request_id, livemode)).encode()
            extra.update(e.headers)
        if idem_key and fp and (status < 400 or status == 404):
            self.sb.idem[(key, idem_key)] = (fp, status, payload, request_id)
        if drop_after:
            self.sb.by_status["dropped"] += 1
            await self._abort(send)
        else:
            await self._send(send, status, payload, _headers(request_id, version, extra))
        # After the answer, like Stripe: a webhook never delays the API call that caused it.
        await self.sb.delivery.flush()


    async def handle_scim(self, scope: dict[str, Any], receive: Any, send: Any, downstream: Any) -> None:
        """Apply fault rules to a SCIM request, then (unless the fault answers) pass it to ``downstream``.

        500 and 429 answer in SCIM's error shape (429 with ``Retry-After``); ``reset`` drops the
        connection without an answer; ``drop_after_commit`` runs the request, discards its answer and
        drops the connection; ``slow`` waits ``delay_ms`` first. Random faults (``fault_rate``) never
        touch SCIM: ``FaultInjector.take`` keeps them to ``/v1``.
        """
        fault = self.sb.faults.take(scope["method"].upper(), scope["path"])
        if fault is None:
            return await downstream(scope, receive, send)
        if fault.kind == "slow":
            await anyio.sleep(fault.delay_ms / 1000.0)
            return await downstream(scope, receive, send)
        if fault.kind == "drop_after_commit":

            async def discard(message: Any) -> None:
                return None

            await downstream(scope, receive, discard)  # the SCIM store commits the change
            self.sb.by_status["dropped"] += 1
            return await self._abort(send)
        if self.sb.config.latency_ms:
            await anyio.sleep(self.sb.config.latency_ms / 1000.0)
        if fault.kind == "reset":
            self.sb.by_status["reset"] += 1
            return await self._abort(send)
        status = int(fault.kind)  # "500" / "429" (lock_timeout is refused for SCIM paths by FaultRule)
        detail = (
            "Too many requests: SCIM rate limit exceeded; retry after the Retry-After interval"
            if status == 429
            else "An unknown error occurred, please try again"
        )
        body = json.dumps({"schemas": [SCIM_ERROR_SCHEMA], "status": str(status), "detail": detail}).encode()
        headers = [(b"content-type", b"application/scim+json"), (b"cache-control", b"no-cache, no-store")]
        if status == 429:
            headers.append((b"retry-after", b"1"))
        await self._send(send, status, body, headers)

