"""Events: list (the last 30 days, ``type`` wildcards, ``types[]``) and retrieve; the log lives in ``events.py``."""

from __future__ import annotations

from typing import Any

from ..events import EventLog, type_matcher
from ..forms import StripeError
from ..store import created_bounds, page_indices
from .context import Ctx, StripeRoute, cursor, list_body


def _event_log(ctx: Ctx) -> EventLog:
    return ctx.sb.events[ctx.mode]


def events_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """GET /v1/events: newest first, the last 30 days only; ``type`` takes a ``*`` wildcard."""
    ctx.need("rak_event_read")
    ctx.allow({"created", "delivery_success", "ending_before", "expand", "limit", "starting_after", "type", "types"})
    limit = ctx.limit()
    created = ctx.created()
    ctx.expand()
    log = _event_log(ctx)
    typ, types = ctx.params.get("type"), ctx.params.get("types")
    if typ not in (None, "") and types not in (None, ""):
        raise StripeError(400, "You cannot specify both `type` and `types`.", code="parameter_invalid", param="types")
    if types not in (None, ""):
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise StripeError(400, "Invalid array", code="parameter_invalid", param="types")
        if len(types) > 20:
            raise StripeError(400, "You may only specify up to 20 types.", code="parameter_invalid", param="types")
        match = type_matcher([t for t in types if not t.endswith("*")])  # types[] takes exact names only
    elif typ not in (None, ""):
        match = type_matcher([ctx.str_param("type", typ)])
    else:
        match = lambda t: True  # noqa: E731
    start = log.window_start()
    lo, hi = created_bounds(log.keys, created)
    matched = [i for i in range(max(lo, start), hi) if match(log.types[i])]
    mkeys = [log.keys[i] for i in matched]

    def lookup(eid: str) -> Any:
        i = log.index_of(eid)
        return log.keys[i] if i is not None and i >= start else None

    sa = cursor(ctx, "starting_after", lookup, "event")
    eb = cursor(ctx, "ending_before", lookup, "event")
    idx, more = page_indices(mkeys, 0, len(mkeys), limit, sa, eb)
    return 200, list_body("/v1/events", [log.get(matched[i]) for i in idx], more)


def events_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_event_read")
    ctx.allow({"expand"})
    log = _event_log(ctx)
    i = log.index_of(m["id"])
    if i is None or i < log.window_start():
        raise ctx.no_such("event", m["id"])
    return 200, log.get(i)


ROUTES: list[StripeRoute] = [
    StripeRoute("GET", "/v1/events", events_list),
    StripeRoute("GET", "/v1/events/{id}", events_retrieve),
]
