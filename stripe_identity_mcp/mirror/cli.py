"""`stripe-identity-mcp sync --db PATH`: create or update the local mirror; one JSON summary on stdout.

Progress goes to stderr (none with --quiet). Exit codes: 0 done, 1 Stripe or file failure (a first
export resumes on the next run), 2 bad usage/configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from stripe_identity_mcp import cli
from stripe_identity_mcp.clients.errors import StripeIdentityError, redact
from stripe_identity_mcp.log_redaction import configure_logging
from stripe_identity_mcp.settings import ConfigError

PROG = "stripe-identity-mcp sync"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Keep a local SQLite mirror of your Stripe customers current.")
    p.add_argument("--db", required=True, help="SQLite file (created on the first run)")
    p.add_argument("--quiet", action="store_true", help="no progress line, no human summary")
    p.add_argument("--rate", type=float, help="requests/s to allow (default: the key's)")
    cli.add_settings_flags(p)
    return p


def describe(result: Any) -> str:
    when = datetime.fromtimestamp(result.current_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (
        f"{PROG}: {result.kind}: {result.created} created, {result.updated} updated, {result.deleted} deleted, "
        f"{result.unchanged} unchanged ({result.events} events, {result.requests} requests, {result.seconds:.1f}s); "
        f"{result.customers:,} customers, current as of {when}"
    )
    return text + (f"\n{PROG}: {result.note}" if result.note else "")


async def sync_with(settings: Any, db: Path, on_progress: Any = None) -> Any:
    from stripe_identity_mcp.deps import open_deps
    from stripe_identity_mcp.mirror import store
    from stripe_identity_mcp.mirror.sync import run_sync

    conn = store.connect(db)
    try:
        async with open_deps(settings) as app:
            return await run_sync(app.stripe, conn, mode=settings.mode, on_progress=on_progress)
    finally:
        conn.close()


def main_sync(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from stripe_identity_mcp.export.cli import ProgressLine
    from stripe_identity_mcp.mirror.store import MirrorError

    with cli.maybe_sandbox(args) as overrides:
        try:
            settings = cli.settings_from_args(args, **overrides)
            if args.rate:
                settings = settings.model_copy(update={"test_rate": args.rate, "live_rate": args.rate})
            settings.secret_key()
            settings.mode  # noqa: B018 - validates the key prefix
        except (ConfigError, ValueError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level, settings.secrets())
        line = ProgressLine(args.quiet, settings.rate)
        try:
            result = anyio.run(sync_with, settings, Path(args.db), line)
        except KeyboardInterrupt:
            line.end()
            print(f"{PROG}: interrupted; run the same command again to continue", file=sys.stderr)
            return 130
        except MirrorError as exc:
            line.end()
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        except StripeIdentityError as exc:
            line.end()
            hint = f" ({exc.hint})" if exc.hint else ""
            print(f"{PROG}: Stripe error: {redact(exc.message, settings.secrets())}{hint}", file=sys.stderr)
            print(f"{PROG}: nothing half-applied; run the same command again to continue", file=sys.stderr)
            return 1
        except (OSError, sqlite3.Error) as exc:
            line.end()
            print(f"{PROG}: cannot use {args.db}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            return 1
        line.end()
        if not args.quiet:
            print(describe(result), file=sys.stderr)
        print(json.dumps(asdict(result)))
    return 0
