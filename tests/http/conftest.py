"""Helpers for the HTTP transport tests: the real server (uvicorn on 127.0.0.1, ephemeral port) in a
thread or as a `serve` subprocess, token files, and MCP clients carrying a bearer header."""

from __future__ import annotations

import asyncio
import queue
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from stripe_identity_mcp.http_auth import create_token
from stripe_identity_mcp.settings import Settings
from stripe_identity_mcp.transport_http import HttpOptions, PreparedHttp, prepare_http


@dataclass
class RunningHttp:
    prepared: PreparedHttp

    @property
    def url(self) -> str:
        return self.prepared.url

    @property
    def base(self) -> str:
        return self.prepared.url.removesuffix("/mcp")


@dataclass
class ServedCli:
    """A `serve --transport http` subprocess: its /mcp URL, the stderr lines read until it logged the
    URL, and (once stopped) the rest of its stdout and stderr."""

    url: str = ""
    seen: list[str] = field(default_factory=list)
    out: str = ""
    err: str = ""


@contextmanager
def serve_cli(args: list[str], *, cwd: Path, env: dict[str, str]) -> Iterator[ServedCli]:
    """`python -m stripe_identity_mcp serve --transport http *args` (give `--port 0`), yielded once it
    logged its URL (bounded: at most 60 lines / 60 s), terminated after."""
    cmd = [sys.executable, "-m", "stripe_identity_mcp", "serve", "--transport", "http", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stderr.readline, "")], daemon=True).start()  # type: ignore[union-attr]
    served = ServedCli()
    try:
        for _ in range(60):
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            served.seen.append(line)
            match = re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", line)
            if match:
                served.url = match.group(1)
                break
        assert served.url, "\n".join(served.seen)
        yield served
    finally:
        proc.terminate()
        served.out, served.err = proc.communicate(timeout=20)


@contextmanager
def http_server(settings: Settings, **options: Any) -> Iterator[RunningHttp]:
    """Serve `settings` over streamable HTTP in a daemon thread; yields once the lifespan is up."""
    ready = threading.Event()
    prepared = prepare_http(settings, HttpOptions(port=0, **options), on_ready=ready.set)
    server = prepared.server()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(prepared.serve(server))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run, name="http-transport-test", daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout=20):
            raise RuntimeError(f"HTTP server did not start: {errors or 'timeout'}")
        yield RunningHttp(prepared)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        prepared.close()


def make_tokens(path: Path, *specs: tuple[str, str] | tuple[str, str, dict[str, Any]]) -> dict[str, str]:
    """Create tokens (name, scope[, extra]) in `path`; returns name → token."""
    out = {}
    for spec in specs:
        name, scope = spec[0], spec[1]
        extra: dict[str, Any] = spec[2] if len(spec) > 2 else {}  # type: ignore[misc]
        out[name] = create_token(path, name, scope, **extra)  # type: ignore[arg-type]
    return out


@asynccontextmanager
async def http_client(
    url: str, token: str | None = None, mode: str = "legacy", headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=all_headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
            yield client


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
