"""A local OAuth issuer for the tests: RSA key pairs generated per run, discovery + JWKS served over
loopback (a stdlib HTTP server in a thread), tokens minted with PyJWT."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid=kid or uuid.uuid4().hex[:12], private=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Issuer:
    url: str
    keys: list[SigningKey]  # published in the JWKS
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    # RFC 7662: opaque token → the introspection answer; only this client may introspect.
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspection_client: tuple[str, str] = ("mcp-resource", "introspection-secret-0123456789")
    introspections: int = 0

    def rotate(self, key: SigningKey) -> None:
        """Publish `key` (the IdP starts signing with it; the old keys stay published)."""
        self.keys = [key, *self.keys]

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": audience,
            "sub": "user-1234",
            "email": "alice@example.com",
            "client_id": "vscode-mcp",
            "scope": "customers:read",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, audience: str, key: SigningKey | None = None, **overrides: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(self.claims(audience, **overrides), key.private, algorithm="RS256", headers={"kid": key.kid})


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    """An issuer at http://127.0.0.1:<port> with `/.well-known/openid-configuration` and `/jwks`."""
    issuer = Issuer(url="", keys=[SigningKey.generate()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                issuer.discovery_fetches += 1
                body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks", "token_endpoint": issuer.url + "/token"}
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                body = {"keys": [k.jwk() for k in issuer.keys]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != "/introspect":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            expected = base64.b64encode(":".join(issuer.introspection_client).encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self.send_error(401)
                return
            issuer.introspections += 1
            token = form.get("token", [""])[0]
            body = issuer.opaque.get(token, {"active": False})
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: nothing on stderr per request
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="test-issuer", daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
