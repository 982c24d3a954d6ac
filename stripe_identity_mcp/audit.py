"""The audit log: one JSON line per write attempt, with its true outcome.

Audit log
    `async with audit(ctx, tool, target, args) as entry:` appends one JSON line per write attempt
    (time, caller, tool, target, redacted args, outcome ok/refused/error, request id) and turns
    Stripe/SCIM client errors into ToolErrors (like `tool_errors`; a `tool_errors()` nested inside
    is recognised and still logged as an error). Set `entry.target`, `entry.request_id`, or
    `entry.client = app.scim` (whose `last_request_id` is then used) inside the block; an
    `entry.on_error(exc) -> ToolError | None` can give a clearer message for a specific error.
    Path: `settings.audit_log`, default ~/.stripe-identity-mcp/audit.jsonl (0600). The caller is
    `deps(ctx).caller` (a str, a ContextVar or a callable; default "local"). The file itself is
    audit_log.AuditLog.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from stripe_identity_mcp.audit_log import AuditLog, audit_path, redact_value  # noqa: F401  (re-exported)
from stripe_identity_mcp.clients.errors import ApiStatusError, StripeIdentityError
from stripe_identity_mcp.confirmation import deps_of
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.error_text import tool_error


def audit_log_for(app: AppDeps) -> AuditLog:
    """The server's AuditLog: the one the opener gave (HTTP: one for all tokens), else created on first
    use (a read-only stdio server never touches the file)."""
    if app.audit_log is None:
        app.audit_log = AuditLog(audit_path(app.settings), app.settings.secrets())
    return app.audit_log


def caller_name(app: AppDeps) -> str:
    caller: object = app.caller
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
