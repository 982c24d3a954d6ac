"""Async client for Stripe's SCIM 2.0 endpoint (Dashboard team members).

Same discipline as the Stripe client (clients/http.py): paced, retried with jittered backoff and a
deadline, secrets redacted, SCIM error bodies (`status`, `scimType`, `detail`) parsed into typed
errors. Pacing: its own bucket at `scim_rate` requests/s (settings.SCIM_RATE, 10 r/s by default:
Stripe publishes no SCIM limit), shared by reads and writes — a separate budget from the API key's.

Retries and writes. Connection errors, 429 and 5xx are retried for every method; each call's
attempts are traced (clients/http.py Trace), so a retry's answer is read in the light of what the
earlier attempts may have done:
- POST: userName is unique, so a retry can never create a second user. A 409 counts as our own lost
  create only when an earlier attempt of this call may have committed (its answer was lost or it got
  a 5xx); after a 429 — which proves nothing was done — a 409 is the uniqueness refusal it is.
- PATCH active=false is idempotent.
- DELETE: a 404 on a retry after an uncertain attempt means that attempt deleted the user.
- Group PATCH (add/remove one member) is idempotent: adding a member twice or removing an absent one
  leaves the group as asked.
The team tools read the member (or the group) back after every write: a 204 or an empty body proves nothing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from stripe_identity_mcp import __version__
from stripe_identity_mcp.clients.errors import BadRequestError, ConflictError, NotFoundError, UnexpectedResponseError
from stripe_identity_mcp.clients.http import HttpApi, LazyHttpClient, RetryPolicy, TokenBucket
from stripe_identity_mcp.clients.stripe import path_segment
from stripe_identity_mcp.models.scim import (
    PATCH_SCHEMA,
    USER_SCHEMA,
    ScimGroup,
    ScimGroupListResponse,
    ScimGroupRef,
    ScimListResponse,
    ScimUser,
)
from stripe_identity_mcp.settings import SCIM_RATE

if TYPE_CHECKING:
    import httpx

    from stripe_identity_mcp.settings import Settings

SCIM_JSON = "application/scim+json"
MAX_COUNT = 100
GROUP_SCAN_PAGES = 10  # a membership scan reads at most 1 000 groups


CLOCK_SKEW_S = 60.0  # how far the provider's clock may be ahead of ours when judging `meta.created`


def created_before(user: ScimUser, when: float) -> bool:
    """Whether the provider says the user was created before `when` (unix seconds); False if it does not say."""
    created = user.meta.created if user.meta else None
    if not created:
        return False
    try:
        stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp() < when


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
        policy: RetryPolicy | None = None,
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
            policy=policy,
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
            rate=settings.scim_rate,
            policy=RetryPolicy.from_settings(settings),
        )

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

    @staticmethod
    def _user_path(user_id: str) -> str:
        return f"/Users/{path_segment(user_id, 'member_id')}"

    @staticmethod
    def _group_path(group_id: str) -> str:
        return f"/Groups/{path_segment(group_id, 'group_id')}"

    # Reads ----------------------------------------------------------------------------------------
    async def list_users(
        self, *, filter: str | None = None, start_index: int = 1, count: int = MAX_COUNT
    ) -> ScimListResponse:
        params: dict[str, Any] = {"startIndex": max(1, start_index), "count": max(0, min(count, MAX_COUNT))}
        if filter:
            params["filter"] = filter
        return self.parse(ScimListResponse, await self.call("GET", "/Users", params=params))

    async def get_user(self, user_id: str) -> ScimUser:
        return self.parse(ScimUser, await self.call("GET", self._user_path(user_id)))

    async def find_by_email(self, email: str) -> ScimUser | None:
        page = await self.list_users(filter=f"userName eq {filter_value(email)}", count=10)
        wanted = email.lower()  # userName is case-insensitive in SCIM (RFC 7643 §4.1.1)
        for user in page.Resources:
            if user.userName.lower() == wanted:
                return user
        return None

    async def list_groups(
        self, *, filter: str | None = None, start_index: int = 1, count: int = MAX_COUNT
    ) -> ScimGroupListResponse:
        params: dict[str, Any] = {"startIndex": max(1, start_index), "count": max(0, min(count, MAX_COUNT))}
        if filter:
            params["filter"] = filter
        return self.parse(ScimGroupListResponse, await self.call("GET", "/Groups", params=params))

    async def get_group(self, group_id: str) -> ScimGroup:
        return self.parse(ScimGroup, await self.call("GET", self._group_path(group_id)))

    async def find_group_by_name(self, name: str) -> ScimGroup | None:
        page = await self.list_groups(filter=f"displayName eq {filter_value(name)}", count=10)
        wanted = name.lower()  # displayName is caseExact false (RFC 7643 §4.2)
        return next((g for g in page.Resources if g.displayName.lower() == wanted), None)

    async def groups_of(self, user: ScimUser) -> tuple[list[ScimGroupRef], bool]:
        """The user's groups and whether the list is complete.

        The user's own read-only `groups` when the provider reports it; otherwise the groups are asked
        (`members eq "<id>"`, or a bounded scan when that filter is refused) — an absent `groups` is
        "not reported", never "in no group".
        """
        if user.groups is not None:
            return list(user.groups), True
        try:
            page = await self.list_groups(filter=f"members eq {filter_value(user.id)}")
            found = [g for g in page.Resources if g.has_member(user.id)]
            complete = page.totalResults <= len(page.Resources) and all(g.members_known for g in page.Resources)
            return [ScimGroupRef(value=g.id, display=g.displayName) for g in found], complete
        except BadRequestError:
            pass  # filter on members not supported: scan
        found, index, known = [], 1, True
        for _ in range(GROUP_SCAN_PAGES):
            scan = await self.list_groups(start_index=index)
            found += [g for g in scan.Resources if g.has_member(user.id)]
            known = known and all(g.members_known for g in scan.Resources)
            index += len(scan.Resources)
            if not scan.Resources or index > scan.totalResults:
                return [ScimGroupRef(value=g.id, display=g.displayName) for g in found], known
        return [ScimGroupRef(value=g.id, display=g.displayName) for g in found], False

    async def add_group_member(self, group_id: str, user_id: str) -> ScimGroup | None:
        """PATCH add one member (RFC 7644 §3.5.2.1). The group when the answer has one, None on 204."""
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]}
        data = await self.call("PATCH", self._group_path(group_id), body=body)
        return self.parse(ScimGroup, data) if data is not None else None

    async def remove_group_member(self, group_id: str, user_id: str) -> ScimGroup | None:
        """PATCH remove `members[value eq "<id>"]` (RFC 7644 §3.5.2.2). The group, or None on 204."""
        path = f"members[value eq {filter_value(user_id)}]"
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove", "path": path}]}
        data = await self.call("PATCH", self._group_path(group_id), body=body)
        return self.parse(ScimGroup, data) if data is not None else None

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
        started = time.time()
        try:
            data = await self.call("POST", "/Users", body=body)
        except ConflictError as exc:
            if exc.trace is None or not exc.trace.earlier_attempt_may_have_committed:
                raise  # a genuine duplicate (a 429 or a refused attempt before it proves nothing was made)
            existing = await self.find_by_email(email)
            if existing is None or created_before(existing, started - CLOCK_SKEW_S):
                exc.nothing_done = True  # established: it existed before this call; nothing of ours committed
                raise  # the uniqueness refusal it is, not our lost create
            existing._recovered = True  # our earlier attempt created it; its answer was lost
            return existing
        user = self.parse(ScimUser, data)
        if user.userName.lower() != email.lower():
            raise UnexpectedResponseError(
                f"Stripe SCIM answered the create with another user ({user.id}), not {email}: nothing is proven",
                hint="check the member list with list_team_members before trying again",
            )
        return user

    async def deactivate_user(self, user_id: str) -> ScimUser | None:
        """PATCH active=false. The user when the answer has one (callers still read back), None on 204."""
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": False}}]}
        data = await self.call("PATCH", self._user_path(user_id), body=body)
        return self.parse(ScimUser, data) if data is not None else None

    async def delete_user(self, user_id: str) -> Literal["deleted", "answer_lost"]:
        """DELETE; "answer_lost" when a retry met 404 after an attempt that may have deleted it."""
        try:
            await self.call("DELETE", self._user_path(user_id))
        except NotFoundError as exc:
            if exc.trace is None or not exc.trace.earlier_attempt_may_have_committed:
                raise  # it was not there when we asked
            return "answer_lost"
        return "deleted"
