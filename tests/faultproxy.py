"""A fault-injecting HTTP proxy for tests: sits between our server and the sandbox on 127.0.0.1.

The sandbox has its own fault rules, but a misbehaving world is more than a misbehaving Stripe: a
wrong base URL answers 302 to a login page, an intercepting proxy answers HTML or `{}`, a network
drops an answer after the upstream committed, a link trickles a body. This proxy does those things
to real requests on a real socket, so the client code under test cannot tell it from the network.

    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add(Rule("DELETE", r"/scim/v2/Users/", action="replace", status=302,
                       headers={"Location": "https://login.example/"}))
        settings = make_settings(sandbox, api_base=proxy.url, scim_base=proxy.url + "/scim/v2")

Actions (`Rule.action`):
- ``replace``: answer `status`/`headers`/`body` without forwarding (nothing reaches the upstream).
- ``after``: forward (the upstream commits), then answer `status`/`headers`/`body` instead.
- ``drop_before``: close the connection without forwarding (reset before commit).
- ``drop_after``: forward, then close the connection without an answer (lost answer).
- ``trickle``: forward, then send the answer one byte every `delay_s` seconds.
- ``headers``: forward, then add/override `headers` on the real answer.
- ``delay``: wait `delay_s` seconds, then forward (a slow link; lets concurrent requests overtake).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests import loopback

REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
           307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}  # fmt: skip


@dataclass
class Rule:
    method: str | None
    path: str  # regex searched in the request path (query excluded)
    action: str = "replace"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    count: int = 1  # how many matching requests this rule takes (then it is gone)
    delay_s: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


@dataclass
class Seen:
    method: str
    path: str
    action: str | None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    # --- control -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self.rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def count(self, method: str, path_regex: str) -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.method == method and re.search(path_regex, s.path))

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
                    self.seen.append(Seen(method, path, rule.action))
                    return rule
            self.seen.append(Seen(method, path, None))
            return None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._client = loopback.AsyncClient(timeout=30.0)
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._client.aclose())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        loop = self._loop
        if loop is not None and self._server is not None:

            async def stop() -> None:
                assert self._server is not None
                self._server.close()
                for task in list(self._tasks):  # e.g. a trickle still writing: end it before the loop goes
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                loop.stop()

            asyncio.run_coroutine_threadsafe(stop(), loop)
        if self._thread is not None:
            self._thread.join(10)

    # --- one connection ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, target, headers, body = request
                path = target.split("?", 1)[0]
                rule = self._take(method, path)
                if rule is not None and rule.action == "drop_before":
                    writer.transport.abort()
                    return
                if rule is not None and rule.action == "replace":
                    await _write(writer, rule.status, rule.headers, _bytes(rule.body))
                    continue
                if rule is not None and rule.action == "delay":
                    await asyncio.sleep(rule.delay_s)
                status, out_headers, out_body = await self._forward(method, target, headers, body)
                if rule is None or rule.action == "delay":
                    await _write(writer, status, out_headers, out_body)
                elif rule.action == "drop_after":
                    writer.transport.abort()
                    return
                elif rule.action == "after":
                    await _write(writer, rule.status, rule.headers, _bytes(rule.body))
                elif rule.action == "headers":
                    await _write(writer, status, {**out_headers, **rule.headers}, out_body)
                elif rule.action == "trickle":
                    await _write(writer, status, out_headers, out_body, trickle_s=rule.delay_s)
                else:
                    raise ValueError(f"unknown action {rule.action!r}")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        skip = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
        send = [(k, v) for k, v in headers if k.lower() not in skip]
        response = await self._client.request(method, self.upstream + target, headers=send, content=body)
        keep = {k: v for k, v in response.headers.items() if k.lower() not in skip | {"content-encoding", "date", "server"}}
        return response.status_code, keep, response.content


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    length = int(next((v for k, v in headers if k.lower() == "content-length"), "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


async def _write(
    writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes, trickle_s: float = 0.0
) -> None:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines.append(f"content-length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if trickle_s <= 0:
        writer.write(body)
        await writer.drain()
        return
    await writer.drain()
    for index in range(len(body)):
        writer.write(body[index : index + 1])
        await writer.drain()
        await asyncio.sleep(trickle_s)


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as proxy:
        yield proxy
