"""The sandbox ASGI app: a Stripe API emulator (``/v1``), SCIM mount and a test-control API.

Built here from its parts: ``state.py`` (all mutable state), ``front.py`` (what surrounds every
``/v1`` handler, and SCIM faults), ``api/`` (a module per Stripe resource, each with a route table
collected below), ``scim/`` (the SCIM emulator, routed by the same table style) and ``control.py``.

Deviations from Stripe worth knowing (all deliberate, for determinism and testability):

* Idempotency results are saved for 2xx and 404 responses only (Stripe saves nothing when
  parameter validation fails or on 5xx; we also skip 409/429/400s), so retrying after a fault
  or a validation error re-executes.
* ``/_sandbox/*`` is a test-control API with no auth and no Stripe semantics.
* Search sees a per-customer snapshot until ``search_lag_s`` has passed (see ``search.py``).
* Fault rules (``/_sandbox/faults``) also reach ``/scim/v2`` when their ``path`` names a SCIM path
  (500/429 in SCIM's error shape, reset, drop_after_commit, slow); random faults stay ``/v1``-only.
* ``Stripe-Version`` is checked for shape only (a real date since 2011, not in the future, optional
  release name and beta flags), not against Stripe's release list; it is checked after the API key.
* Answers carry ``Stripe-Ratelimit-Limit``/``-Remaining`` (the sandbox's own bucket, for tests),
  which Stripe does not send; what Stripe's libraries act on (``Stripe-Should-Retry: true`` on a
  ``lock_timeout`` only, no ``Retry-After``) is as Stripe sends it.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.routing import Mount

from .api import accounts, billing_portal, customer_search, customers, events, payment_methods, subscriptions
from .api.context import Handler
from .api.payment_methods import PAYMENT_METHOD_TYPES
from .config import SandboxConfig
from .control import starlette_routes
from .faults import SCIM_PREFIX
from .front import Front
from .routing import RouteTable, collect
from .scim import ScimSandbox
from .seed import SHARED_PEOPLE
from .state import API_VERSION, Sandbox

__all__ = ["API_VERSION", "PAYMENT_METHOD_TYPES", "ROUTES", "Sandbox", "SandboxApp", "build_app"]

# The /v1 route table: the first route whose method and path match answers (so customer search
# comes before ``/v1/customers/{id}``).
ROUTES: RouteTable[Handler] = RouteTable(
    collect(
        events.ROUTES,
        customer_search.ROUTES,
        customers.ROUTES,
        payment_methods.ROUTES,
        subscriptions.ROUTES,
        billing_portal.ROUTES,
        accounts.ROUTES,
    )
)


class _LatencyWrapper:
    def __init__(self, app: Any, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.sandbox.config.latency_ms:
            await anyio.sleep(self.sandbox.config.latency_ms / 1000.0)
        await self.app(scope, receive, send)


class SandboxApp(Starlette):
    """Starlette app that routes ``/v1`` straight to the emulator (bypassing error middleware,
    so connection faults really drop the connection); ``/scim/v2`` requests meet the fault rules
    the same way before Starlette routes them to the SCIM emulator."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # type: ignore[override]
        if scope["type"] == "http" and (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            front: Front = self.state.front
            await front.handle_v1(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith(SCIM_PREFIX):
            await self.state.front.handle_scim(scope, receive, send, super().__call__)
            return
        await super().__call__(scope, receive, send)


def build_app(config: SandboxConfig | None = None) -> Starlette:
    config = config or SandboxConfig()
    sandbox = Sandbox(config)
    routes: list[Any] = list(starlette_routes(sandbox))
    scim = ScimSandbox(
        token=config.scim_token,
        seed=config.seed,
        empty=config.empty,
        shared_emails=[p["email"] for p in SHARED_PEOPLE],
        keep_inactive=config.scim_keep_inactive,
    )
    sandbox.scim = scim
    routes.append(Mount("/scim/v2", app=_LatencyWrapper(scim.app, sandbox)))
    app = SandboxApp(routes=routes)
    app.state.sandbox = sandbox
    app.state.front = Front(sandbox, ROUTES)
    return app
