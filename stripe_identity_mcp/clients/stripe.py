"""Async Stripe client: bearer auth, pinned version, Stripe form encoding, typed results."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from stripe_identity_mcp import __version__
from stripe_identity_mcp.clients.errors import BadRequestError, InvalidTextError
from stripe_identity_mcp.clients.http import HttpApi, LazyHttpClient, RetryPolicy, TokenBucket
from stripe_identity_mcp.models.stripe import (
    Account,
    Customer,
    ListObject,
    PaymentMethod,
    PortalSession,
    SearchResult,
    Subscription,
)

if TYPE_CHECKING:
    import httpx

    from stripe_identity_mcp.clients.pacing import Pacer

Params = Mapping[str, Any]


def encode_form(params: Params | None) -> list[tuple[str, str]]:
    """Flatten params the way Stripe's libraries do.

    `{"metadata": {"a": "1"}}` → `metadata[a]=1`; lists → `expand[]=x` for scalars and
    `items[0][price]=p` for dicts; `None` and empty mappings are skipped (clearing all metadata
    takes an explicit `"metadata": ""`, never an accident); `""` is sent (it means "unset");
    booleans are `true`/`false`.
    """
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), sub)
        elif isinstance(value, (list, tuple)):
            for index, sub in enumerate(value):
                walk(f"{prefix}[{index}]" if isinstance(sub, Mapping) else f"{prefix}[]", sub)
        elif isinstance(value, bool):
            out.append((prefix, "true" if value else "false"))
        else:
            out.append((prefix, str(value)))

    walk("", dict(params or {}))
    for pair in out:  # text that cannot be sent (a lone surrogate) fails here, before any request
        try:
            pair[0].encode("utf-8"), pair[1].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidTextError("Stripe", exc) from None
    return out


def path_segment(value: str, what: str = "id") -> str:
    """Reject empty ids and dot segments; percent-encode one path segment (never `DELETE /v1/customers/`)."""
    if not value or not value.strip():
        raise BadRequestError(f"{what} must not be empty", status=400, type="invalid_request_error", param=what)
    if value.strip() in (".", ".."):  # a dot segment: the URL layer would resolve it to the parent path
        raise BadRequestError(
            f"{what} must not be '.' or '..'; nothing was sent", status=400, type="invalid_request_error", param=what
        )
    try:
        return quote(value, safe="")
    except UnicodeEncodeError as exc:
        raise InvalidTextError("the API", exc) from None


def idempotency_key_for(method: str, path: str, params: Params | None) -> str:
    """A key derived from the request itself, so the same logical create retried is the same request."""
    digest = hashlib.sha256(json.dumps([method, path, encode_form(params)], sort_keys=True).encode()).hexdigest()
    return f"sim-{digest[:40]}"


class StripeClient(HttpApi):
    service = "Stripe"

    def __init__(
        self,
        http: httpx.AsyncClient | LazyHttpClient,
        *,
        api_key: str,
        base_url: str,
        api_version: str,
        bucket: TokenBucket | None = None,
        pacer: Pacer | None = None,
        stripe_account: str | None = None,
        max_retries: int = 4,
        deadline_s: float = 30.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Stripe-Version": api_version,
            "User-Agent": f"stripe-identity-mcp/{__version__}",
        }
        if stripe_account:
            headers["Stripe-Account"] = stripe_account
        super().__init__(
            http,
            base_url=base_url,
            headers=headers,
            secrets=[api_key],
            bucket=bucket,
            pacer=pacer,
            max_retries=max_retries,
            deadline_s=deadline_s,
            policy=policy,
        )

    async def call(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """One Stripe API call → decoded JSON. POSTs always carry an Idempotency-Key (one for all retries)."""
        headers = dict(self.headers)
        form = encode_form(params)
        kwargs: dict[str, Any] = {"headers": headers}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            kwargs["content"] = urlencode(form).encode()
        elif form:
            kwargs["params"] = form
        response = await self.request(method, path, **kwargs)
        self.last_request_id = response.headers.get("request-id")
        self.last_replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return self.json(response)

    # Customers ----------------------------------------------------------------------------------
    async def retrieve_customer(self, customer_id: str, expand: Sequence[str] = ()) -> Customer:
        data = await self.call("GET", f"/v1/customers/{path_segment(customer_id, 'customer')}", {"expand": list(expand)})
        return self.parse(Customer, data)

    async def list_customers(self, **params: Any) -> ListObject[Customer]:
        return self.parse(ListObject[Customer], await self.call("GET", "/v1/customers", params))

    async def search_customers(self, query: str, **params: Any) -> SearchResult[Customer]:
        data = await self.call("GET", "/v1/customers/search", {"query": query, **params})
        return self.parse(SearchResult[Customer], data)

    async def create_customer(self, params: Params, idempotency_key: str | None = None) -> Customer:
        key = idempotency_key or idempotency_key_for("POST", "/v1/customers", params)
        return self.parse(Customer, await self.call("POST", "/v1/customers", params, idempotency_key=key))

    async def update_customer(self, customer_id: str, params: Params) -> Customer:
        path = f"/v1/customers/{path_segment(customer_id, 'customer')}"
        return self.parse(Customer, await self.call("POST", path, params))

    async def delete_customer(self, customer_id: str) -> Customer:
        data = await self.call("DELETE", f"/v1/customers/{path_segment(customer_id, 'customer')}")
        return self.parse(Customer, data)

    # Subscriptions, payment methods, portal ---------------------------------------------------------
    async def list_subscriptions(self, **params: Any) -> ListObject[Subscription]:
        return self.parse(ListObject[Subscription], await self.call("GET", "/v1/subscriptions", params))

    async def list_payment_methods(self, customer_id: str, **params: Any) -> ListObject[PaymentMethod]:
        path = f"/v1/customers/{path_segment(customer_id, 'customer')}/payment_methods"
        return self.parse(ListObject[PaymentMethod], await self.call("GET", path, params))

    async def retrieve_payment_method(self, pm_id: str) -> PaymentMethod:
        path = f"/v1/payment_methods/{path_segment(pm_id, 'payment_method')}"
        return self.parse(PaymentMethod, await self.call("GET", path))

    async def attach_payment_method(self, pm_id: str, customer_id: str) -> PaymentMethod:
        path = f"/v1/payment_methods/{path_segment(pm_id, 'payment_method')}/attach"
        key = idempotency_key_for("POST", path, {"customer": customer_id})
        data = await self.call("POST", path, {"customer": customer_id}, idempotency_key=key)
        return self.parse(PaymentMethod, data)

    async def detach_payment_method(self, pm_id: str) -> PaymentMethod:
        path = f"/v1/payment_methods/{path_segment(pm_id, 'payment_method')}/detach"
        return self.parse(PaymentMethod, await self.call("POST", path))

    async def create_portal_session(self, params: Params) -> PortalSession:
        return self.parse(PortalSession, await self.call("POST", "/v1/billing_portal/sessions", params))

    # Connect ------------------------------------------------------------------------------------
    async def list_accounts(self, **params: Any) -> ListObject[Account]:
        return self.parse(ListObject[Account], await self.call("GET", "/v1/accounts", params))

    async def retrieve_account(self, account_id: str) -> Account:
        data = await self.call("GET", f"/v1/accounts/{path_segment(account_id, 'account')}")
        return self.parse(Account, data)
