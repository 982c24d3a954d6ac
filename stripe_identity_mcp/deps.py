"""What the server's lifespan yields to every tool: settings and the shared clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from stripe_identity_mcp.audit_log import AuditLog
from stripe_identity_mcp.clients.http import LazyHttpClient, RetryPolicy, TokenBucket
from stripe_identity_mcp.clients.pacing import Pacer
from stripe_identity_mcp.clients.stripe import StripeClient
from stripe_identity_mcp.settings import ConfigError, Settings

if TYPE_CHECKING:
    from stripe_identity_mcp.clients.scim import ScimClient


# Who a write is on behalf of, for the audit line: a constant (stdio "local", a bot token's
# "token:<name>") or read per call (OAuth: the person behind the current request).
Caller = str | Callable[[], str] | ContextVar[str]

# create_customer serialises creates per normalised email in this process; striped so memory is
# bounded (two emails sharing a stripe only wait for each other, rarely).
CREATE_LOCK_STRIPES = 64


def make_create_locks() -> tuple[anyio.Lock, ...]:
    return tuple(anyio.Lock() for _ in range(CREATE_LOCK_STRIPES))


@dataclass
class AppDeps:
    settings: Settings
    stripe: StripeClient
    scim: ScimClient | None = None
    caller: Caller = "local"
    # None: created on the first write (audit.audit_log_for), so a read-only server never opens the file.
    audit_log: AuditLog | None = None
    create_locks: tuple[anyio.Lock, ...] = field(default_factory=make_create_locks)

    @property
    def mode_label(self) -> str:
        return "sandbox " + self.settings.mode if self.settings.sandbox else self.settings.mode


def make_pacer(settings: Settings) -> Pacer:
    """Stripe's model: the key's global limit (live/test) and each endpoint's own (clients/pacing.py);
    with `redis_url`, the same budgets shared by every replica (clients/shared_pacing.py)."""
    if settings.redis_url is not None:
        return make_shared_pacer(settings, settings.redis_url.get_secret_value())
    return Pacer(
        TokenBucket(settings.rate),
        endpoint_rate=settings.endpoint_rate,
        search_rate=settings.search_rate,
        endpoint_rates=settings.endpoint_rates,
        max_concurrency=settings.max_concurrency,
    )


def require_redis() -> None:
    """ConfigError unless redis-py (the optional extra) is importable; `serve` checks it at start-up."""
    try:
        import redis  # noqa: F401 - the optional extra, imported only when configured
    except ImportError:
        raise ConfigError(
            "STRIPE_IDENTITY_MCP_REDIS_URL is set but the redis package is not installed: "
            "install stripe-identity-mcp[redis] (or unset it to pace this process alone)"
        ) from None


def make_shared_pacer(settings: Settings, url: str) -> Pacer:
    require_redis()
    from stripe_identity_mcp.clients.redis_limiter import RedisLimiter
    from stripe_identity_mcp.clients.shared_pacing import SharedPacer

    return SharedPacer(
        RedisLimiter(url, settings.secret_key(), settings.mode, timeout_s=settings.redis_timeout_s),
        settings.rate,
        endpoint_rate=settings.endpoint_rate,
        search_rate=settings.search_rate,
        endpoint_rates=settings.endpoint_rates,
        max_concurrency=settings.max_concurrency,
        replicas=settings.replicas,
        secrets=settings.secrets(),
    )


def make_stripe(settings: Settings, http: LazyHttpClient) -> StripeClient:
    return StripeClient(
        http,
        api_key=settings.secret_key(),
        base_url=settings.api_base,
        api_version=settings.api_version,
        pacer=make_pacer(settings),
        stripe_account=settings.stripe_account,
        policy=RetryPolicy.from_settings(settings),
    )


def make_scim(settings: Settings, http: LazyHttpClient) -> ScimClient | None:
    if not settings.scim_configured:
        return None
    from stripe_identity_mcp.clients.scim import ScimClient

    return ScimClient.from_settings(settings, http)


@asynccontextmanager
async def open_deps(settings: Settings) -> AsyncIterator[AppDeps]:
    http = LazyHttpClient(timeout_s=settings.timeout_s)
    stripe = make_stripe(settings, http)
    try:
        yield AppDeps(settings=settings, stripe=stripe, scim=make_scim(settings, http))
    finally:
        await stripe.pacer.aclose()
        await http.aclose()
