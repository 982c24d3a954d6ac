"""`ScimSandbox`: the SCIM endpoint as an ASGI app — bearer auth, the route table, SCIM-shaped errors."""

from __future__ import annotations

import itertools
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from ..routing import RouteTable, collect
from .groups import Groups
from .protocol import ScimError, error_response
from .routes import DISCOVERY_ROUTES, Handler, resource_routes, search_every_type_route
from .seed import seed as seed_resources
from .store import ResourceStore
from .users import Users


class ScimSandbox:
    """Stripe-like SCIM 2.0 endpoint (Users, Groups, discovery), in memory. ``app`` is a Starlette ASGI app."""

    def __init__(
        self,
        token: str = "scim_sandbox",
        seed: int = 42,
        empty: bool = False,
        shared_emails: list[str] | None = None,
        keep_inactive: bool = False,
    ) -> None:
        self.token = token
        self.seed = seed
        clock = itertools.count(1)
        user_store, group_store = ResourceStore("User", clock), ResourceStore("Group", clock)
        self.groups_api = Groups(group_store, user_store)
        self.users_api = Users(user_store, self.groups_api, keep_inactive)
        # What tests and tools read: id → stored resource.
        self.users: dict[str, dict[str, Any]] = user_store.items
        self.groups: dict[str, dict[str, Any]] = group_store.items
        if not empty:
            seed_resources(self.users_api, self.groups_api, seed, shared_emails)
        kinds = [self.users_api, self.groups_api]  # Users before Groups, as /.search lists them
        self.routes: RouteTable[Handler] = RouteTable(
            collect(*(resource_routes(k) for k in kinds), search_every_type_route(kinds), DISCOVERY_ROUTES)
        )
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        self.app = Starlette(routes=[StarletteRoute("/{path:path}", self._dispatch, methods=methods)])

    @property
    def keep_inactive(self) -> bool:
        """False is Stripe's behaviour (deactivation deletes); the sandbox's /_sandbox/config switches it."""
        return self.users_api.keep_inactive

    @keep_inactive.setter
    def keep_inactive(self, value: bool) -> None:
        self.users_api.keep_inactive = value

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The stored user whose userName equals ``email`` (case-insensitive), or None."""
        return self.users_api.by_email(email)

    def _sorted_users(self) -> list[dict[str, Any]]:
        """The users in creation order (the order lists answer in)."""
        return self.users_api.store.sorted()

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and value.strip() == self.token and bool(self.token)

    async def _dispatch(self, request: Request) -> Response:
        try:
            if not self._authorised(request):
                raise ScimError(401, "Authentication failed: a valid SCIM bearer token is required")
            return await self._route(request)
        except ScimError as exc:
            return error_response(exc)
        except Exception:  # pragma: no cover - an emulator bug still answers in SCIM shape
            return error_response(ScimError(500, "Internal error in the SCIM sandbox"))

    async def _route(self, request: Request) -> Response:
        parts = [p for p in request.path_params.get("path", "").split("/") if p]
        method = request.method.upper()
        if method == "HEAD":
            method = "GET"
        # Endpoint names are case-insensitive (the tables are written in lower case); ids are not.
        path = "/" + "/".join([p.lower() for p in parts[:1]] + parts[1:])
        found = self.routes.find(method, path)
        if found is not None:
            route, params = found
            return await route.handler(request, params)
        other = self.routes.allowed(path)
        if other is not None:
            raise ScimError(405, f"{method} is not allowed on {other.label}")
        raise ScimError(404, "Unknown SCIM endpoint")

