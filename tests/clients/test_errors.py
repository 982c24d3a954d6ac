"""Errors the stripe-python way: typed by Stripe's type/code, carrying the request, hints keyed on codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stripe_identity_mcp.clients.errors import (
    BadRequestError,
    CardError,
    IdempotencyError,
    LockTimeoutError,
    NotFoundError,
    RateLimitError,
    ServerError,
    parse_error_body,
)
from stripe_identity_mcp.sandbox import FIXED_IDS
from tests import loopback
from tests.conftest import make_settings, mcp_client
from tests.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.anyio


def stripe_body(type_: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": "m", **extra}}


@pytest.mark.parametrize(
    "status,body,cls",
    [
        (402, stripe_body("card_error", "card_declined", decline_code="insufficient_funds"), CardError),
        (400, stripe_body("idempotency_error"), IdempotencyError),
        (429, stripe_body("invalid_request_error", "lock_timeout"), LockTimeoutError),
        (429, stripe_body("invalid_request_error", "rate_limit"), RateLimitError),
        (404, stripe_body("invalid_request_error", "resource_missing", param="id"), NotFoundError),
        (400, stripe_body("invalid_request_error", "parameter_unknown", param="x"), BadRequestError),
        (503, stripe_body("api_error"), ServerError),
        (418, {"no": "error key"}, BadRequestError.__mro__[1]),  # ApiStatusError
    ],
)
def test_errors_are_typed_by_code_then_type_then_status(status, body, cls):
    error = parse_error_body(status, body, "req_1", [], method="POST", path="/v1/customers", headers={"request-id": "req_1"})
    assert type(error) is cls
    assert (error.status, error.request_id, error.method, error.path) == (status, "req_1", "POST", "/v1/customers")
    assert error.headers == {"request-id": "req_1"}


def test_a_lock_timeout_is_a_rate_limit_error_too():
    error = parse_error_body(429, stripe_body("invalid_request_error", "lock_timeout"), None, [])
    assert isinstance(error, RateLimitError) and error.code == "lock_timeout"


async def test_hints_come_from_codes_and_the_error_keeps_the_request(sandbox, tmp_path):
    cid = FIXED_IDS["omar"]
    lock = json.dumps({"error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "locked"}})
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("GET", rf"/v1/customers/{cid}$", status=429, body=lock, count=10,
                       headers={"Content-Type": "application/json", "Stripe-Should-Retry": "true"}))  # fmt: skip
        settings = make_settings(sandbox, api_base=proxy.url, scim_token=None, max_retries=1, allow_writes=True,
                                 audit_log=tmp_path / "audit.jsonl")  # fmt: skip
        async with mcp_client(settings) as client:
            locked = await client.call_tool("get_customer", {"customer_id": cid})
            proxy.clear()
            args = {"email": "idem@example.com", "idempotency_key": "order-7", "allow_duplicate_email": True}
            first = await client.call_tool("create_customer", args)
            other = await client.call_tool("create_customer", {**args, "name": "Other"})
    assert locked.is_error and "code=lock_timeout" in locked.content[0].text
    assert "another request is changing this object" in locked.content[0].text
    assert not first.is_error, first.content[0].text
    assert other.is_error and "type=idempotency_error" in other.content[0].text
    assert "used for a different request" in other.content[0].text
    assert loopback.get(f"{sandbox.base_url}/_sandbox/stats").status_code == 200
