"""`stripe-identity-mcp doctor`: check key kind/mode, reachability, SCIM token, portal configuration.

Prints one line per check (never a secret); exits 0 only when every check passed, 1 when one failed,
2 when the configuration itself is invalid.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from stripe_identity_mcp.clients.errors import StripeIdentityError, redact
from stripe_identity_mcp.log_redaction import configure_logging
from stripe_identity_mcp.settings import ConfigError, Settings


async def run_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    from stripe_identity_mcp.deps import open_deps

    results: list[tuple[str, bool, str]] = []
    results.append(("key", True, f"{settings.key_kind} key, {settings.mode} mode, API version {settings.api_version}"))
    async with open_deps(settings) as app:
        try:
            page = await app.stripe.list_customers(limit=1)
            results.append(("stripe", True, f"reachable at {settings.api_base}; customers readable ({len(page.data)} seen)"))
        except StripeIdentityError as exc:
            results.append(("stripe", False, redact(exc.message, settings.secrets())))
        try:
            configs = await app.stripe.call("GET", "/v1/billing_portal/configurations", {"limit": 1})
            ok = bool(configs and configs.get("data"))
            note = "configured" if ok else f"none in {settings.mode} mode: Dashboard → Settings → Billing → Customer portal"
            results.append(("portal", ok, note))
        except StripeIdentityError as exc:
            results.append(("portal", False, redact(exc.message, settings.secrets())))
        if app.scim is None:
            results.append(("scim", True, "not configured (STRIPE_SCIM_TOKEN unset): team toolset off"))
        else:
            try:
                listed = await app.scim.list_users(count=1)
                count = f"{listed.totalResults} member{'s' * (listed.totalResults != 1)}"
                results.append(("scim", True, f"token accepted at {settings.scim_base} ({count})"))
            except StripeIdentityError as exc:
                results.append(("scim", False, redact(exc.message, settings.secrets())))
    return results


def report(results: list[tuple[str, bool, str]]) -> int:
    """Print one line per check; 0 only when every check passed, else 1 with a summary naming the failures."""
    for name, ok, note in results:
        print(f"{name:7} {'ok  ' if ok else 'FAIL'} {note}")
    failed = [name for name, ok, _ in results if not ok]
    if failed:
        print(f"doctor: {len(failed)} check{'s' * (len(failed) != 1)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main_doctor(argv: list[str]) -> int:
    from stripe_identity_mcp.cli import add_settings_flags, maybe_sandbox, settings_from_args

    parser = argparse.ArgumentParser(prog="stripe-identity-mcp doctor", description=__doc__)
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    with maybe_sandbox(args) as overrides:
        try:
            settings = settings_from_args(args, **overrides)
            settings.mode  # noqa: B018 - validates the key
        except (ConfigError, ValueError) as exc:
            print(f"config  FAIL {exc}")
            return 2
        configure_logging(settings.log_level, settings.secrets())
        try:
            results = anyio.run(run_checks, settings)
        except StripeIdentityError as exc:  # e.g. the clients could not even be built
            results = [("stripe", False, redact(exc.message, settings.secrets()))]
    return report(results)
