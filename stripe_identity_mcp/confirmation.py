"""The confirmation gate of destructive tools.

Confirmation (destructive tools)
    `confirm` must equal the target (an id, or the email for team members). When
    `settings.confirm == "elicit"` and the client can elicit, the human is asked too (the tool's
    preview is the question). A client that cannot elicit proceeds on the right `confirm` alone
    (the explicit argument IS the confirmation). Never fails open: no/wrong `confirm`, decline or
    cancel → ToolError saying nothing happened. Usage::

        async def _preview(ctx: Context, customer_id: str) -> str:  # reads only, no side effects
            return f"Permanently delete {customer_id}?"

        _gate = confirm_resolver("customer_id", _preview, action="deleted")

        @server.tool(annotations=DESTRUCTIVE)
        async def delete_customer(
            answer: Annotated[ElicitationResult[Confirmation], Resolve(_gate)],   # first; hidden from schema
            customer_id: CustomerId,
            ctx: Context,
            confirm: ConfirmArg = None,
        ) -> ...:
            async with audit(ctx, "delete_customer", customer_id, {"confirm": confirm}):
                require_confirmed(answer, action="deleted")   # raises unless confirmed
                ...do it...

    The resolver takes the tool's arguments by name (its signature is built with the target
    argument's real name), may run more than once per call on the newest protocol, and has no side
    effects; refusals are *returned* (not raised) so the tool body logs them to the audit log.
    `only_if="clear_all_metadata"` asks only when that boolean tool argument is true.

Team members: `confirm_resolver("email", preview, action="deactivated")` makes the email the target.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field


class Confirmation(BaseModel):
    """What the human is asked (one checkbox; the message is the tool's preview)."""

    confirm: bool = Field(description="Yes, do it")


@dataclass(frozen=True)
class Refusal:
    """A gate's refusal, handed to the tool body so the attempt is audited before it is raised."""

    message: str


@dataclass(frozen=True)
class NotNeeded:
    """The gate did not apply (e.g. `only_if` argument false)."""


ConfirmArg = Annotated[
    str | None,
    Field(description="= the id"),
]

Preview = Callable[[Context, str], Awaitable[str]]


def deps_of(ctx: Context) -> Any:
    """The server's AppDeps (typed Any here: safety sits below the toolsets that define its use)."""
    return ctx.request_context.lifespan_context


def can_elicit(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    if elicitation is None:
        return False
    return elicitation.form is not None or elicitation.url is None


def how_to_confirm(target: str, action: str) -> str:
    return f"call again with confirm='{target}'. Nothing was {action}."


def confirm_resolver(
    target_arg: str,
    preview: Preview | None = None,
    *,
    action: str = "deleted",
    what: str | None = None,
    only_if: str | None = None,
    when: Callable[[Context, dict[str, Any]], Awaitable[bool]] | None = None,
    when_args: tuple[str, ...] = (),
) -> Callable[..., Awaitable[Any]]:
    """Build the resolver for `Annotated[ElicitationResult[Confirmation], Resolve(...)]`.

    target_arg: the tool argument the `confirm` must equal (e.g. "customer_id", "email").
    preview: async (ctx, target) -> question shown to the human; reads only; may raise ToolError
        (e.g. target not found), which aborts the call before anything happens.
    action: past participle for messages ("deleted", "detached", "changed").
    what: noun for the target in messages (defaults to the target itself).
    only_if: name of a boolean tool argument; when false, no confirmation is needed.
    when: async (ctx, arguments) -> whether confirmation is needed (reads allowed; `when_args` names the
        tool arguments it needs besides the target); replaces only_if.
    The tool must have arguments named `target_arg`, `confirm` (and `only_if`) and a Context.
    """

    async def resolver(**kwargs: Any) -> Any:
        ctx: Context = kwargs["ctx"]
        if when is not None:
            if not await when(ctx, kwargs):
                return NotNeeded()
        elif only_if is not None and not kwargs.get(only_if):
            return NotNeeded()
        target = str(kwargs.get(target_arg) or "")
        confirm = kwargs.get("confirm")
        label = what or target
        if confirm is None or confirm == "":
            return Refusal(f"{label} needs confirmation: {how_to_confirm(target, action)}")
        if confirm != target:
            return Refusal(f"confirm does not match: it must be exactly '{target}'; {how_to_confirm(target, action)}")
        settings = deps_of(ctx).settings
        if settings.confirm != "elicit" or not can_elicit(ctx):
            return Confirmation(confirm=True)
        if preview is None:
            return Elicit(f"Confirm: {target} will be {action}.", Confirmation)
        try:
            message = await preview(ctx, target)
        except ToolError as exc:  # e.g. the target does not exist: refused (and audited) by the tool body
            return Refusal(f"{exc} Nothing was {action}.")
        return Elicit(message, Confirmation)

    params = [inspect.Parameter(target_arg, inspect.Parameter.KEYWORD_ONLY)]
    params.append(inspect.Parameter("confirm", inspect.Parameter.KEYWORD_ONLY))
    for name in ((only_if,) if only_if is not None else ()) + when_args:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY))
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    resolver.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    resolver.__annotations__ = {"ctx": Context}
    suffix = "_".join(((only_if,) if only_if else ()) + when_args)
    resolver.__qualname__ = f"confirm_{target_arg}{'_' + suffix if suffix else ''}"
    return resolver


def require_confirmed(answer: ElicitationResult[Confirmation] | Any, *, action: str = "deleted") -> bool:
    """Raise ToolError unless the gate's outcome is a confirmation. Returns False when not needed."""
    if isinstance(answer, AcceptedElicitation):
        data = answer.data
        if isinstance(data, NotNeeded):
            return False
        if isinstance(data, Refusal):
            raise ToolError(data.message)
        if isinstance(data, Confirmation) and data.confirm is True:
            return True
        raise ToolError(f"not confirmed; nothing was {action}.")
    # DeclinedElicitation / CancelledElicitation / anything unexpected: never fail open.
    return _refuse_not_confirmed(action)


def _refuse_not_confirmed(action: str) -> bool:
    raise ToolError(f"not confirmed; nothing was {action}.")
