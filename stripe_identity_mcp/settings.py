"""Configuration: environment variables (and `.env`), overridden by CLI flags."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal, cast, get_args
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_SCIM_BASE = "https://access.stripe.com/scim/v2"
# The API version this product's models and sandbox are written against (the OpenAPI cut's version).
DEFAULT_API_VERSION = "2023-08-16"

# Share of a live key's global limit an export takes by default (the rest is the merchant's).
LIVE_EXPORT_SHARE = 0.25
# The least export budget (requests/s) accepted: below it an export of any size would not finish in a
# human's lifetime (1e-38 r/s waits ~1e38 s for its first token); 0.1 r/s is 1 000 customers a minute.
MIN_EXPORT_RATE = 0.1
# SCIM requests/s: Stripe publishes no SCIM limit; identity providers push far less than this, and
# offboarding is never bulk-urgent. A budget separate from the API key's.
SCIM_RATE = 10.0

ALL_TOOLSETS = ("customers", "billing", "team", "connect", "identity", "export")

Mode = Literal["test", "live"]
KeyKind = Literal["secret", "restricted"]

KEY_PREFIXES: dict[str, tuple[Mode, KeyKind]] = {
    "sk_test_": ("test", "secret"),
    "sk_live_": ("live", "secret"),
    "rk_test_": ("test", "restricted"),
    "rk_live_": ("live", "restricted"),
}


class ConfigError(ValueError):
    """Configuration that cannot work; the message says how to fix it (never the secret)."""


def key_mode(key: str) -> tuple[Mode, KeyKind]:
    for prefix, result in KEY_PREFIXES.items():
        if key.startswith(prefix):
            return result
    raise ConfigError(
        "STRIPE_API_KEY must start with sk_test_, sk_live_, rk_test_ or rk_live_ "
        "(publishable pk_ keys and other secrets cannot call the API)"
    )


_CONTROL_NAMES = {"\r": "carriage return", "\n": "line feed", "\t": "tab", "\x00": "NUL"}


def _bad_char(value: str) -> str | None:
    """Where and what the first whitespace/control character is, described without the value."""
    for index, char in enumerate(value):
        if char.isspace() or unicodedata.category(char).startswith("C"):
            where = "starts with" if index == 0 else "ends with" if not value[index:].strip() else "contains"
            name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character").lower()
            return f"{where} {ascii(char)} ({name})"
    return None


def check_secret_text(name: str, value: str) -> None:
    """Refuse a credential holding whitespace or control characters (a CRLF `.env` leaves a trailing \\r).

    Such a key cannot be a real one, and httpx/h11 would put it, in full, into an exception and the
    DEBUG log when building the header; refusing it at start-up is the only place nothing is sent yet.
    """
    problem = _bad_char(value)
    if problem:
        crlf = ""
        if value[-1:] in ("\r", "\n"):
            crlf = " (a .env file saved with Windows line endings leaves one at the end of a value)"
        raise ConfigError(f"{name} {problem}: remove it{crlf}; nothing was sent")


def check_base_url(name: str, value: str) -> str:
    """An http(s) URL with a host and no `user:password@`: credentials belong in the key/token only.

    httpx would send userinfo as Basic auth instead of the key, and the URL is shown in answers and logs.
    """
    problem = _bad_char(value)  # urlsplit silently drops \r, \n and \t; httpx would not
    if problem:
        raise ConfigError(f"{name} {problem}: remove it")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (expected e.g. https://api.stripe.com)") from None
    if "@" in parts.netloc:
        raise ConfigError(
            f"{name} must not contain user:password@ (userinfo); put the key in STRIPE_API_KEY "
            "and the SCIM token in STRIPE_SCIM_TOKEN, and give the base URL without credentials"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host (e.g. https://api.stripe.com)")
    return value


# Settings whose rejected value may be shown back: none of these can hold a credential. Keys, tokens,
# base URLs (user:password@) and the Stripe-Account header are never echoed.
_ECHO_SAFE = frozenset({
    "toolsets", "allow_writes", "allow_live_writes", "read_only", "confirm", "test_rate", "live_rate",
    "max_retries", "retry_deadline_s", "timeout_s", "log_level", "sandbox",
})  # fmt: skip
_BOOLEAN_WORDS = "true or false (1/0, yes/no and on/off work too)"
_MAX_ECHO = 60


def _setting_name(loc: str, flags: Mapping[str, str]) -> tuple[str, str | None]:
    """(what the user typed: flag or variable, field name) for an error location."""
    for field_name, info in Settings.model_fields.items():
        aliases = getattr(info.validation_alias, "choices", None) or []
        if loc == field_name or loc in aliases:
            if loc == field_name:  # a keyword argument: a CLI flag, else name the environment variable
                return flags.get(field_name) or str(aliases[0] if aliases else field_name), field_name
            return loc, field_name
    return loc, None


def _allowed(field_name: str | None, err_type: str) -> str | None:
    """The values a setting accepts, in words, from its declared type and bounds."""
    if err_type.startswith("bool"):
        return _BOOLEAN_WORDS
    if field_name is None:
        return None
    info = Settings.model_fields[field_name]
    if err_type == "literal_error":
        return "one of " + ", ".join(str(v) for v in get_args(info.annotation))
    kind = "a whole number" if info.annotation is int else "a number"
    bounds = {k: getattr(m, k) for m in info.metadata for k in ("gt", "ge", "lt", "le") if hasattr(m, k)}
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']} to {bounds['le']}"
    parts = [f"{words[k]} {v}" for k, v in bounds.items()]
    return f"{kind} {' and '.join(parts)}".strip() if parts or err_type.startswith(("int", "float")) else None


def _echo(value: object) -> str:
    text = ascii(str(value))
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 4] + "...'"


def invalid_settings_message(exc: ValidationError, flags: Mapping[str, str] | None = None) -> str:
    """One sentence per invalid setting: the variable or flag, what is wrong with it, what is allowed.

    `flags` maps field names given on the command line to their flag (e.g. toolsets -> --toolsets) so
    the message names what the user typed. Credentials and URLs are never echoed (see _ECHO_SAFE), and
    no pydantic wording or documentation URL reaches the user.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "settings"
        name, field_name = _setting_name(loc, flags or {})
        err_type = str(err["type"])
        if err_type == "value_error":  # our validators already write the sentence
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(message if message.startswith(("STRIPE_", "--")) else f"{name}: {message}")
            continue
        shown = f" is {_echo(err['input'])}" if field_name in _ECHO_SAFE and "input" in err else " is not valid"
        allowed = _allowed(field_name, err_type)
        if allowed is None:  # a rule we have no words for: pydantic's phrase, without the value or a URL
            allowed = str(err["msg"]).removeprefix("Input should be ").rstrip(".")
        lines.append(f"{name}{shown}: expected {allowed}")
    return "\n".join(lines)


def _env(name: str, *more: str) -> AliasChoices:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """All knobs. Env names are Stripe-standard where Stripe has one, else STRIPE_IDENTITY_MCP_*."""

    # hide_input_in_errors: a rejected key or URL must not come back inside the validation error text.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    api_key: SecretStr | None = Field(None, validation_alias=_env("STRIPE_API_KEY", "api_key"))
    api_base: str = Field(DEFAULT_API_BASE, validation_alias=_env("STRIPE_API_BASE", "api_base"))
    api_version: str = Field(DEFAULT_API_VERSION, validation_alias=_env("STRIPE_API_VERSION", "api_version"))
    stripe_account: str | None = Field(None, validation_alias=_env("STRIPE_ACCOUNT", "stripe_account"))
    scim_token: SecretStr | None = Field(None, validation_alias=_env("STRIPE_SCIM_TOKEN", "scim_token"))
    scim_base: str = Field(DEFAULT_SCIM_BASE, validation_alias=_env("STRIPE_SCIM_BASE", "scim_base"))

    toolsets: tuple[str, ...] | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_TOOLSETS", "toolsets"))
    allow_writes: bool = Field(False, validation_alias=_env("STRIPE_IDENTITY_MCP_ALLOW_WRITES", "allow_writes"))
    allow_live_writes: bool = Field(
        False, validation_alias=_env("STRIPE_IDENTITY_MCP_ALLOW_LIVE_WRITES", "allow_live_writes")
    )
    read_only: bool = Field(False, validation_alias=_env("STRIPE_IDENTITY_MCP_READ_ONLY", "read_only"))
    confirm: Literal["elicit", "param-only"] = Field(
        "elicit", validation_alias=_env("STRIPE_IDENTITY_MCP_CONFIRM", "confirm")
    )
    audit_log: Path | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_AUDIT_LOG", "audit_log"))
    export_dir: Path = Field(Path("exports"), validation_alias=_env("STRIPE_IDENTITY_MCP_EXPORT_DIR", "export_dir"))

    # Pacing: requests per second the client allows itself (Stripe's documented defaults). The global
    # limit is per key and mode; every endpoint (method + path template) has its own on top of it.
    # Raised limits are common: set what Stripe granted the account.
    test_rate: float = Field(25.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_TEST_RATE", "test_rate"))
    live_rate: float = Field(100.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_LIVE_RATE", "live_rate"))
    endpoint_rate: float = Field(
        25.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_ENDPOINT_RATE", "endpoint_rate")
    )
    search_rate: float = Field(20.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_SEARCH_RATE", "search_rate"))
    scim_rate: float = Field(SCIM_RATE, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_SCIM_RATE", "scim_rate"))
    # "GET /v1/customers=50, POST /v1/customers=40": per-endpoint limits that differ from endpoint_rate.
    endpoint_rates: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("STRIPE_IDENTITY_MCP_ENDPOINT_RATES", "endpoint_rates")
    )
    max_concurrency: int = Field(
        32, ge=1, le=1000, validation_alias=_env("STRIPE_IDENTITY_MCP_MAX_CONCURRENCY", "max_concurrency")
    )
    # Share of the key an export may use when --max-rate is not given (see export_rate()).
    export_max_rate: float | None = Field(
        None, ge=MIN_EXPORT_RATE, validation_alias=_env("STRIPE_IDENTITY_MCP_EXPORT_MAX_RATE", "export_max_rate")
    )
    max_retries: int = Field(4, ge=0, le=10, validation_alias=_env("STRIPE_IDENTITY_MCP_MAX_RETRIES", "max_retries"))
    retry_deadline_s: float = Field(
        30.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_RETRY_DEADLINE", "retry_deadline_s")
    )
    timeout_s: float = Field(20.0, gt=0, validation_alias=_env("STRIPE_IDENTITY_MCP_TIMEOUT", "timeout_s"))
    # Back-off between retries: base × 2^(attempt-1), capped, with jitter (stripe-python's 0.5 s → 5 s).
    retry_backoff_s: float = Field(
        0.5, ge=0, le=60, validation_alias=_env("STRIPE_IDENTITY_MCP_RETRY_BACKOFF", "retry_backoff_s")
    )
    retry_backoff_cap_s: float = Field(
        5.0, ge=0, le=300, validation_alias=_env("STRIPE_IDENTITY_MCP_RETRY_BACKOFF_CAP", "retry_backoff_cap_s")
    )

    # HTTP transport (chat-ops)
    tokens_file: Path | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_TOKENS_FILE", "tokens_file"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING", validation_alias=_env("STRIPE_IDENTITY_MCP_LOG_LEVEL", "log_level")
    )
    # HTTP connection limits (see http_guard): no lock-out by silent, slow or numerous sockets.
    http_header_timeout_s: float = Field(
        5.0, gt=0, le=300, validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_HEADER_TIMEOUT", "http_header_timeout_s")
    )
    http_keep_alive_s: int = Field(
        15, ge=1, le=3600, validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_KEEP_ALIVE", "http_keep_alive_s")
    )
    http_write_timeout_s: float = Field(
        30.0, gt=0, le=3600, validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_WRITE_TIMEOUT", "http_write_timeout_s")
    )
    http_max_connections: int = Field(
        1024,
        ge=8,
        le=1_000_000,
        validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_MAX_CONNECTIONS", "http_max_connections"),
    )
    http_max_connections_per_ip: int = Field(
        128,
        ge=1,
        validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_MAX_CONNECTIONS_PER_IP", "http_max_connections_per_ip"),
    )
    http_reserved_connections: int = Field(
        128,
        ge=0,
        validation_alias=_env("STRIPE_IDENTITY_MCP_HTTP_RESERVED_CONNECTIONS", "http_reserved_connections"),
    )

    # OAuth 2.1 resource server (HTTP transport; see oauth_jwt, http_oauth). Bot tokens work alongside.
    oauth_issuer: str | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_ISSUER", "oauth_issuer"))
    oauth_audience: str | None = Field(
        None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_AUDIENCE", "oauth_audience")
    )
    oauth_jwks_url: str | None = Field(
        None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_JWKS_URL", "oauth_jwks_url")
    )
    public_url: str | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_PUBLIC_URL", "public_url"))
    # Opaque (non-JWT) access tokens: RFC 7662 introspection, as this resource server's own client.
    oauth_introspection_url: str | None = Field(
        None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_INTROSPECTION_URL", "oauth_introspection_url")
    )
    oauth_client_id: str | None = Field(
        None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_CLIENT_ID", "oauth_client_id")
    )
    oauth_client_secret: SecretStr | None = Field(
        None, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_CLIENT_SECRET", "oauth_client_secret")
    )
    # Least seconds between two JWKS refetches triggered by an unknown `kid` (bounds what junk tokens cost).
    oauth_jwks_refetch_s: float = Field(
        60.0, ge=0, le=86400, validation_alias=_env("STRIPE_IDENTITY_MCP_OAUTH_JWKS_REFETCH", "oauth_jwks_refetch_s")
    )
    # Keys sealing the confirmation round trip's request state (2026-07-28), newest first, comma-separated;
    # shared by replicas so an answer may land on another one. Unset: a per-process key.
    state_keys: SecretStr | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_STATE_KEYS", "state_keys"))
    confirm_ttl_s: float = Field(
        300.0, gt=0, le=3600, validation_alias=_env("STRIPE_IDENTITY_MCP_CONFIRM_TTL", "confirm_ttl_s")
    )

    # Replicas (README "Several replicas"): the key's rate budget and the HTTP streams' event log in
    # Redis. The URL may carry a password: a secret, redacted like the keys.
    redis_url: SecretStr | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_REDIS_URL", "redis_url"))
    # While Redis is unreachable a replica paces to 1/replicas of each limit (never unlimited).
    replicas: int = Field(2, ge=1, le=1000, validation_alias=_env("STRIPE_IDENTITY_MCP_REPLICAS", "replicas"))
    # Streams (stateful HTTP with redis_url, stripe_identity_mcp/event_store.py): each SSE stream's
    # events are kept for resumption on any replica, at most about this many per stream and for this
    # long after its last event.
    stream_max_events: int = Field(
        1000, ge=1, le=100_000, validation_alias=_env("STRIPE_IDENTITY_MCP_STREAM_MAX_EVENTS", "stream_max_events")
    )
    stream_ttl_s: float = Field(
        900.0, ge=1, le=86_400, validation_alias=_env("STRIPE_IDENTITY_MCP_STREAM_TTL", "stream_ttl_s")
    )
    # Bound of each Redis call's connect and read (a replica falls back when Redis is slower than this).
    redis_timeout_s: float = Field(
        0.25, gt=0, le=5, validation_alias=_env("STRIPE_IDENTITY_MCP_REDIS_TIMEOUT", "redis_timeout_s")
    )

    # Set when serving against the embedded emulator.
    sandbox: bool = Field(False, validation_alias=_env("STRIPE_IDENTITY_MCP_SANDBOX", "sandbox"))

    # Local mirror (mirror/): the customer tools read it; the HTTP transport's webhook route writes it.
    mirror: Path | None = Field(None, validation_alias=_env("STRIPE_IDENTITY_MCP_MIRROR", "mirror"))
    # Webhook signing secrets (whsec_…), comma-separated: several while a secret is being rotated.
    webhook_secret: SecretStr | None = Field(None, validation_alias=_env("STRIPE_WEBHOOK_SECRET", "webhook_secret"))

    @field_validator("toolsets", mode="before")
    @classmethod
    def _split_toolsets(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if value is not None:
            unknown = sorted(set(cast("Iterable[str]", value)) - set(ALL_TOOLSETS))
            if unknown:
                raise ValueError(
                    f"unknown toolsets {unknown}; choose one or more of {', '.join(ALL_TOOLSETS)} (comma-separated)"
                )
            return tuple(value)  # type: ignore[arg-type]
        return value

    @field_validator("endpoint_rates", mode="before")
    @classmethod
    def _parse_endpoint_rates(cls, value: object) -> object:
        from stripe_identity_mcp.endpoints import parse_endpoint_rates

        return parse_endpoint_rates(value)

    @field_validator("api_base", "scim_base")
    @classmethod
    def _check_base(cls, value: str, info: ValidationInfo) -> str:
        name = "STRIPE_API_BASE" if info.field_name == "api_base" else "STRIPE_SCIM_BASE"
        return check_base_url(name, value.rstrip("/"))

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for part in value.get_secret_value().split(","):
                if not part.strip().startswith("whsec_"):
                    raise ValueError("STRIPE_WEBHOOK_SECRET / --webhook-secret: each secret starts with whsec_")
        return value

    @field_validator("oauth_issuer", "oauth_audience", "oauth_jwks_url", "public_url", "oauth_introspection_url")
    @classmethod
    def _check_oauth_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        flag = "--" + (info.field_name or "url").replace("_", "-")
        return check_base_url(flag, value.rstrip("/") if info.field_name != "oauth_audience" else value)

    @field_validator("state_keys")
    @classmethod
    def _check_state_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",")]
        if not all(keys) or any(len(k) < 32 for k in keys):
            raise ValueError(
                "STRIPE_IDENTITY_MCP_STATE_KEYS: comma-separated keys, newest first, each at least 32 characters "
                '(python -c "import secrets; print(secrets.token_hex(32))")'
            )
        for key in keys:
            check_secret_text("STRIPE_IDENTITY_MCP_STATE_KEYS", key)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            # The URL itself is never echoed: it may carry a password.
            raise ValueError("STRIPE_IDENTITY_MCP_REDIS_URL / --redis-url: expected redis://, rediss:// or unix://")
        check_secret_text("STRIPE_IDENTITY_MCP_REDIS_URL", url)
        return SecretStr(url)

    def redis_secrets(self) -> list[str]:
        """The Redis URL and its password (an error text may show either alone), for redaction."""
        if self.redis_url is None:
            return []
        from urllib.parse import urlsplit

        url = self.redis_url.get_secret_value()
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        # A very short password alone would turn every such letter in every log line into [redacted];
        # inside the URL it is redacted anyway (the URL itself, and userinfo in any URL).
        return [url] + ([password] if password and len(password) >= 6 else [])

    def state_key_list(self) -> list[str]:
        """The request-state keys, newest (sealing) first; empty when none are configured."""
        if self.state_keys is None:
            return []
        return [k.strip() for k in self.state_keys.get_secret_value().split(",")]

    @field_validator("api_key", "scim_token", "oauth_client_secret")
    @classmethod
    def _clean_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            names = {"api_key": "STRIPE_API_KEY", "scim_token": "STRIPE_SCIM_TOKEN"}
            name = names.get(info.field_name or "", "STRIPE_IDENTITY_MCP_OAUTH_CLIENT_SECRET")
            check_secret_text(name, value.get_secret_value())
        return value

    # Derived facts -------------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return key_mode(self.secret_key())[0]

    @property
    def key_kind(self) -> KeyKind:
        return key_mode(self.secret_key())[1]

    def secret_key(self) -> str:
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigError(missing_key_help())
        return self.api_key.get_secret_value()

    @property
    def scim_configured(self) -> bool:
        return self.scim_token is not None and bool(self.scim_token.get_secret_value())

    @property
    def writes_enabled(self) -> bool:
        if self.read_only or not self.allow_writes:
            return False
        return self.mode == "test" or self.allow_live_writes

    @property
    def writes_off_reason(self) -> str | None:
        if self.read_only:
            return "--read-only is set"
        if not self.allow_writes:
            return "writes are off by default; start with --allow-writes to enable them"
        if self.mode == "live" and not self.allow_live_writes:
            return "the key is a live-mode key: live writes also need --allow-live-writes"
        return None

    @property
    def rate(self) -> float:
        return self.live_rate if self.mode == "live" else self.test_rate

    def export_rate(self, asked: float | None = None) -> float:
        """Requests/s an export may send: `asked` (or STRIPE_IDENTITY_MCP_EXPORT_MAX_RATE), capped by
        `GET /v1/customers`' own limit and the global one.

        Default in live mode: a quarter of the key's global limit (25 of 100), so the merchant's own
        traffic keeps three quarters of the key; with Stripe's default limits that is also exactly the
        list endpoint's limit, so the export still runs at its ceiling. In test mode (no production
        traffic on the key) the default is the endpoint's limit.
        """
        from stripe_identity_mcp.endpoints import endpoint_of

        ceiling = min(self.endpoint_rates.get(endpoint_of("GET", "/v1/customers"), self.endpoint_rate), self.rate)
        wanted = asked if asked is not None else self.export_max_rate
        if wanted is None:
            wanted = self.rate * LIVE_EXPORT_SHARE if self.mode == "live" else ceiling
        return min(wanted, ceiling)

    def enabled_toolsets(self) -> tuple[str, ...]:
        wanted = self.toolsets or ALL_TOOLSETS
        return tuple(t for t in ALL_TOOLSETS if t in wanted and (t != "team" or self.scim_configured))

    def secrets(self) -> list[str]:
        """Every secret value, for redaction."""
        out = []
        for secret in (self.api_key, self.scim_token, self.oauth_client_secret):
            if secret is not None and secret.get_secret_value():
                out.append(secret.get_secret_value())
        out.extend(self.state_key_list())
        out.extend(self.redis_secrets())
        return out + self.webhook_secrets()

    def webhook_secrets(self) -> list[str]:
        """The configured webhook signing secrets (several during a rotation)."""
        if self.webhook_secret is None:
            return []
        return [s.strip() for s in self.webhook_secret.get_secret_value().split(",") if s.strip()]


def missing_key_help() -> str:
    return (
        "No Stripe API key configured.\n"
        "  Set STRIPE_API_KEY (sk_test_…, rk_test_…, or live keys) in the environment or a .env file,\n"
        "  or pass --api-key; or run against the embedded emulator with `stripe-identity-mcp serve --sandbox`.\n"
        "  Team members (SCIM) additionally need STRIPE_SCIM_TOKEN."
    )
