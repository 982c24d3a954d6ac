"""Access-token validation for the HTTP transport as an OAuth 2.1 resource server (JWT access tokens).

What is checked, in this order (any failure → `TokenRejected`, a 401 `invalid_token`):

* the JOSE header: `alg` on an allow-list of asymmetric algorithms — never `none`, never HS*: an
  HMAC "signed" with the issuer's *public* key would otherwise verify (the classic key-confusion
  attack), so symmetric JWKs (`kty: oct`) are never used either;
* the signature, with the issuer's key named by `kid` from its JWKS. The JWKS URL is
  `--oauth-jwks-url` or discovered from the issuer (`/.well-known/openid-configuration`, then
  RFC 8414 `/.well-known/oauth-authorization-server`), whose `issuer` must be ours. The key set is
  cached; an unknown `kid` refetches it (the IdP rotated keys), at most once per
  `oauth_jwks_refetch_s`, so junk tokens cannot make us hammer the IdP;
* claims: `iss` exactly the issuer, `aud` this server's resource URI (RFC 8707: a token minted for
  another resource is refused), `exp` required and `nbf` honoured with `LEEWAY_S` leeway, `sub` required.

Fetches are bounded: `FETCH_TIMEOUT_S` per request, `MAX_DOCUMENT_BYTES` per body, no redirects.
An issuer we cannot reach raises `IssuerUnavailable` (a 503 for the client: its token may be fine).

A bearer that is not a JWT goes to the `opaque` verifier when one is configured (RFC 7662
introspection, `oauth_introspection`), else it is refused.

Messages in `TokenRejected.description` go to the client: fixed texts, never token content.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
LEEWAY_S = 30
FETCH_TIMEOUT_S = 5.0
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_SCOPES = 64
MAX_TOKEN_CHARS = 16 * 1024
# After a failed fetch, requests fail fast for this long instead of each trying again (the IdP is down).
FAILURE_BACKOFF_S = 5.0


class OpaqueVerifier(Protocol):
    """Validates a bearer that is not a JWT (`oauth_introspection.Introspector`)."""

    async def verify(self, token: str) -> AccessToken: ...

    async def aclose(self) -> None: ...


class TokenRejected(Exception):
    """The token is not acceptable; `description` is safe to send to the client."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class IssuerUnavailable(Exception):
    """The issuer's discovery document or JWKS could not be fetched (the message names the URL, no secret)."""


@dataclass(frozen=True)
class JwtPolicy:
    issuer: str
    audience: str
    jwks_url: str | None = None
    refetch_s: float = 60.0


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """`scope` (RFC 9068: space-separated) or `scp` (Okta/Entra: a list or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        items = raw.split()
    elif isinstance(raw, list):
        items = [s for s in raw if isinstance(s, str)]
    else:
        items = []
    return list(dict.fromkeys(items))[:MAX_SCOPES]


def token_client_id(claims: dict[str, Any]) -> str:
    """RFC 9068 `client_id`, else OIDC `azp`, else Okta `cid`."""
    for name in ("client_id", "azp", "cid"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return "unknown"


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may live: OIDC (path appended), then RFC 8414 (path after the well-known)."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{issuer.rstrip('/')}/.well-known/openid-configuration", f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    return list(dict.fromkeys(urls))


class JwtVerifier:
    """Validates JWT access tokens for one resource (`mcp.server.auth.provider.TokenVerifier` protocol).

    `verify(token)` raises with a reason; `verify_token(token)` is the SDK protocol (None when refused).
    """

    def __init__(
        self, policy: JwtPolicy, http: httpx.AsyncClient | None = None, opaque: OpaqueVerifier | None = None
    ) -> None:
        self.policy = policy
        self.opaque = opaque  # RFC 7662 introspection for bearers that are not JWTs (oauth_introspection)
        self._http = http
        self._jwks_url = policy.jwks_url
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched = False
        self._last_refetch: float | None = None
        self._failed: tuple[float, str] | None = None
        self._lock = anyio.Lock()
        self.fetches = 0  # JWKS downloads so far (tests and the log read it)

    async def aclose(self) -> None:
        if self.opaque is not None:
            await self.opaque.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self.verify(token)
        except TokenRejected:
            return None

    async def verify(self, token: str) -> AccessToken:
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("the access token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            if self.opaque is not None:
                return await self.opaque.verify(token)
            raise TokenRejected("the access token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"token algorithm not allowed (use one of {', '.join(ALLOWED_ALGORITHMS)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("the token's kid is not a string")
        jwk = await self._key(kid)
        key = self._public_key(jwk, str(alg))
        audiences = [self.policy.audience, self.policy.audience.rstrip("/"), self.policy.audience.rstrip("/") + "/"]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=list(dict.fromkeys(audiences)),
                issuer=self.policy.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("the access token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("the access token was issued by another issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(f"the access token is for another resource: its aud must be {self.policy.audience}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the access token has no '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("the access token's signature does not verify") from None
        except jwt.PyJWTError:
            raise TokenRejected("the access token is invalid") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("the access token has no subject")
        aud = claims.get("aud")
        return AccessToken(
            token=token,
            client_id=token_client_id(claims),
            scopes=token_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.policy.audience if aud else None,
            subject=claims["sub"],
            claims=claims,
        )

    @staticmethod
    def _public_key(jwk: dict[str, Any], alg: str) -> Any:
        """The JWK as a key for `alg`, refusing any mismatch (kty, the JWK's own alg, use)."""
        if jwk.get("kty") != _KEY_TYPE.get(alg[:2]):
            raise TokenRejected("the token's algorithm does not fit the issuer's key")
        if jwk.get("alg") not in (None, alg) or jwk.get("use") not in (None, "sig"):
            raise TokenRejected("the token's algorithm does not fit the issuer's key")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            raise TokenRejected("the issuer's key for this token is unusable") from None

    async def _key(self, kid: str | None) -> dict[str, Any]:
        async with self._lock:
            if not self._fetched:
                await self._refresh()
            elif self._lookup(kid) is None and self._may_refetch():
                self._last_refetch = time.monotonic()
                await self._refresh()
            found = self._lookup(kid)
        if found is None:
            raise TokenRejected("the token's signing key (kid) is not in the issuer's key set")
        return found

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is not None:
            return self._keys.get(kid)
        # No kid: usable only when the issuer has exactly one key, so the choice is unambiguous.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def _may_refetch(self) -> bool:
        last = self._last_refetch
        return last is None or time.monotonic() - last >= self.policy.refetch_s

    async def _refresh(self) -> None:
        if self._failed is not None and time.monotonic() - self._failed[0] < FAILURE_BACKOFF_S:
            raise IssuerUnavailable(self._failed[1])
        try:
            await self._download()
        except IssuerUnavailable as exc:
            self._failed = (time.monotonic(), str(exc))
            logger.warning("OAuth issuer unavailable: %s", exc)
            raise
        self._failed = None

    async def _download(self) -> None:
        url = self._jwks_url or await self._discover()
        document = await self._get_json(url)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise IssuerUnavailable(f"the JWKS at {url} has no 'keys' list")
        table: dict[str | None, dict[str, Any]] = {}
        for jwk in keys:
            # Symmetric keys are never trusted: anyone holding "the issuer's key" would be the issuer.
            if isinstance(jwk, dict) and jwk.get("kty") in ("RSA", "EC", "OKP"):
                table[jwk.get("kid") if isinstance(jwk.get("kid"), str) else None] = jwk
        self._keys = table
        self._fetched = True
        self.fetches += 1
        logger.info("fetched the issuer's JWKS from %s: %d signing keys", url, len(table))

    async def _discover(self) -> str:
        problems = []
        for url in discovery_urls(self.policy.issuer):
            try:
                document = await self._get_json(url)
            except IssuerUnavailable as exc:
                problems.append(str(exc))
                continue
            issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
            if not isinstance(issuer, str) or issuer.rstrip("/") != self.policy.issuer.rstrip("/"):
                problems.append(f"{url} names another issuer")
                continue
            if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
                problems.append(f"{url} has no jwks_uri")
                continue
            self._jwks_url = jwks_uri
            return jwks_uri
        raise IssuerUnavailable(
            f"cannot discover the JWKS of {self.policy.issuer} ({'; '.join(problems)}); pass --oauth-jwks-url"
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False)
        return await fetch_json_document(self._http, "GET", url)


async def fetch_json_document(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """One bounded exchange with an identity provider: the whole of it within 2 × FETCH_TIMEOUT_S,
    at most MAX_DOCUMENT_BYTES, a 200 with a JSON object — else IssuerUnavailable saying what."""
    headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
    body = bytearray()
    try:
        with anyio.fail_after(FETCH_TIMEOUT_S * 2):  # the whole exchange, not just each read
            async with http.stream(method, url, headers=headers, **kwargs) as response:
                if response.status_code != 200:
                    hint = " (check the introspection credentials)" if method == "POST" else ""
                    raise IssuerUnavailable(f"{url} answered HTTP {response.status_code}{hint}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerUnavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except TimeoutError:
        raise IssuerUnavailable(f"{url} did not answer within {FETCH_TIMEOUT_S * 2:g} s") from None
    except httpx.HTTPError as exc:
        raise IssuerUnavailable(f"cannot reach {url}: {type(exc).__name__}") from None
    try:
        document = json.loads(bytes(body))
    except ValueError:
        raise IssuerUnavailable(f"{url} did not send JSON") from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{url} did not send a JSON object")
    return document
