"""Run the sandbox: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import build_app
from .config import SandboxConfig

BANNER = (
    "sandbox listening on http://{host}:{port} (Stripe API /v1, SCIM /scim/v2; keys sk_test_sandbox, "
    "sk_live_sandbox, rk_test_sandbox; SCIM token {scim})"
)


@dataclass
class SandboxHandle:
    base_url: str
    scim_base: str
    app: Starlette
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def sandbox(self) -> Any:
        return self.app.state.sandbox

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _uvicorn_config(app: Any, host: str, port: int, fd: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        fd=fd,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )


@contextlib.contextmanager
def serve_in_thread(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0, *, app: Any = None
) -> Iterator[SandboxHandle]:
    """Run uvicorn in a daemon thread with its own event loop; yields once it accepts connections.

    `app` serves that ASGI app instead of one built from `config` (the tests keep one server per
    worker and switch the sandbox app it forwards to per test: stopping uvicorn takes ~0.2 s).
    """
    app = app if app is not None else build_app(config or SandboxConfig())
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP,
    # and without it every response written in two parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    real_port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(app, host, real_port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign,attr-defined]  # older uvicorn
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"stripe-sandbox-{real_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"sandbox failed to start: {errors[0] if errors else 'thread exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("sandbox did not start within 15 s")
        time.sleep(0.005)
    # poll the socket until it accepts connections (bounded)
    while True:
        try:
            with socket.create_connection((host, real_port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox port not accepting connections") from None
            time.sleep(0.005)
    url_host = f"[{host}]" if ":" in host else host
    base = f"http://{url_host}:{real_port}"
    handle = SandboxHandle(base_url=base, scim_base=base + "/scim/v2", app=app, _server=server, _thread=thread)
    try:
        yield handle
    finally:
        handle.stop()
        with contextlib.suppress(OSError):
            sock.close()


async def run_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 12111) -> None:
    """Serve the sandbox in the current event loop until cancelled / interrupted."""
    app = build_app(config)
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    print(BANNER.format(host=host, port=port, scim=config.scim_token), file=sys.stderr, flush=True)
    await server.serve()


def _rate(v: str) -> float | None:
    f = float(v)
    return f if f > 0 else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stripe-identity-mcp sandbox", description="Run the Stripe API sandbox emulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111)
    p.add_argument("--empty", action="store_true", help="start without seeded data")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rate-limit", type=_rate, default=25.0, help="requests/s per test key (0 = unlimited)")
    p.add_argument("--live-rate-limit", type=_rate, default=100.0, help="requests/s per live key (0 = unlimited)")
    p.add_argument("--endpoint-rate-limit", type=_rate, default=25.0, help="requests/s per endpoint and key (0 = none)")
    p.add_argument("--search-rate-limit", type=_rate, default=20.0, help="search requests/s per key (0 = none)")
    p.add_argument("--concurrency-limit", type=int, default=None, help="requests in flight per key (default: none)")
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--live-customers", type=int, default=5, help="seeded live-mode customers")
    p.add_argument("--created-profile", choices=["uniform", "bursty"], default="uniform",
                   help="bursty: thousands of customers in single created seconds, long empty stretches")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--search-lag", type=float, default=1.0, help="search indexing lag in seconds")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument(
        "--scim-keep-inactive",
        action="store_true",
        help="SCIM deactivation (active=false) keeps the member as inactive (and the seed has inactive members) "
        "instead of deleting it as Stripe does",
    )
    # Deletion on deactivation used to be opt-in under this name; it is the default now.
    p.add_argument("--scim-deactivate-deletes", action="store_true", help=argparse.SUPPRESS)
    return p


def config_from_args(ns: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        seed=ns.seed,
        empty=ns.empty,
        customers=ns.customers,
        live_customers=ns.live_customers,
        created_profile=ns.created_profile,
        latency_ms=ns.latency_ms,
        rate_limit=ns.rate_limit,
        live_rate_limit=ns.live_rate_limit,
        endpoint_rate_limit=ns.endpoint_rate_limit,
        search_rate_limit=ns.search_rate_limit,
        concurrency_limit=ns.concurrency_limit or None,
        search_lag_s=ns.search_lag,
        fault_rate=ns.fault_rate,
        fault_seed=ns.fault_seed,
        scim_keep_inactive=ns.scim_keep_inactive and not ns.scim_deactivate_deletes,
    )


def main_sandbox(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    config = config_from_args(ns)
    try:
        asyncio.run(run_sandbox(config, ns.host, ns.port))
    except KeyboardInterrupt:
        pass
    return 0
