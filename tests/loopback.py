"""httpx clients for the tests' loopback calls, sharing one TLS context per process.

`httpx.Client()` builds a TLS context and loads the CA bundle on every construction (~20 ms of CPU),
although every test URL is plain http on 127.0.0.1; helpers that open a client per request made that
a tenth of the suite's CPU. The context is still a real one (certifi, as httpx builds it), so a test
that does reach https behaves as with httpx's default.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


# Capitalised as the httpx classes they stand in for: `loopback.Client(...)` reads as `httpx.Client(...)`
# (and does not collide with tests/http/conftest.py's `http_client`, an MCP client over HTTP).
def Client(**kwargs: Any) -> httpx.Client:
    kwargs.setdefault("verify", tls_context())
    return httpx.Client(**kwargs)


def AsyncClient(**kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("verify", tls_context())
    return httpx.AsyncClient(**kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """`httpx.request` (a client per call, closed after it) with the shared TLS context."""
    kwargs.setdefault("verify", tls_context())
    return httpx.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)
