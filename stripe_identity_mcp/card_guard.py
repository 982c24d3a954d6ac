"""One card-number check for every tool: no string argument holding a card number reaches a tool body.

Called by server.AuditedServer.call_tool for every tool call, so a tool a toolset adds later is
covered without remembering to call `refuse_card_numbers` (reads included: a card pasted into a
search or an export filename would otherwise travel to Stripe, into logs and into file names).

It sees the arguments as the client sent them, before anything else runs: schema validation,
confirmation resolvers (which read the target from Stripe/SCIM by id — a card in `member_id` would
otherwise be sent to SCIM) and the tool body. A refusal by a write tool is appended to the audit log
as "refused", like the tools' own refusals.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from stripe_identity_mcp.audit import audit_log_for, caller_name
from stripe_identity_mcp.cards import card_refusal
from stripe_identity_mcp.deps import AppDeps


def refuse_card_numbers(**fields: Any) -> None:
    """Raise the standard card refusal as a ToolError (see cards.card_refusal)."""
    message = card_refusal(**fields)
    if message is not None:
        raise ToolError(message)


# Arguments that name what a write is about, in the order the audit log's `target` prefers them.
_TARGET_HINTS = ("customer_id", "email", "account_id", "user_id", "member_id", "filename")


def _target(arguments: dict[str, Any]) -> str | None:
    for name in _TARGET_HINTS:
        value = arguments.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def check_arguments(tool: str, arguments: dict[str, Any], *, audited: bool, context: Any = None) -> None:
    """Raise the standard card refusal (argument name, where, "Nothing was sent to Stripe")."""
    message = card_refusal(**arguments)
    if message is None:
        return
    app = getattr(getattr(context, "request_context", None), "lifespan_context", None)
    if audited and isinstance(app, AppDeps):
        audit_log_for(app).record(
            tool=tool,
            target=_target(arguments),  # masked by the audit log like every value
            args={k: v for k, v in arguments.items() if v is not None and v is not False},
            outcome="refused",
            caller=caller_name(app),
        )
    raise ToolError(message)
