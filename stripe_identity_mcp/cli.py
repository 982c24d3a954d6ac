"""Command line: serve (default), sandbox, export, doctor, demo, token. Heavy parts import lazily."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stripe_identity_mcp import __version__
from stripe_identity_mcp.log_redaction import configure_logging
from stripe_identity_mcp.settings import ALL_TOOLSETS, ConfigError, Settings, invalid_settings_message

SANDBOX_KEY = "sk_test_sandbox"
SANDBOX_SCIM_TOKEN = "scim_sandbox"

# Subcommands implemented in other modules: name → (module, function(argv) -> int). Imported on use.
EXTERNAL: dict[str, tuple[str, str, str]] = {
    "sandbox": ("stripe_identity_mcp.sandbox.runner", "main_sandbox", "run the Stripe + SCIM emulator alone"),
    "export": ("stripe_identity_mcp.export.cli", "main_export", "export every customer to JSONL/CSV"),
    "sync": ("stripe_identity_mcp.mirror.cli", "main_sync", "keep a local SQLite mirror of the customers current"),
    "doctor": ("stripe_identity_mcp.doctor", "main_doctor", "check key, reachability, SCIM token, portal config"),
    "demo": ("stripe_identity_mcp.demo", "main_demo", "run a scripted conversation against the sandbox"),
    "token": ("stripe_identity_mcp.http_auth", "main_token", "create a bearer token for the HTTP transport"),
}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that talks to Stripe; each overrides its environment variable."""
    g = parser.add_argument_group("Stripe connection (flags override env / .env)")
    g.add_argument("--sandbox", action="store_true", help="serve against the embedded emulator (seeded demo data)")
    g.add_argument("--api-key", help="Stripe key (prefer STRIPE_API_KEY: flags show up in process lists)")
    g.add_argument("--api-base", help="default https://api.stripe.com (env STRIPE_API_BASE)")
    g.add_argument("--api-version", help="Stripe-Version header (env STRIPE_API_VERSION)")
    g.add_argument("--stripe-account", help="Stripe-Account header for platforms (env STRIPE_ACCOUNT)")
    g.add_argument("--scim-base", help="default https://access.stripe.com/scim/v2 (env STRIPE_SCIM_BASE)")
    g.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    r = parser.add_argument_group("rate limits (Stripe's defaults; set what Stripe granted the account)")
    r.add_argument("--test-rate", type=float, help="global r/s of a test key (default 25)")
    r.add_argument("--live-rate", type=float, help="global r/s of a live key (default 100)")
    r.add_argument("--endpoint-rate", type=float, help="r/s of each endpoint, e.g. GET /v1/customers/{id} (default 25)")
    r.add_argument("--search-rate", type=float, help="r/s of all search endpoints together (default 20)")
    r.add_argument("--scim-rate", type=float, help="r/s of SCIM calls, a budget of their own (default 10)")
    r.add_argument("--endpoint-rates", help="per-endpoint limits: 'GET /v1/customers=50, POST /v1/customers=40'")
    r.add_argument("--max-concurrency", type=int, help="requests in flight per key (default 32)")
    r.add_argument("--redis-url", metavar="URL",
                   help="share the key's budget (and HTTP streams) between replicas (prefer env STRIPE_IDENTITY_MCP_REDIS_URL)")
    r.add_argument("--replicas", type=int, help="replicas sharing the key: each paces to 1/N while Redis is down (default 2)")


def _port(text: str) -> int:
    """--port: a sentence naming the bad value and the range, not argparse's 'invalid int value'."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: expected a whole number from 0 to 65535 (0: any free port)"
        )
    return port


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    add_settings_flags(parser)
    g = parser.add_argument_group("scope and safety")
    g.add_argument("--toolsets", help=f"comma list of {','.join(ALL_TOOLSETS)} (default: all with credentials)")
    g.add_argument("--allow-writes", action="store_true", default=None, help="register write tools")
    g.add_argument("--allow-live-writes", action="store_true", default=None, help="also allow writes with a live key")
    g.add_argument("--read-only", action="store_true", default=None, help="force read-only (wins over the above)")
    g.add_argument("--confirm", choices=["elicit", "param-only"], help="destructive-call confirmation mode")
    g.add_argument("--audit-log", help="JSONL audit log path for write attempts")
    g.add_argument("--export-dir", help="directory export_customers may write into (default ./exports)")
    g.add_argument("--mirror", help="local mirror (see `sync`) the customer tools also read")
    t = parser.add_argument_group("transport")
    t.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    t.add_argument("--host", default="127.0.0.1")
    t.add_argument("--port", type=_port, default=8765, help="TCP port, 0 for any free one (default 8765)")
    t.add_argument("--stateless", action="store_true", help="HTTP: stateless mode for several replicas")
    t.add_argument("--stream-max-events", type=int, help="HTTP with --redis-url: events kept per stream (default 1000)")
    t.add_argument("--stream-ttl-s", type=float, help="HTTP with --redis-url: seconds a stream is kept after its last event (default 900)")
    t.add_argument("--tokens-file", help="HTTP: bearer token file (TOML/JSON)")
    t.add_argument("--webhook-secret", dest="webhook_secret_list", action="append", metavar="WHSEC",
                   help="HTTP: accept Stripe webhooks at /webhooks/stripe into --mirror (repeatable; "
                   "prefer env STRIPE_WEBHOOK_SECRET, comma-separated)")
    t.add_argument("--allowed-origin", action="append", default=None, help="HTTP: allowed Origin (repeatable)")
    t.add_argument("--allowed-host", action="append", default=None, help="HTTP: allowed Host header (repeatable)")
    t.add_argument("--header-timeout", dest="http_header_timeout_s", type=float, metavar="SECONDS",
                   help="HTTP: seconds to complete a request's headers before the connection is closed (default 5)")
    t.add_argument("--keep-alive", dest="http_keep_alive_s", type=int, metavar="SECONDS",
                   help="HTTP: seconds an idle kept-alive connection stays open (default 15)")
    t.add_argument("--write-timeout", dest="http_write_timeout_s", type=float, metavar="SECONDS",
                   help="HTTP: seconds a client may leave our output unread before it is dropped (default 30)")
    t.add_argument("--max-connections", dest="http_max_connections", type=int, metavar="N",
                   help="HTTP: open connections in total (default 1024)")
    t.add_argument("--max-connections-per-ip", dest="http_max_connections_per_ip", type=int, metavar="N",
                   help="HTTP: open connections per client IP address (default 128)")
    t.add_argument("--reserved-connections", dest="http_reserved_connections", type=int, metavar="N",
                   help="HTTP: slots that connections without a request in progress never take (default 128)")
    o = parser.add_argument_group("OAuth 2.1 resource server (HTTP; see README 'Team sign-in')")
    o.add_argument("--oauth-issuer", metavar="URL", help="accept access tokens (JWTs) from this issuer")
    o.add_argument("--oauth-audience", metavar="URI", help="required `aud` (default: the public URL of /mcp)")
    o.add_argument("--oauth-jwks-url", metavar="URL", help="the issuer's JWKS (default: discovered from the issuer)")
    o.add_argument("--public-url", metavar="URL", help="this server's URL as clients reach it (default http://HOST:PORT)")
    o.add_argument("--oauth-introspection-url", metavar="URL",
                   help="RFC 7662 endpoint for opaque tokens (credentials: env STRIPE_IDENTITY_MCP_OAUTH_CLIENT_ID/_SECRET)")


_FLAG_FIELDS = (
    "api_key", "api_base", "api_version", "stripe_account", "scim_base", "log_level", "toolsets",
    "allow_writes", "allow_live_writes", "read_only", "confirm", "audit_log", "export_dir", "tokens_file",
    "http_header_timeout_s", "http_keep_alive_s", "http_write_timeout_s", "http_max_connections",
    "http_max_connections_per_ip", "http_reserved_connections", "mirror", "stream_max_events", "stream_ttl_s",
    "oauth_issuer", "oauth_audience", "oauth_jwks_url", "public_url", "oauth_introspection_url",
    "test_rate", "live_rate", "endpoint_rate", "search_rate", "scim_rate", "endpoint_rates", "max_concurrency",
    "redis_url", "replicas",
)  # fmt: skip


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {f: getattr(args, f) for f in _FLAG_FIELDS if getattr(args, f, None) is not None}
    if getattr(args, "webhook_secret_list", None):
        overrides["webhook_secret"] = ",".join(args.webhook_secret_list)
    flags = {f: "--" + f.replace("_", "-") for f in overrides}  # errors name the flag the user typed
    overrides.update(extra)
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:  # one sentence per setting: name, bad part, allowed values
        raise ConfigError(invalid_settings_message(exc, flags)) from None


@contextmanager
def maybe_sandbox(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """With --sandbox, start the emulator on a free loopback port and point the settings at it."""
    if not getattr(args, "sandbox", False):
        yield {}
        return
    # Refuse bad settings before the emulator starts: an error is then the only thing printed, and
    # it comes at once. The placeholder bases are replaced by the real loopback ones below.
    settings_from_args(args, **_sandbox_overrides(args, "http://127.0.0.1:1", "http://127.0.0.1:1/scim/v2"))
    from stripe_identity_mcp.sandbox import SandboxConfig, serve_in_thread

    with serve_in_thread(SandboxConfig()) as handle:
        print(
            f"stripe-identity-mcp: sandbox listening on {handle.base_url} "
            f"(key {SANDBOX_KEY}, SCIM token {SANDBOX_SCIM_TOKEN})",
            file=sys.stderr,
        )
        yield _sandbox_overrides(args, handle.base_url, handle.scim_base)


def _sandbox_overrides(args: argparse.Namespace, api_base: str, scim_base: str) -> dict[str, Any]:
    return {
        "api_base": api_base,
        "api_key": getattr(args, "api_key", None) or SANDBOX_KEY,
        "scim_base": scim_base,
        "scim_token": SANDBOX_SCIM_TOKEN,
        "sandbox": True,
    }


def serve(args: argparse.Namespace) -> int:
    with maybe_sandbox(args) as sandbox_overrides:
        try:
            settings = settings_from_args(args, **sandbox_overrides)
            settings.secret_key()
            settings.mode  # noqa: B018 - validates the key prefix
            if settings.redis_url is not None:
                from stripe_identity_mcp.deps import require_redis

                require_redis()  # a sentence now, not a failed lifespan later
        except (ConfigError, ValueError) as exc:
            print(f"stripe-identity-mcp: {exc}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level, settings.secrets())
        if settings.webhook_secrets() and args.transport != "http":
            print("stripe-identity-mcp: --webhook-secret is ignored: webhooks need --transport http", file=sys.stderr)
        if args.transport == "http":
            from stripe_identity_mcp.transport_http import run_http

            return run_http(settings, args)
        from stripe_identity_mcp.server import build_server

        build_server(settings).run("stdio")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="stripe-identity-mcp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stripe-identity-mcp {__version__}")
    sub = parser.add_subparsers(dest="command")
    add_serve_flags(sub.add_parser("serve", help="run the MCP server (default)"))
    for name, (_, _, help_text) in EXTERNAL.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in {"serve", *EXTERNAL, "-h", "--help", "--version"}:
        argv.insert(0, "serve")
    try:
        if argv[0] in EXTERNAL:
            module, func, _ = EXTERNAL[argv[0]]
            runner: Callable[[list[str]], int] = getattr(__import__(module, fromlist=[func]), func)
            code = runner(argv[1:])
        else:
            code = serve(parser.parse_args(argv))
    except ConfigError as exc:  # e.g. refused before the sandbox started: a sentence, not a traceback
        print(f"stripe-identity-mcp: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
    return code  # pragma: no cover


