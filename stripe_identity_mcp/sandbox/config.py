"""Sandbox configuration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SandboxConfig:
    seed: int = 42
    empty: bool = False  # no seeded data
    customers: int = 400  # seeded test-mode customers when not empty
    live_customers: int = 5  # seeded live-mode customers when not empty
    created_profile: str = "uniform"  # "bursty": imports (thousands in one second) and long empty stretches
    latency_ms: float = 0.0  # added to every /v1 and /scim request
    rate_limit: float | None = 25.0  # requests/s per test-mode key; None/0 = unlimited
    live_rate_limit: float | None = 100.0  # requests/s per live-mode key
    # Stripe's per-endpoint limits (each method + route template, e.g. "GET /v1/customers/{id}"), on
    # top of the global one, in a mode whose global limit is set (a mode without one is unlimited).
    endpoint_rate_limit: float | None = 25.0
    search_rate_limit: float | None = 20.0  # all search endpoints together
    endpoint_rate_limits: dict[str, float] = field(default_factory=dict)  # {"GET /v1/customers": 50}
    concurrency_limit: int | None = None  # requests in flight per key (429 global-concurrency beyond)
    search_lag_s: float = 1.0  # recently created/updated objects are not yet visible to search
    fault_rate: float = 0.0  # probability per /v1 request of a random fault
    fault_seed: int = 0
    portal_configured: dict[str, bool] = field(default_factory=lambda: {"test": True, "live": False})
    scim_token: str = "scim_sandbox"
    # By default SCIM deactivation (PATCH or PUT active=false) deletes the member and answers 204, as Stripe
    # documents, and the seed holds no inactive members. True keeps deactivated members visible with
    # active=false (the usual SCIM server behaviour) and seeds the inactive ones (jane@acme.com, ...).
    scim_keep_inactive: bool = False
