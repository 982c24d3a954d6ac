"""All mutable sandbox state (``app.state.sandbox``): the stores, events, faults, limiter, request log."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict
from typing import Any

from .config import SandboxConfig
from .events import Delivery, EventLog
from .faults import FaultInjector, RateLimiter
from .scim import ScimSandbox
from .seed import seed_all
from .store import ModeStore

API_VERSION = "2023-08-16"
ACCOUNT_ID = "acct_1Sandbox"


class Sandbox:
    """All mutable sandbox state; reachable as ``app.state.sandbox``."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stores: dict[str, ModeStore] = {"test": ModeStore(False), "live": ModeStore(True)}
        for mode, st in self.stores.items():
            st.portal_config_id = "bpc_1Sbx" + hashlib.sha1(f"{config.seed}:{mode}".encode()).hexdigest()[:20]
            st.portal_config_created = 1746057600
        if not config.empty:
            seed_all(
                self.stores["test"],
                self.stores["live"],
                config.seed,
                config.customers,
                live_customers=config.live_customers,
                profile=config.created_profile,
            )
        self.faults = FaultInjector(rate=config.fault_rate, seed=config.fault_seed)
        self.limiter = RateLimiter()
        self.idem: dict[tuple[str, str], tuple[str, int, bytes, str]] = {}
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()  # authenticated /v1 requests per endpoint
        self.limited_by_endpoint: Counter[str] = Counter()  # rate-limit 429s per endpoint
        self.rate_limited: Counter[str] = Counter()  # rate-limit 429s per Stripe-Rate-Limited-Reason
        self.events = {"test": EventLog(False, API_VERSION), "live": EventLog(True, API_VERSION)}
        self.delivery = Delivery()
        self.scim: ScimSandbox | None = None  # set by build_app

    def customer_counts(self) -> dict[str, int]:
        return {m: s.live_customer_count() for m, s in self.stores.items()}

    def public_config(self) -> dict[str, Any]:
        d = asdict(self.config)
        d.pop("scim_token", None)
        return d

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "faults_injected": self.faults.injected,
            "by_endpoint": dict(self.by_endpoint),
            "rate_limited": dict(self.rate_limited),
            "rate_limited_by_endpoint": dict(self.limited_by_endpoint),
            "max_in_flight": self.limiter.max_in_flight,
            "customers": self.customer_counts(),
        }
