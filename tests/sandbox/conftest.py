from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, serve_in_thread
from tests import loopback

TEST_KEY = "sk_test_sandbox"
LIVE_KEY = "sk_live_sandbox"
RK_KEY = "rk_test_sandbox"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    """Shared sandbox: seeded, no rate limit, no search lag (read-mostly tests)."""
    with serve_in_thread(SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0)) as h:
        yield h


@pytest.fixture()
def fresh() -> Iterator[SandboxHandle]:
    """A private sandbox for tests that change config, faults or rely on counts."""
    with serve_in_thread(SandboxConfig(rate_limit=None, live_rate_limit=None, search_lag_s=0.0)) as h:
        yield h


def client(handle: SandboxHandle, key: str | None = TEST_KEY, **kw) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return loopback.Client(base_url=handle.base_url, headers=headers, timeout=10, **kw)


@pytest.fixture()
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with client(sandbox) as c:
        yield c
