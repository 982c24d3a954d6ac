"""`POST /webhooks/stripe`: Stripe's signed `customer.*` webhooks applied to the local mirror.

Verification is Stripe's (docs "Verify webhook signatures manually"; stripe-python's
``WebhookSignature``): the ``Stripe-Signature`` header holds ``t=<unix>`` and one or more ``v1=``
signatures; the expected one is hex HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the endpoint's
secret; any ``v1`` matching any configured secret (rotation) passes, compared in constant time;
the timestamp must be within 300 s of our clock (a replayed capture goes stale). The signature is
this route's only authentication: no MCP bearer token, no Host/Origin check.

Anything wrong → 400 with a short reason and nothing applied. A verified event is applied in one
SQLite transaction and answered 200; a same-second reordering (``ambiguous``) is first settled by
re-reading that customer from Stripe (one GET).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from stripe_identity_mcp.mirror import store

TOLERANCE_S = 300
MAX_BODY = 512 * 1024  # Stripe events are a few KB; a customer with full metadata is far below this
logger = logging.getLogger(__name__)

Refresh = Callable[[str], Awaitable[dict[str, Any] | None]]


class WebhookError(Exception):
    """Why a delivery is refused (said in the 400 answer; never echoes the body or a secret)."""


def expected_signature(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def verify(payload: bytes, header: str | None, secrets: list[str], *, tolerance: int = TOLERANCE_S, now: float | None = None) -> dict[str, Any]:
    """The event of a delivery whose signature and timestamp are valid; WebhookError otherwise."""
    if not header:
        raise WebhookError("no Stripe-Signature header")
    timestamps, signatures = [], []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise WebhookError("Stripe-Signature has no valid timestamp")
    if not signatures:
        raise WebhookError("Stripe-Signature has no v1 signature")
    t = int(timestamps[0])
    matched = False
    for secret in secrets:
        expected = expected_signature(payload, secret, t)
        for candidate in signatures:  # every comparison runs: no early exit that times the secret
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise WebhookError("no signature matches the configured webhook secret(s)")
    clock = time.time() if now is None else now
    if abs(clock - t) > tolerance:
        raise WebhookError(f"timestamp outside the {tolerance} s tolerance (replayed or clock skew)")
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookError("body is not JSON") from None
    ok = (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance((event.get("data") or {}).get("object"), dict)
        and isinstance(event["data"]["object"].get("id"), str)
    )
    if not ok:
        raise WebhookError("body is not a Stripe event")
    return event  # type: ignore[no-any-return]


class WebhookReceiver:
    """ASGI endpoint writing verified events to the mirror at `db`."""

    def __init__(self, db: Path, secrets: list[str], refresh: Refresh | None = None) -> None:
        self.conn = store.connect(db)
        self.secrets = secrets
        self.refresh = refresh
        self.lock = anyio.Lock()  # one writer transaction at a time on the shared connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        request = Request(scope, receive)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                await JSONResponse({"error": "body too large"}, 413)(scope, receive, send)
                return
        try:
            event = verify(body, request.headers.get("stripe-signature"), self.secrets)
        except WebhookError as exc:
            await JSONResponse({"error": str(exc)}, 400)(scope, receive, send)
            return
        held = store.get_meta(self.conn, "mode")
        event_mode = "live" if event.get("livemode") else "test"
        if held is not None and held != event_mode:  # a misrouted endpoint must not mix modes
            await JSONResponse({"error": f"{event_mode}-mode event; this mirror holds {held} mode"}, 400)(scope, receive, send)
            return
        try:
            async with self.lock:
                with store.transaction(self.conn):
                    outcome = store.apply_event(self.conn, event, ordered=False)
                    store.set_meta(self.conn, "webhook_at", time.time())
        except sqlite3.Error as exc:  # not applied: a non-2xx makes Stripe deliver it again later
            logger.error("mirror: webhook %s not applied: %s", event["id"], exc)
            await JSONResponse({"error": "mirror unavailable; not applied"}, 503)(scope, receive, send)
            return
        if outcome == "ambiguous" and self.refresh is not None:
            # Rare (two states of one second); one GET, well inside Stripe's delivery timeout, and
            # the answer then means the mirror holds the customer's current state.
            await self._reread(event["data"]["object"]["id"])
        answer = "reread" if outcome == "ambiguous" and self.refresh is not None else outcome
        await JSONResponse({"received": True, "outcome": answer})(scope, receive, send)

    async def _reread(self, cid: str) -> None:
        """Settle a same-second reordering with the customer's own current state."""
        version = int(time.time()) - 1  # the state read below is at least this recent
        try:
            obj = await self.refresh(cid)  # type: ignore[misc]
        except Exception as exc:  # the next sync settles it; the webhook was already answered
            logger.warning("mirror: re-reading %s after an ambiguous webhook failed: %s", cid, type(exc).__name__)
            return
        try:
            async with self.lock:
                with store.transaction(self.conn):
                    if obj is None or obj.get("deleted"):
                        store.put_tombstone(self.conn, cid, 0, version)
                    else:
                        store.put_state(self.conn, obj, version, force=True)
        except sqlite3.Error as exc:
            logger.warning("mirror: re-read of %s not stored: %s", cid, exc)

    def close(self) -> None:
        self.conn.close()


def receiver_for(settings: Any, shared: Any) -> WebhookReceiver:
    """The receiver for `serve --transport http --webhook-secret …`; it needs --mirror to write into."""
    from stripe_identity_mcp.clients.stripe import path_segment
    from stripe_identity_mcp.settings import ConfigError

    if settings.mirror is None:
        raise ConfigError("--webhook-secret needs --mirror PATH: webhooks are applied to the local mirror")

    async def refresh(cid: str) -> dict[str, Any] | None:
        if shared.deps is None:  # pragma: no cover - the lifespan opens the clients before serving
            return None
        return await shared.deps.stripe.call("GET", f"/v1/customers/{path_segment(cid, 'customer')}")  # type: ignore[no-any-return]

    return WebhookReceiver(Path(settings.mirror), settings.webhook_secrets(), refresh)
