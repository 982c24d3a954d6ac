"""The test-control API (``/_sandbox/*``): no auth and no Stripe semantics, a handler per path.

Faults, stats (and their reset), runtime config, webhook forwarding (and a flush, so tests wait for
deliveries without sleeping), event expiry, and updates made "in the Dashboard".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from .api.context import Ctx
from .api.customers import customers_update
from .faults import FaultRule
from .forms import StripeError
from .routing import Route
from .state import Sandbox

LIMIT_SETTINGS = ("endpoint_rate_limit", "search_rate_limit", "endpoint_rate_limits", "concurrency_limit")
# Settings /_sandbox/config may change at runtime (the rest of SandboxConfig is read-only there).
RUNTIME_SETTINGS = (
    "rate_limit", "live_rate_limit", *LIMIT_SETTINGS, "search_lag_s", "latency_ms", "portal_configured", "fault_rate",
    "scim_keep_inactive", "scim_deactivate_deletes",
)

ControlHandler = Callable[[Sandbox, Request], Awaitable[JSONResponse]]


async def faults(sb: Sandbox, request: Request) -> JSONResponse:
    if request.method == "POST":
        try:
            data = await request.json()
            rules = [FaultRule.from_json(r) for r in data.get("rules", [])]
        except Exception as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        sb.faults.rules.extend(rules)
        return JSONResponse({"rules": [asdict(r) for r in sb.faults.rules]})
    if request.method == "DELETE":
        sb.faults.rules.clear()
        return JSONResponse({"rules": []})
    return JSONResponse({"rules": [asdict(r) for r in sb.faults.rules]})


async def stats(sb: Sandbox, request: Request) -> JSONResponse:
    return JSONResponse(sb.stats())


async def reset_stats(sb: Sandbox, request: Request) -> JSONResponse:
    sb.requests = 0
    sb.by_status.clear()
    sb.by_endpoint.clear()
    sb.limited_by_endpoint.clear()
    sb.rate_limited.clear()
    sb.limiter.max_in_flight = 0
    sb.faults.injected = 0
    return JSONResponse(sb.stats())


async def config(sb: Sandbox, request: Request) -> JSONResponse:
    if request.method == "POST":
        try:
            data = await request.json()
        except Exception as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        for k, v in data.items():
            if k not in RUNTIME_SETTINGS:
                return JSONResponse({"error": f"unknown or read-only setting {k!r}"}, status_code=400)
            if k == "portal_configured":
                sb.config.portal_configured = {**sb.config.portal_configured, **v}
            elif k == "fault_rate":
                sb.config.fault_rate = float(v)
                sb.faults.rate = float(v)
            elif k in ("scim_keep_inactive", "scim_deactivate_deletes"):
                # scim_deactivate_deletes: the old name, with the opposite sense. Switching at
                # runtime changes what later deactivations do, not the seeded members.
                keep = bool(v) if k == "scim_keep_inactive" else not bool(v)
                sb.config.scim_keep_inactive = keep
                if sb.scim is not None:
                    sb.scim.keep_inactive = keep
            else:
                setattr(sb.config, k, v)
        if {"rate_limit", "live_rate_limit", *LIMIT_SETTINGS} & set(data):
            sb.limiter.buckets.clear()
    return JSONResponse(sb.public_config())


async def webhooks(sb: Sandbox, request: Request) -> JSONResponse:
    """Forward events to a URL, signed with a secret (``stripe listen --forward-to``); GET: the log."""
    d = sb.delivery
    if request.method == "POST":
        try:
            data = await request.json()
            url, secret = str(data["url"]), str(data["secret"])
            types = [str(t) for t in data.get("types", ["*"])]
        except Exception as exc:
            return JSONResponse({"error": f"give url, secret and optional types: {exc}"}, status_code=400)
        d.url, d.secret, d.types = url, secret, types
    elif request.method == "DELETE":
        d.url, d.secret, d.types = None, "", ["*"]
        d.queue.clear()
        d.log.clear()
    return JSONResponse({"url": d.url, "types": d.types, "log": d.log})


async def webhooks_flush(sb: Sandbox, request: Request) -> JSONResponse:
    """Tests: wait for deliveries without sleeping."""
    await sb.delivery.flush()
    return JSONResponse({"url": sb.delivery.url, "log": sb.delivery.log})


async def events_expire(sb: Sandbox, request: Request) -> JSONResponse:
    return JSONResponse({"expired": sum(log.expire_all() for log in sb.events.values())})


async def dashboard(sb: Sandbox, request: Request) -> JSONResponse:
    """An update made "in the Dashboard": the customer changes, its event has ``request.id`` null."""
    try:
        data = await request.json()
        cid, params, mode = str(data["customer"]), dict(data["params"]), str(data.get("mode", "test"))
    except Exception as exc:
        return JSONResponse({"error": f"give customer and params: {exc}"}, status_code=400)
    ctx = Ctx(sb, "dashboard", mode, None, "POST", f"/v1/customers/{cid}", params)
    try:
        status, obj = customers_update(ctx, {"id": cid})
    except StripeError as e:
        return JSONResponse(e.body("req_dashboard", mode == "live"), status_code=e.status)
    await sb.delivery.flush()
    return JSONResponse(obj, status_code=status)


def _rows(template: str, handler: ControlHandler, *methods: str) -> list[Route[ControlHandler]]:
    return [Route(m, template, handler) for m in methods]


# A row per method, as the /v1 and SCIM tables are written; `starlette_routes` groups them by path.
ROUTES: list[Route[ControlHandler]] = [
    *_rows("/_sandbox/faults", faults, "GET", "POST", "DELETE"),
    *_rows("/_sandbox/stats", stats, "GET"),
    *_rows("/_sandbox/reset-stats", reset_stats, "POST"),
    *_rows("/_sandbox/config", config, "GET", "POST"),
    *_rows("/_sandbox/webhooks", webhooks, "GET", "POST", "DELETE"),
    *_rows("/_sandbox/webhooks/flush", webhooks_flush, "POST"),
    *_rows("/_sandbox/events/expire", events_expire, "POST"),
    *_rows("/_sandbox/dashboard", dashboard, "POST"),
]


def starlette_routes(sb: Sandbox) -> list[StarletteRoute]:
    """The control routes as Starlette serves them (a route per path; other methods get 405)."""
    by_path: dict[str, tuple[ControlHandler, list[str]]] = {}
    for r in ROUTES:
        by_path.setdefault(r.template, (r.handler, []))[1].append(r.method)

    def endpoint(handler: ControlHandler) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def serve(request: Request) -> JSONResponse:
            return await handler(sb, request)

        return serve

    return [StarletteRoute(path, endpoint(h), methods=methods) for path, (h, methods) in by_path.items()]
