"""Opaque access tokens: RFC 7662 token introspection at the issuer (optional; JWTs need none of it).

Used for a bearer that is not a JWT when `--oauth-introspection-url` is set. We POST
`token=…&token_type_hint=access_token`, authenticated as this resource server
(`STRIPE_IDENTITY_MCP_OAUTH_CLIENT_ID` / `_CLIENT_SECRET`, HTTP Basic), and accept only an answer with
`active: true`, `iss` (when present) = the issuer, `aud` containing this server's resource URI
(RFC 8707: required — an introspection answer without an audience could be for any resource),
`exp` in the future (with the same leeway as JWTs) and a `sub`. Answers are cached by the token's
sha256 until `exp`, at most `CACHE_S`, for at most `CACHE_ENTRIES` tokens (a revoked token is
refused again within `CACHE_S`). Fetches are bounded like the JWKS ones; failure → `IssuerUnavailable`.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.server.auth.provider import AccessToken

from stripe_identity_mcp.oauth_jwt import (
    FETCH_TIMEOUT_S,
    LEEWAY_S,
    TokenRejected,
    fetch_json_document,
    token_client_id,
    token_scopes,
)

CACHE_S = 60.0
CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class IntrospectionPolicy:
    url: str
    client_id: str
    client_secret: str
    issuer: str
    audience: str


class Introspector:
    def __init__(self, policy: IntrospectionPolicy) -> None:
        self.policy = policy
        self._http: httpx.AsyncClient | None = None
        self._cache: OrderedDict[bytes, tuple[float, AccessToken]] = OrderedDict()
        self.calls = 0

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify(self, token: str) -> AccessToken:
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        self._cache.pop(key, None)
        claims = await self._introspect(token)
        access = self._accept(token, claims, now)
        self._cache[key] = (min(now + CACHE_S, float(access.expires_at or now)), access)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return access

    def _accept(self, token: str, claims: dict[str, Any], now: float) -> AccessToken:
        if claims.get("active") is not True:
            raise TokenRejected("the access token is not active (expired, revoked or unknown to the issuer)")
        issuer = claims.get("iss")
        if issuer is not None and str(issuer).rstrip("/") != self.policy.issuer.rstrip("/"):
            raise TokenRejected("the access token was issued by another issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        want = self.policy.audience.rstrip("/")
        if not any(isinstance(a, str) and a.rstrip("/") == want for a in audiences):
            raise TokenRejected(f"the access token is for another resource: its aud must be {self.policy.audience}")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + LEEWAY_S < now:
            raise TokenRejected("the access token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - LEEWAY_S > now:
            raise TokenRejected("the access token is not valid yet (nbf/iat in the future)")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenRejected("the access token has no subject")
        return AccessToken(
            token=token,
            client_id=token_client_id(claims),
            scopes=token_scopes(claims),
            expires_at=int(exp),
            resource=self.policy.audience,
            subject=sub,
            claims={**claims, "iss": issuer or self.policy.issuer},
        )

    async def _introspect(self, token: str) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False)
        self.calls += 1
        return await fetch_json_document(
            self._http,
            "POST",
            self.policy.url,
            data={"token": token, "token_type_hint": "access_token"},
            auth=(self.policy.client_id, self.policy.client_secret),
        )
