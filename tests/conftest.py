"""Shared fixtures: a real sandbox over loopback HTTP, settings pointing at it, a real MCP client."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from mcp import Client
from mcp.types import ElicitResult

from stripe_identity_mcp.server import build_server
from stripe_identity_mcp.settings import Settings

SANDBOX_KEY = "sk_test_sandbox"
SCIM_TOKEN = "scim_sandbox"
FAST = {"rate_limit": None, "live_rate_limit": None, "search_lag_s": 0.0}
# Tests that do not choose an audit log or export dir must not write into the developer's home or cwd.
SCRATCH = Path(tempfile.mkdtemp(prefix="sim-tests-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)  # no temp directory left behind

# Hypothesis: CI (CI=true) runs a fixed, derandomized set of examples, so a red CI is reproducible;
# developers get fresh examples each run. No per-example deadline: the machine may be shared.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _SandboxSwitch:
    """The ASGI app a pooled loopback server runs: forwards to the sandbox app of the test holding the
    server, and answers 503 (closing the connection) while no test holds it, so no request ever
    reaches another test's state."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.app
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": b"no sandbox is running on this port"})


# Idle pooled servers of this process (each xdist worker has its own), and what stops them at exit.
# A test gets a freshly built sandbox app (new state, seeded as configured) behind a server that is
# already listening: building the app costs ~5 ms, starting and stopping uvicorn ~0.2 s of waiting.
_IDLE_SERVERS: list[tuple[_SandboxSwitch, str]] = []
_SERVERS_OPEN = ExitStack()


@pytest.fixture(scope="session", autouse=True)
def _pooled_sandbox_servers() -> Iterator[None]:
    """Stops the pooled servers at the end of the session (each stop is bounded by serve_in_thread)."""
    yield
    _IDLE_SERVERS.clear()
    _SERVERS_OPEN.close()


@contextmanager
def running_sandbox(**config: Any) -> Iterator[Any]:
    """A fresh sandbox (`SandboxConfig(**FAST, **config)`) on a pooled loopback server."""
    from stripe_identity_mcp.sandbox import SandboxConfig, SandboxHandle, build_app, serve_in_thread

    if _IDLE_SERVERS:
        switch, base = _IDLE_SERVERS.pop()
    else:
        switch = _SandboxSwitch()
        base = _SERVERS_OPEN.enter_context(serve_in_thread(app=switch)).base_url
    app = build_app(SandboxConfig(**{**FAST, **config}))
    switch.app = app
    try:
        yield SandboxHandle(base_url=base, scim_base=base + "/scim/v2", app=app)
    finally:
        switch.app = None
        _IDLE_SERVERS.append((switch, base))


@pytest.fixture
def sandbox_factory() -> Callable[..., AbstractContextManager[Any]]:
    """`with sandbox_factory(empty=True, latency_ms=5) as sb:` — for tests that need special config."""
    return running_sandbox


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """A seeded sandbox (deterministic demo data), no rate limit, no search lag."""
    with running_sandbox() as handle:
        yield handle


@pytest.fixture
def empty_sandbox() -> Iterator[Any]:
    with running_sandbox(empty=True) as handle:
        yield handle


def make_settings(sb: Any, **overrides: Any) -> Settings:
    """Settings for a sandbox, isolated from the developer's environment and .env."""
    values: dict[str, Any] = {
        "api_key": SANDBOX_KEY,
        "api_base": sb.base_url,
        "scim_base": sb.scim_base,
        "scim_token": SCIM_TOKEN,
        "test_rate": 1000.0,
        "live_rate": 1000.0,
        "endpoint_rate": 1000.0,  # tests that pace per endpoint say so (tests/test_rate_limits.py)
        "search_rate": 1000.0,
        "scim_rate": 1000.0,  # the SCIM client's own 10 r/s paced the team tests (and the fuzzer) for ~20 s
        "max_retries": 3,
        "retry_deadline_s": 20.0,
        # The fast retry policy: same attempts and deadline, no real back-off to sleep through.
        "retry_backoff_s": 0.01,
        "retry_backoff_cap_s": 0.05,
        "sandbox": True,
        "audit_log": SCRATCH / "audit.jsonl",
        "export_dir": SCRATCH / "exports",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Servers built during the current test, by settings object: building one registers every tool through
# the SDK (pydantic models and JSON schemas, ~0.15 s of CPU), and the confirmation matrices open a session
# per case with one settings object. A session on a reused server still gets its own lifespan (fresh
# clients, deps), as each session of the HTTP transport does; cleared after every test (fixture below).
_SERVERS: dict[int, tuple[Settings, dict[str, Any], Any]] = {}


def server_for(settings: Settings) -> Any:
    """build_server(settings), reused only for the same, unchanged settings object within one test."""
    values = settings.model_dump()
    cached = _SERVERS.get(id(settings))
    if cached is not None and cached[0] is settings and cached[1] == values:
        return cached[2]
    server = build_server(settings)
    _SERVERS[id(settings)] = (settings, values, server)
    return server


@pytest.fixture(autouse=True)
def _fresh_servers_per_test() -> Iterator[None]:
    yield
    _SERVERS.clear()


@asynccontextmanager
async def mcp_client(settings: Settings, mode: str = "legacy", **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(server_for(settings), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture(params=["legacy", "auto"])
def protocol_mode(request: pytest.FixtureRequest) -> str:
    """Both protocol generations: 2025-11-25 (legacy) and the newest (auto)."""
    return request.param  # type: ignore[no-any-return]


def elicitation(answer: str | None, asked: list[str]) -> dict[str, Any]:
    """Client kwargs for a human who answers `answer` (accept/decline/cancel); None = no elicitation."""
    if answer is None:
        return {}

    async def callback(ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=answer, content={"confirm": True} if answer == "accept" else None)

    return {"elicitation_callback": callback}


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A real redis-server of this test's own on a free loopback port (tests/redis_server.py)."""
    from tests.redis_server import RedisServer, require_redis_server

    require_redis_server()
    server = RedisServer(Path(tempfile.mkdtemp(prefix="redis-", dir=SCRATCH)))
    server.start()
    try:
        yield server
    finally:
        server.stop()
