"""`stripe-identity-mcp export`: export every customer to JSONL/CSV with a live progress line.

Progress goes to stderr (one `\\r`-updated line; none with --quiet). When done, one JSON summary line
(path, count, seconds, requests, retries, rate_limited, max_rate, requests_per_s, sha256, created
range) is printed to stdout.
Ctrl-C leaves a checkpoint and prints the command that resumes. Exit codes: 0 done, 1 Stripe or
file-system failure (checkpoint kept when the export had started), 2 bad usage/configuration,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from stripe_identity_mcp import cli
from stripe_identity_mcp.clients.errors import StripeIdentityError, redact
from stripe_identity_mcp.export.paths import PathRefused, check_name
from stripe_identity_mcp.export.writers import format_for
from stripe_identity_mcp.log_redaction import configure_logging
from stripe_identity_mcp.settings import MIN_EXPORT_RATE, ConfigError

PROG = "stripe-identity-mcp export"


def parse_time(value: str) -> int:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither unix seconds nor an ISO 8601 date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Export every Stripe customer (or a created range).")
    p.add_argument("--format", choices=["jsonl", "csv"], help="default: from the --out suffix")
    p.add_argument("--out", required=True, help="output file; its checkpoint is FILE.checkpoint.json")
    p.add_argument("--created-gte", type=parse_time, help="unix seconds or ISO date (inclusive)")
    p.add_argument("--created-lt", type=parse_time, help="unix seconds or ISO date (exclusive; default: now)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted export of --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--concurrency", type=int, help="concurrent windows (default: from rate × latency)")
    p.add_argument("--rate", type=float, help="requests/s to allow (default: the key's, 25 test / 100 live)")
    p.add_argument(
        "--max-rate",
        type=float,
        help="the export's share of the key in requests/s, capped by GET /v1/customers' limit (default: "
        "live 25 = a quarter of the key's 100, leaving the merchant's own traffic 75; test: the endpoint limit)",
    )
    p.add_argument("--from-db", metavar="PATH", help="write from the local mirror (see sync) without calling Stripe")
    cli.add_settings_flags(p)
    return p


class ProgressLine:
    def __init__(self, quiet: bool, rate: float) -> None:
        self.quiet, self.rate, self.last, self.width = quiet, rate, 0.0, 0

    async def __call__(self, p: object) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        count, secs = getattr(p, "count", 0), max(getattr(p, "seconds", 0.0), 1e-9)
        line = (
            f"  {count:>10,} customers  {count / secs:>7,.0f}/s  "
            f"{getattr(p, 'requests', 0):,} requests  {getattr(p, 'retries', 0)} retries  "
            f"{getattr(p, 'rate_limited', 0)}×429  {secs:5.1f}s  (ceiling {self.rate * 100:,.0f}/s)"
        )
        self.width = max(self.width, len(line))
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()

    def end(self) -> None:
        if not self.quiet and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def resume_command(args: argparse.Namespace, fmt: str | None) -> str:
    parts = ["stripe-identity-mcp", "export", *(["--format", fmt] if fmt else []), "--out", args.out, "--resume"]
    if args.sandbox:
        parts.append("--sandbox")
    return shlex.join(parts)


def export_mirror(args: argparse.Namespace, fmt: str | None) -> int:
    import sqlite3

    from stripe_identity_mcp.mirror.export import export_from_db
    from stripe_identity_mcp.mirror.store import MirrorError

    if args.resume or args.created_gte is not None or args.created_lt is not None:
        print(f"{PROG}: --from-db writes the whole mirror: no --resume or created range", file=sys.stderr)
        return 2
    try:
        summary = export_from_db(Path(args.from_db), Path(args.out), fmt, overwrite=args.overwrite)  # type: ignore[arg-type]
    except MirrorError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"{PROG}: cannot export from {args.from_db}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        age = time.time() - summary["mirror_current_at"]
        print(f"{PROG}: {summary['count']:,} customers from the mirror (current as of {age:,.0f}s ago) → {summary['path']}",
              file=sys.stderr)
    print(json.dumps(summary))
    return 0


def main_export(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_name(args.out)
    except PathRefused as exc:
        print(f"{PROG}: --out refused: {exc}", file=sys.stderr)
        return 2
    try:
        fmt = format_for(args.out, args.format)
    except ValueError as exc:
        print(f"{PROG}: --format refused: {exc}", file=sys.stderr)
        return 2
    if fmt is None and not args.resume:
        print(f"{PROG}: give --format jsonl|csv (cannot tell from {args.out!r})", file=sys.stderr)
        return 2
    if args.from_db:
        return export_mirror(args, fmt)
    with cli.maybe_sandbox(args) as overrides:
        try:
            settings = cli.settings_from_args(args, **overrides)
            if args.rate:
                settings = settings.model_copy(update={"test_rate": args.rate, "live_rate": args.rate})
            settings.secret_key()
            mode = settings.mode
        except (ConfigError, ValueError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level, settings.secrets())
        if args.max_rate is not None and not args.max_rate >= MIN_EXPORT_RATE:  # `not >=`: NaN too
            print(f"{PROG}: --max-rate must be at least {MIN_EXPORT_RATE:g} requests/s", file=sys.stderr)
            return 2
        max_rate = settings.export_rate(args.max_rate)
        line = ProgressLine(args.quiet, max_rate)

        async def stop_on_ctrl_c(scope: anyio.CancelScope) -> None:
            # Ctrl-C cancels the export through our own cancel scope; `go` then returns no result.
            # asyncio's default (cancel the main task, raise KeyboardInterrupt if it ends cancelled)
            # depends on that one native cancellation surviving every library on the way; once,
            # under load, it did not, and an interrupted export ran on to exit 0.
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    scope.cancel()
                    return

        async def go() -> object:
            result: object = None
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stop_on_ctrl_c, tg.cancel_scope)
                    try:
                        result = await export()
                    finally:
                        tg.cancel_scope.cancel()  # the export is over: stop listening
            except BaseExceptionGroup as group:  # the export's own error, not a group of one
                raise group.exceptions[0] from None
            return result

        async def export() -> object:
            from stripe_identity_mcp.deps import open_deps
            from stripe_identity_mcp.export.engine import run_export

            async with open_deps(settings) as app:
                return await run_export(
                    app.stripe,
                    Path(args.out),
                    fmt,  # type: ignore[arg-type]
                    created_gte=args.created_gte,
                    created_lt=args.created_lt,
                    resume=args.resume,
                    overwrite=args.overwrite,
                    on_progress=line,
                    concurrency=args.concurrency,
                    mode=mode,
                    max_rate=max_rate,
                )

        from stripe_identity_mcp.export.engine import ExportError

        try:
            result = anyio.run(go)
            if result is None:  # cancelled by Ctrl-C before it finished (a finished export is reported)
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            line.end()
            print(f"{PROG}: interrupted; progress saved. Resume with:\n  {resume_command(args, fmt)}", file=sys.stderr)
            return 130
        except ExportError as exc:
            line.end()
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        except StripeIdentityError as exc:
            line.end()
            message = redact(exc.message, settings.secrets())
            hint = f" ({exc.hint})" if exc.hint else ""
            print(f"{PROG}: Stripe error: {message}{hint}", file=sys.stderr)
            print(f"{PROG}: progress saved; resume with:\n  {resume_command(args, fmt)}", file=sys.stderr)
            return 1
        except OSError as exc:
            line.end()
            print(f"{PROG}: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        line.end()
        summary = dict(vars(result))
        if not args.quiet:
            rate = summary["count"] / max(summary["seconds"], 1e-9)
            print(
                f"{PROG}: {summary['count']:,} customers → {summary['path']} in {summary['seconds']:.1f}s "
                f"({rate:,.0f}/s, {summary['requests']} requests at {summary['requests_per_s']:.1f}/s of "
                f"{summary['max_rate']:g} allowed, {summary['retries']} retries); "
                f"sha256 {summary['sha256']}",
                file=sys.stderr,
            )
        print(json.dumps(summary))
    return 0
