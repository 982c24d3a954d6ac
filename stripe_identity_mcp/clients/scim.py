"""Async client for Stripe's SCIM 2.0 endpoint (Dashboard team members).

Same discipline as the Stripe client (clients/http.py): paced, retried with jittered backoff and a
deadline, secrets redacted, SCIM error bodies (`status`, `scimType`, `detail`) parsed into typed
errors. Pacing: its own bucket at SCIM_RATE requests/s (10 r/s: Stripe publishes no SCIM limit;
identity providers push far less than that, and offboarding is never bulk-urgent), shared by reads
and writes — a separate budget from the API key's.

Retries and writes. Connection errors, 429 and 5xx are retried for every method. That is safe:
- POST: userName is unique, so a retry can never create a second user; if the first attempt
  committed but its answer was lost, the retry meets 409 uniqueness, and create_user then looks the
  email up and returns that user marked `recovered` (a 409 on the first attempt is a real duplicate).
- PATCH active=false is idempotent.
- DELETE: a 404 on a retry means the first attempt deleted the user: that is success.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from stripe_identity_mcp import __version__
from stripe_identity_mcp.clients.errors import ConflictError, NotFoundError
from stripe_identity_mcp.clients.http import HttpApi, LazyHttpClient, TokenBucket
from stripe_identity_mcp.clients.stripe import path_segment
from stripe_identity_mcp.models.scim import PATCH_SCHEMA, USER_SCHEMA, ScimListResponse, ScimUser

if TYPE_CHECKING:
    import httpx

    from stripe_identity_mcp.settings import Settings

SCIM_JSON = "application/scim+json"
SCIM_RATE = 10.0
MAX_COUNT = 100

# Attempts made by the current task's request (a list so the retry loop can bump it in place).
_attempts: ContextVar[list[int] | None] = ContextVar("scim_attempts", default=None)


def filter_value(value: str) -> str:
    """Quote a value for a SCIM filter (RFC 7644 §3.4.2.2: a JSON string: `"` and `\\` escaped, controls too)."""
    return json.dumps(value, ensure_ascii=False)


class ScimClient(HttpApi):
    service = "Stripe SCIM"

    def __init__(
        self,
        http: httpx.AsyncClient | LazyHttpClient,
        *,
        token: str,
        base_url: str,
        rate: float = SCIM_RATE,
        max_retries: int = 4,
        deadline_s: float = 30.0,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": SCIM_JSON,
            "User-Agent": f"stripe-identity-mcp/{__version__}",
        }
        super().__init__(
            http,
            base_url=base_url,
            headers=headers,
            secrets=[token],
            bucket=TokenBucket(rate),
            max_retries=max_retries,
            deadline_s=deadline_s,
        )

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient | LazyHttpClient) -> ScimClient:
        token = settings.scim_token.get_secret_value() if settings.scim_token is not None else ""
        if not token:
            raise ValueError("STRIPE_SCIM_TOKEN is not set")
        return cls(
            http,
            token=token,
            base_url=settings.scim_base,
            max_retries=settings.max_retries,
            deadline_s=settings.retry_deadline_s,
        )

    async def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        counter = _attempts.get()
        if counter is not None:
            counter[0] += 1
        return await super()._once(method, url, **kwargs)

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One SCIM call → decoded JSON (None for 204 / empty bodies)."""
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["headers"]["Content-Type"] = SCIM_JSON
            kwargs["json"] = body
        response = await self.request(method, path, **kwargs)
        self.last_request_id = response.headers.get("request-id")
        return self.json(response)

    async def _counted(self, method: str, path: str, **kwargs: Any) -> tuple[Any, int]:
        """Like call(), also returning how many attempts it took (the error carries it as `.attempts`)."""
        counter = [0]
        token = _attempts.set(counter)
        try:
            return await self.call(method, path, **kwargs), counter[0]
        except Exception as exc:
            exc.attempts = counter[0]  # type: ignore[attr-defined]
            raise
        finally:
            _attempts.reset(token)

    @staticmethod
    def _user_path(user_id: str) -> str:
        return f"/Users/{path_segment(user_id, 'member_id')}"

    # Reads ----------------------------------------------------------------------------------------
    async def list_users(
        self, *, filter: str | None = None, start_index: int = 1, count: int = MAX_COUNT
    ) -> ScimListResponse:
        params: dict[str, Any] = {"startIndex": max(1, start_index), "count": max(0, min(count, MAX_COUNT))}
        if filter:
            params["filter"] = filter
        return self.parse(ScimListResponse, await self.call("GET", "/Users", params=params) or {})

    async def get_user(self, user_id: str) -> ScimUser:
        return self.parse(ScimUser, await self.call("GET", self._user_path(user_id)))

    async def find_by_email(self, email: str) -> ScimUser | None:
        page = await self.list_users(filter=f"userName eq {filter_value(email)}", count=10)
        wanted = email.lower()  # userName is case-insensitive in SCIM (RFC 7643 §4.1.1)
        for user in page.Resources:
            if user.userName.lower() == wanted:
                return user
        return None

    # Writes ---------------------------------------------------------------------------------------
    async def create_user(
        self,
        email: str,
        given_name: str | None = None,
        family_name: str | None = None,
        display_name: str | None = None,
    ) -> ScimUser:
        body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": email, "active": True}
        name = {k: v for k, v in (("givenName", given_name), ("familyName", family_name)) if v}
        if name:
            body["name"] = name
        display = display_name or " ".join(name.values()) or None
        if display:
            body["displayName"] = display
        body["emails"] = [{"value": email, "primary": True, "type": "work"}]
        try:
            data, _ = await self._counted("POST", "/Users", body=body)
        except ConflictError as exc:
            if getattr(exc, "attempts", 1) <= 1:
                raise  # a genuine duplicate
            existing = await self.find_by_email(email)
            if existing is None:
                raise
            existing._recovered = True  # our earlier attempt created it; its answer was lost
            return existing
        return self.parse(ScimUser, data)

    async def deactivate_user(self, user_id: str) -> ScimUser | None:
        """PATCH active=false. Returns the user when the provider answers 200 with a body, None on 204."""
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": False}}]}
        data = await self.call("PATCH", self._user_path(user_id), body=body)
        return self.parse(ScimUser, data) if data else None

    async def delete_user(self, user_id: str) -> None:
        try:
            await self._counted("DELETE", self._user_path(user_id))
        except NotFoundError as exc:
            if getattr(exc, "attempts", 1) <= 1:
                raise  # it was never there
            # an earlier attempt deleted it; only its answer was lost
