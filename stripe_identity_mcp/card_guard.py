"""One card-number check for every tool: no string argument holding a card number reaches a tool body.

Applied once in build_server() to every registered tool, so a tool added later is covered without
remembering to call `refuse_card_numbers` (reads included: a card pasted into a search or an
export filename would otherwise travel to Stripe, into logs and into file names).

It wraps the tool function, so it runs after argument validation (an id field with a card in it
still gets the schema's "should match pattern" answer, which echoes nothing) and before the body.
Confirmation resolvers run before it; they only read the target by id and never see free text.
A refusal by a write tool is appended to the audit log as "refused", like the tools' own refusals.
"""

from __future__ import annotations

import functools
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

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
        if audited and app is not None:
            audit_log_for(app).record(
                tool=tool,
                target=_target(arguments),  # masked by the audit log like every value
                args={k: v for k, v in arguments.items() if v is not None and v is not False},
                outcome="refused",
                caller=caller_name(app),
            )
        raise


def guard_card_numbers(server: Any) -> None:
    """Wrap every registered tool so its string arguments are checked for card numbers first."""
    for tool in server._tool_manager.list_tools():
        context_name = tool.context_kwarg
        # Values filled by resolvers (confirmation answers) and the Context are not caller text.
        skip = {context_name, *tool.resolved_params}
        audited = not (tool.annotations is not None and tool.annotations.read_only_hint)
        original = tool.fn

        def check(kwargs: dict[str, Any], __name: str = tool.name, __skip: set[Any] = skip,
                  __audited: bool = audited, __ctx: str | None = context_name) -> None:  # fmt: skip
            arguments = {k: v for k, v in kwargs.items() if k not in __skip}
            check_arguments(__name, arguments, audited=__audited, context=kwargs.get(__ctx) if __ctx else None)

        if tool.is_async:

            @functools.wraps(original)
            async def async_wrapper(*args: Any, __fn: Any = original, __check: Any = check, **kwargs: Any) -> Any:
                __check(kwargs)
                return await __fn(*args, **kwargs)

            tool.fn = async_wrapper
        else:

            @functools.wraps(original)
            def sync_wrapper(*args: Any, __fn: Any = original, __check: Any = check, **kwargs: Any) -> Any:
                __check(kwargs)
                return __fn(*args, **kwargs)

            tool.fn = sync_wrapper
