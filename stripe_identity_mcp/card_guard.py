"""One card-number check for every tool: no string argument holding a card number reaches a tool body.

Applied once in build_server() to every registered tool, so a tool a toolset adds later is covered
without remembering to call `refuse_card_numbers` (reads included: a card pasted into a search or an
export filename would otherwise travel to Stripe, into logs and into file names).

It wraps each tool's `run`, so it sees the arguments after schema validation (an id field with a
card in it still gets the schema's "should match pattern" answer, which echoes nothing) and before
anything else runs: confirmation resolvers (which read the target from Stripe/SCIM by id — a card
in `member_id` would otherwise be sent to SCIM) and the tool body. A refusal by a write tool is
appended to the audit log as "refused", like the tools' own refusals.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.safety import audit_log_for, caller_name, refuse_card_numbers

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
    try:
        refuse_card_numbers(**arguments)
    except ToolError:
        app = getattr(getattr(context, "request_context", None), "lifespan_context", None)
        if audited and isinstance(app, AppDeps):
            audit_log_for(app).record(
                tool=tool,
                target=_target(arguments),  # masked by the audit log like every value
                args={k: v for k, v in arguments.items() if v is not None and v is not False},
                outcome="refused",
                caller=caller_name(app),
            )
        raise


def guard_card_numbers(server: Any) -> None:
    """Wrap every registered tool's `run` so its arguments are checked for card numbers first."""
    for tool in server._tool_manager.list_tools():
        audited = not (tool.annotations is not None and tool.annotations.read_only_hint)

        async def run(
            arguments: dict[str, Any],
            context: Any,
            convert_result: bool = False,
            __tool: Any = tool,
            __run: Any = tool.run,
            __audited: bool = audited,
        ) -> Any:
            try:
                # The validated form: what the tool would get (no Context, no resolver answers).
                validated = __tool.fn_metadata.validate_arguments(arguments)
            except Exception:
                validated = None  # the SDK reports the schema error (echoing no value)
            if validated is not None:
                try:
                    check_arguments(__tool.name, validated, audited=__audited, context=context)
                except ToolError as exc:  # worded like every other tool error
                    raise ToolError(f"Error executing tool {__tool.name}: {exc}") from None
            return await __run(arguments, context, convert_result=convert_result)

        object.__setattr__(tool, "run", run)  # Tool is a pydantic model; `run` is its public entry point
