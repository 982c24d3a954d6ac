"""Events of the sandbox: Stripe's Event objects, the Events API and signed webhook delivery.

Every customer create/update/delete and payment-method attach/detach records one Event in Stripe's
shape (``id``, ``object: "event"``, ``type``, ``created``, ``data.object``, ``data.previous_attributes``
for ``*.updated``, ``request.id``/``request.idempotency_key``, ``livemode``, ``api_version``,
``pending_webhooks``). Events are frozen at record time (JSON bytes), as Stripe's are.

Deviations worth knowing:

* ``previous_attributes`` shows a nested hash (``metadata``, ``address``) by its changed keys only, as
  Stripe does since API version 2015-01-26; a key that did not exist before has ``null`` as old value.
* Retention is 30 days (``RETENTION_S``); ``/_sandbox/events/expire`` moves every recorded event
  back 31 days so tests can meet a cursor that Stripe no longer keeps.
* Delivery (``/_sandbox/webhooks``) posts each event once to one URL, in order, after the API
  answer has been sent (like ``stripe listen --forward-to``); no retries. Each attempt is logged;
  ``POST /_sandbox/webhooks/flush`` answers once every queued delivery was attempted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from .store import rand_id

RETENTION_S = 30 * 86400


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe documents it: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def previous_attributes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Changed fields of a rendered object → their old value, as Stripe renders them (since 2015-01-26):
    a nested hash shows only its changed keys (a key that did not exist before: null), an array whole."""
    prev: dict[str, Any] = {}
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            prev[key] = previous_attributes(before, after)
        else:
            prev[key] = before
    return prev


@dataclass
class EventLog:
    """One mode's events, ascending by ``(created, seq)``."""

    livemode: bool
    api_version: str
    keys: list[tuple[int, int]] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # parallel to keys: filters without decoding
    by_id: dict[str, int] = field(default_factory=dict)  # id -> seq
    seq: int = 0

    def record(
        self,
        type_: str,
        obj: dict[str, Any],
        request_id: str | None,
        idempotency_key: str | None,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.seq += 1
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event_id, created = rand_id("evt_1", 23), int(time.time())
        event: dict[str, Any] = {
            "id": event_id,
            "object": "event",
            "api_version": self.api_version,
            "created": created,
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": idempotency_key if request_id else None},
            "type": type_,
        }
        key = (created, self.seq)
        i = bisect_left(self.keys, key)  # the clock may step back: keep the order anyway
        self.keys.insert(i, key)
        self.blobs.insert(i, json.dumps(event).encode())
        self.types.insert(i, type_)
        self.by_id[event_id] = self.seq
        return event

    def index_of(self, event_id: str) -> int | None:
        seq = self.by_id.get(event_id)
        if seq is None:
            return None
        for i in range(len(self.keys) - 1, -1, -1):  # recent events are the ones looked up
            if self.keys[i][1] == seq:
                return i
        return None

    def get(self, i: int) -> dict[str, Any]:
        return json.loads(self.blobs[i])  # type: ignore[no-any-return]

    def window_start(self, now: int | None = None) -> int:
        """Index of the oldest event still inside the 30-day retention."""
        cutoff = (int(time.time()) if now is None else now) - RETENTION_S
        return bisect_left(self.keys, (cutoff,))

    def expire_all(self) -> int:
        """Move every recorded event back past the retention (tests: a cursor Stripe no longer keeps)."""
        shift = RETENTION_S + 86400
        for i, (created, seq) in enumerate(self.keys):
            self.keys[i] = (created - shift, seq)
            event = json.loads(self.blobs[i])
            event["created"] -= shift
            self.blobs[i] = json.dumps(event).encode()
        return len(self.keys)


def type_matcher(patterns: list[str]) -> Any:
    """A predicate for ``type``/``types[]``: exact names or one trailing ``*`` wildcard (``customer.*``)."""
    exact = {p for p in patterns if not p.endswith("*")}
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def match(t: str) -> bool:
        return t in exact or (bool(prefixes) and t.startswith(prefixes))

    return match


@dataclass
class Delivery:
    """Where events are forwarded (``stripe listen --forward-to``) and what happened to each."""

    url: str | None = None
    secret: str = ""
    types: list[str] = field(default_factory=lambda: ["*"])
    log: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)
    lock: Any = None  # anyio.Lock, made on first use inside the server's event loop

    async def flush(self) -> None:
        """Post queued events in order (one attempt each), signed with ``secret``.

        One flusher at a time, popping the shared queue in order, so concurrent API requests never
        reorder deliveries; returns once everything queued before the call was attempted (what
        ``POST /_sandbox/webhooks/flush`` waits for).
        """
        import anyio
        import httpx

        if self.lock is None:
            self.lock = anyio.Lock()
        async with self.lock:
            if not self.url:
                self.queue.clear()
                return
            if not self.queue:
                return
            async with httpx.AsyncClient(timeout=5.0) as client:
                await self._drain(client, type_matcher(self.types))

    async def _drain(self, client: Any, match: Any) -> None:
        import httpx

        while self.queue:
            event = self.queue.pop(0)
            if not match(event["type"]):
                continue
            payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
            headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(payload, self.secret)}
            entry: dict[str, Any] = {"event": event["id"], "type": event["type"]}
            try:
                response = await client.post(self.url, content=payload, headers=headers)
                entry["status"] = response.status_code
            except httpx.HTTPError as exc:
                entry["error"] = type(exc).__name__
            self.log.append(entry)
