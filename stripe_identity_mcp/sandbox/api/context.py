"""What every /v1 handler works with: the per-request context, parameter parsing, list bodies."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ..forms import StripeError, missing, unknown
from ..routing import Route
from ..state import ACCOUNT_ID, Sandbox
from ..store import ModeStore
from .auth import redact_key_permission


def now_ts() -> int:
    return int(time.time())


class Ctx:
    """Per-request context."""

    def __init__(self, sandbox: Sandbox, key: str, mode: str, perms: frozenset[str] | None, method: str, path: str, params: dict[str, Any]):
        self.sb = sandbox
        self.key = key
        self.mode = mode
        self.perms = perms
        self.method = method
        self.path = path
        self.params = params
        self.store: ModeStore = sandbox.stores[mode]
        self.other: ModeStore = sandbox.stores["live" if mode == "test" else "test"]
        # Set by handle_v1; None for changes made "in the Dashboard" (/_sandbox/dashboard).
        self.request_id: str | None = None
        self.idempotency_key: str | None = None

    def emit(self, type_: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        """Record an Event for a committed change (and queue it for webhook delivery)."""
        event = self.sb.events[self.mode].record(type_, obj, self.request_id, self.idempotency_key, previous)
        if self.sb.delivery.url:
            self.sb.delivery.queue.append(event)

    def need(self, perm: str) -> None:
        if self.perms is not None and perm not in self.perms and perm.replace("_read", "_write") not in self.perms:
            raise StripeError(
                403,
                f"The provided key '{redact_key_permission(self.key)}' does not have the required permissions for this "
                f"endpoint on account '{ACCOUNT_ID}'. Having the '{perm}' permission would allow this request to continue.",
            )

    def allow(self, allowed: set[str]) -> None:
        for k in self.params:
            if k not in allowed:
                raise unknown(k)

    def no_such(self, what: str, obj_id: str, param: str = "id", exists_other: bool = False) -> StripeError:
        msg = f"No such {what}: '{obj_id}'"
        if exists_other:
            if self.mode == "live":
                msg += "; a similar object exists in test mode, but a live mode key was used to make this request."
            else:
                msg += "; a similar object exists in live mode, but a test mode key was used to make this request."
        return StripeError(404, msg, code="resource_missing", param=param)

    def live_customer(self, cid: str, param: str = "customer") -> dict[str, Any]:
        """The customer record for a `customer` parameter, or Stripe's 404 (deleted ones included)."""
        rec = self.store.customers.get(cid)
        if rec is None or rec.get("deleted"):
            raise self.no_such("customer", cid, param, exists_other=rec is None and cid in self.other.customers)
        return rec

    def customer_param(self) -> str:
        """A required ``customer`` parameter naming a live (not deleted) customer."""
        if not self.params.get("customer"):
            raise missing("customer")
        cid = self.str_param("customer", self.params["customer"])
        self.live_customer(cid)
        return cid

    def limit(self, default: int = 10) -> int:
        raw = self.params.get("limit")
        if raw is None:
            return default
        if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw.strip()):
            raise StripeError(400, f"Invalid integer: {raw if isinstance(raw, str) else json.dumps(raw)}", code="parameter_invalid_integer", param="limit")
        n = int(raw)
        if n < 1:
            raise StripeError(400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="limit")
        if n > 100:
            raise StripeError(400, "This value must be less than or equal to 100.", code="parameter_invalid_integer", param="limit")
        return n

    def created(self) -> Any:
        raw = self.params.get("created")
        if raw is None:
            return None
        if isinstance(raw, str):
            return int_param(raw, "created")
        if isinstance(raw, dict):
            out = {}
            for k, v in raw.items():
                if k not in ("gt", "gte", "lt", "lte"):
                    raise unknown(f"created[{k}]")
                out[k] = int_param(v, f"created[{k}]")
            return out
        raise StripeError(400, "Invalid created: must be an integer or a hash with gt, gte, lt, lte.", code="parameter_invalid", param="created")

    def expand(self, allowed: set[str] | None = None) -> set[str]:
        raw = self.params.get("expand")
        if raw is None:
            return set()
        if isinstance(raw, str):
            if raw == "":
                return set()
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
        if not isinstance(raw, list):
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
        out = set()
        for v in raw:
            if not isinstance(v, str):
                raise StripeError(400, "Invalid array", code="parameter_invalid", param="expand")
            if allowed is not None and v not in allowed:
                raise StripeError(400, f"This property cannot be expanded ({v}).", code="parameter_invalid", param="expand")
            out.add(v)
        return out

    def str_param(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise StripeError(400, f"Invalid string: {json.dumps(value)}", code="parameter_invalid", param=name)
        return value


def int_param(raw: Any, param: str) -> int:
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw.strip()):
        raise StripeError(400, f"Invalid integer: {raw if isinstance(raw, str) else json.dumps(raw)}", code="parameter_invalid_integer", param=param)
    return int(raw)


def list_body(url: str, data: list[Any], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


Handler = Callable[[Ctx, dict[str, str]], tuple[int, dict[str, Any]]]
# A resource module's route table: method, path template (``{id}`` segments), handler.
StripeRoute = Route[Handler]


def get_customer(ctx: Ctx, cid: str, param: str = "id", allow_deleted: bool = True) -> dict[str, Any]:
    rec = ctx.store.customers.get(cid)
    if rec is None or (rec.get("deleted") and not allow_deleted):
        raise ctx.no_such("customer", cid, param, exists_other=cid in ctx.other.customers and rec is None)
    return rec


def cursor(ctx: Ctx, name: str, lookup: Callable[[str], Any], what: str) -> Any:
    raw = ctx.params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise StripeError(400, f"Invalid string: {json.dumps(raw)}", code="parameter_invalid", param=name)
    obj = lookup(raw)
    if obj is None:
        raise ctx.no_such(what, raw, name)
    return obj


def validate_metadata(value: Any, existing: dict[str, str] | None) -> dict[str, str]:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid metadata: must be a hash of string keys and string values, or an empty string to unset.", code="parameter_invalid", param="metadata")
    md = dict(existing or {})
    for k, v in value.items():
        if "[" in k or "]" in k:
            raise StripeError(400, "Invalid metadata key: metadata keys cannot contain square brackets ('[' or ']').", code="parameter_invalid", param="metadata")
        if len(k) > 40:
            raise StripeError(400, f"Invalid key: {k[:60]} must be a string under 40 characters", code="parameter_invalid", param=f"metadata[{k[:60]}]")
        if isinstance(v, dict) or isinstance(v, list):
            raise StripeError(400, f"Invalid val: {json.dumps(v)[:80]} must be a string under 500 characters", code="parameter_invalid", param=f"metadata[{k}]")
        if v == "":
            md.pop(k, None)
            continue
        if len(v) > 500:
            raise StripeError(400, f"Invalid val: {v[:40]}... must be a string under 500 characters", code="parameter_invalid", param=f"metadata[{k}]")
        md[k] = v
    if len(md) > 50:
        raise StripeError(
            400,
            f"Metadata can have up to 50 keys, but you've set {len(md)}. Email us at support+metadata@stripe.com for more information.",
            code="parameter_invalid",
            param="metadata",
        )
    return md

