"""Logging to stderr with every secret redacted, whichever library wrote the record.

Redacting only our own messages is not enough: at DEBUG, httpx and httpcore log request and
exception details (h11's "Illegal header value b'Bearer sk_…\\r'"), uvicorn and the mcp SDK log
their own. So one filter is installed on every handler that exists (a filter on a handler sees every
record passing through it, including those of child loggers) and, for handlers and loggers created
later (uvicorn configures its own at start), the same filter runs in the log-record factory, so a
record is already clean when it is created. Both run the same idempotent redaction.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from stripe_identity_mcp.clients.errors import redact

_lock = threading.Lock()
_installed: RedactingFilter | None = None


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message, arguments or traceback would show a secret; never drops one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = tuple(s for s in secrets if s)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(dict.fromkeys((*self.secrets, *(s for s in secrets if s))))

    def filter(self, record: logging.LogRecord) -> bool:
        self.scrub(record)
        return True

    def scrub(self, record: logging.LogRecord) -> None:
        if getattr(record, "_redacted", False):
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw parts, still redacted
            message = f"{record.msg!s} {record.args!r}"
        clean = redact(message, self.secrets)
        if clean != message:
            # Keep only the redacted text: an argument's own repr may hold the secret, and a handler
            # formatting msg % args again would bring it back.
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        record._redacted = True  # marks the record: a second handler (or the factory) skips it


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    handlers = [h for lg in loggers for h in lg.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    return handlers


def install_redaction(secrets: Iterable[str]) -> RedactingFilter:
    """Redact `secrets` (and anything key- or token-shaped) in every log record from now on.

    Safe to call again (e.g. after a library configured more handlers): secrets accumulate, the
    filter is attached once per handler and the record factory is wrapped once.
    """
    global _installed
    with _lock:
        if _installed is None:
            _installed = RedactingFilter(secrets)
            previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
            scrubber = _installed

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                scrubber.scrub(record)
                return record

            logging.setLogRecordFactory(factory)
        else:
            _installed.add(secrets)
        for handler in _all_handlers():
            if _installed not in handler.filters:
                handler.addFilter(_installed)
        return _installed


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Logs go to stderr only (stdout is the MCP stream on stdio), at `level`, secrets redacted."""
    logging.basicConfig(level=level, stream=sys.stderr)
    install_redaction(secrets)
