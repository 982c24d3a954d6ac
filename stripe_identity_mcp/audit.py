"""The audit log: one JSON line per write attempt, with its true outcome.

Audit log
    `async with audit(ctx, tool, target, args) as entry:` appends one JSON line per write attempt
    (time, caller, tool, target, redacted args, outcome ok/refused/error, request id) and turns
    Stripe/SCIM client errors into ToolErrors (like `tool_errors`; a `tool_errors()` nested inside
    is recognised and still logged as an error). Set `entry.target`, `entry.request_id`, or
    `entry.client = app.scim` (whose `last_request_id` is then used) inside the block; an
    `entry.on_error(exc) -> ToolError | None` can give a clearer message for a specific error.
    Path: `settings.audit_log`, default ~/.stripe-identity-mcp/audit.jsonl (0600). The caller is
    `deps(ctx).extras["caller"]` (a str, a ContextVar or a callable; default "local").
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from stripe_identity_mcp.cards import find_card_numbers, mask_in
from stripe_identity_mcp.clients.errors import ApiStatusError, StripeIdentityError, redact
from stripe_identity_mcp.confirmation import deps_of
from stripe_identity_mcp.error_text import tool_error

DEFAULT_AUDIT_PATH = Path("~/.stripe-identity-mcp/audit.jsonl")
MAX_VALUE = 200
_SECRET_KEY = re.compile(r"(?i)(secret|token|password|passwd|api_key|apikey|authorization|cvc|cvv)")


def audit_path(settings: Any) -> Path:
    path = getattr(settings, "audit_log", None) or DEFAULT_AUDIT_PATH
    return Path(path).expanduser()


def redact_value(value: Any, secrets: list[str], key: str | None = None) -> Any:
    """Secrets → "[redacted]", card-like numbers masked, long strings truncated; structure kept."""
    if key is not None and _SECRET_KEY.search(key):
        return "[redacted]" if value not in (None, "") else value
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {str(redact_value(k, secrets)): redact_value(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_value(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = redact(str(value), secrets)
    if find_card_numbers(text):
        text = mask_in(text)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"…(+{len(text) - MAX_VALUE} chars)"
    return text


class AuditLog:
    """Append-only JSONL file; one line per write attempt. Thread-safe; appends are tiny."""

    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self.secrets = list(secrets or [])
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        line = redact(line, self.secrets)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                # backslashreplace: a lone surrogate becomes the JSON escape \udXXX (the line stays valid JSON)
                os.write(fd, (line + "\n").encode("utf-8", "backslashreplace"))
            finally:
                os.close(fd)

    def record(
        self,
        *,
        tool: str,
        target: str | None,
        args: dict[str, Any],
        outcome: str,
        caller: str = "local",
        request_id: str | None = None,
    ) -> dict[str, Any]:
        entry = {
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "caller": caller,
            "tool": tool,
            "target": redact_value(target, self.secrets) if target is not None else None,
            "args": redact_value({k: v for k, v in args.items() if v is not None}, self.secrets),
            "outcome": outcome,
            "request_id": request_id,
        }
        self.write(entry)
        return entry


def audit_log_for(app: Any) -> AuditLog:
    """The server's AuditLog (one per AppDeps, created on first use)."""
    log = app.extras.get("audit_log")
    if not isinstance(log, AuditLog):
        log = AuditLog(audit_path(app.settings), app.settings.secrets())
        app.extras["audit_log"] = log
    return log


def caller_name(app: Any) -> str:
    caller = app.extras.get("caller", "local")
    if isinstance(caller, ContextVar):
        caller = caller.get("local")
    elif callable(caller):
        caller = caller()
    return str(caller or "local")


@dataclass
class AuditEntry:
    """Mutable while the write runs: set target / request_id / client when known."""

    target: str | None
    client: Any = None
    request_id: str | None = None
    outcome: str = "ok"
    extra: dict[str, Any] = field(default_factory=dict)
    # Optional: turn a specific client error into a clearer ToolError (None → the standard mapping).
    on_error: Callable[[StripeIdentityError], ToolError | None] | None = None


def _error_outcome(exc: StripeIdentityError) -> str:
    if isinstance(exc, ApiStatusError):
        detail = "/".join(str(p) for p in (exc.status, exc.type, exc.code) if p)
        return f"error: {detail}"
    return f"error: {type(exc).__name__}"


@asynccontextmanager
async def audit(ctx: Context, tool: str, target: str | None, args: dict[str, Any]) -> AsyncIterator[AuditEntry]:
    """Record one write attempt: ok / refused (a ToolError raised inside) / error (Stripe, SCIM, other).

    Client errors are converted to ToolErrors (Stripe fields + hint, secrets redacted).
    The request id is the one of the client's last call made inside the block (`entry.client`,
    default the Stripe client), or the failing request's id, or `entry.request_id` if set.
    """
    app = deps_of(ctx)
    log = audit_log_for(app)
    entry = AuditEntry(target=target, client=app.stripe)
    clients = [c for c in (app.stripe, getattr(app, "scim", None)) if c is not None]
    before = {id(c): getattr(c, "last_request_id", None) for c in clients}

    def write(outcome: str, request_id: str | None) -> None:
        log.record(
            tool=tool,
            target=entry.target,
            args=args,
            outcome=outcome,
            caller=caller_name(app),
            request_id=request_id,
        )

    def last_id() -> str | None:
        if entry.request_id:
            return entry.request_id
        now = getattr(entry.client, "last_request_id", None)
        return now if now != before.get(id(entry.client)) else None

    try:
        yield entry
    except ToolError as exc:
        cause = exc.__cause__ or exc.__context__
        outcome = getattr(exc, "outcome", None)  # toolsets/proof.OutcomeError: what really happened
        if isinstance(outcome, str):
            write(outcome, getattr(exc, "request_id", None) or last_id())
        elif isinstance(cause, StripeIdentityError):  # mapped by tool_errors() inside the block
            write(_error_outcome(cause), getattr(cause, "request_id", None) or entry.request_id)
        else:  # our own refusal; a read made before it is not the write's request
            write("refused", entry.request_id)
        raise
    except StripeIdentityError as exc:
        write(_error_outcome(exc), getattr(exc, "request_id", None) or entry.request_id)
        better = entry.on_error(exc) if entry.on_error is not None else None
        raise (better or tool_error(exc, app)) from None
    except BaseException as exc:
        write(f"error: {type(exc).__name__}", last_id())
        raise
    else:
        write(entry.outcome, last_id())
