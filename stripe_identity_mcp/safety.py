"""Safety model shared by every write tool: card-number refusal, confirmation gate, audit log.

Card numbers
    `find_card_numbers(text)` finds digit runs (optionally separated by single spaces or dashes)
    that have a card brand's prefix (IIN) and length and pass Luhn, and returns them masked;
    `refuse_card_numbers(**arguments)` raises a ToolError naming the argument when any string in
    them (dict keys and values, list items) contains one. `excerpt(value)` is the only form in
    which a rejected value may be echoed (short, card-masked). The server applies the refusal to
    every string argument of every tool (see card_guard.py) before the tool body runs.

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

Audit log
    `async with audit(ctx, tool, target, args) as entry:` appends one JSON line per write attempt
    (time, caller, tool, target, redacted args, outcome ok/refused/error, request id) and turns
    Stripe/SCIM client errors into ToolErrors (like `tool_errors`; a `tool_errors()` nested inside
    is recognised and still logged as an error). Set `entry.target`, `entry.request_id`, or
    `entry.client = app.scim` (whose `last_request_id` is then used) inside the block; an
    `entry.on_error(exc) -> ToolError | None` can give a clearer message for a specific error.
    Path: `settings.audit_log`, default ~/.stripe-identity-mcp/audit.jsonl (0600). The caller is
    `deps(ctx).extras["caller"]` (a str, a ContextVar or a callable; default "local").

Team members: `confirm_resolver("email", preview, action="deactivated")` makes the email the target.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import threading
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from stripe_identity_mcp.clients.errors import ApiStatusError, StripeIdentityError, redact

# --------------------------------------------------------------------------------------------
# Card numbers
# --------------------------------------------------------------------------------------------

# A run of digit groups joined by single spaces or dashes (maximal: not touching other digits).
_RUN = re.compile(r"(?<![\d])\d+(?:[ -]\d+)*(?![\d])")
_SEP = re.compile(r"[ -]")
CARD_HELP = "collect cards with Stripe.js / Payment Element and pass a pm_ id instead"


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_card(digits: str) -> str:
    """`4242424242424242` → `4242 **** **** 4242` (first and last four only)."""
    middle = "*" * (len(digits) - 8)
    groups = [middle[i : i + 4] for i in range(0, len(middle), 4)]
    return " ".join([digits[:4], *groups, digits[-4:]])


# Brand prefixes (IIN ranges) and lengths, from Stripe's testing page and the card networks'
# published ranges. Luhn alone is not enough: one number in ten passes it, so a 13-digit
# millisecond timestamp (1764619200009), an order number or a phone number would be "a card".
# Ranges are inclusive and compared on the first len(low) digits.
CARD_BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], frozenset[int]], ...] = (
    ("visa", (("4", "4"),), frozenset({13, 16, 19})),
    ("mastercard", (("51", "55"), ("2221", "2720")), frozenset({16})),
    ("amex", (("34", "34"), ("37", "37")), frozenset({15})),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), frozenset(range(16, 20))),
    ("diners", (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")), frozenset(range(14, 20))),
    ("jcb", (("3528", "3589"),), frozenset(range(16, 20))),
    ("unionpay", (("62", "62"), ("8100", "8171")), frozenset(range(16, 20))),
    # Maestro only by its issued IINs: the textbook "50, 56–69" would make every 6-prefixed
    # 13-19 digit reference that passes Luhn a card (1 in 10 of them).
    ("maestro", (("5018", "5018"), ("5020", "5020"), ("5038", "5038"), ("5893", "5893"), ("6304", "6304"),
                 ("6759", "6759"), ("6761", "6763")), frozenset(range(13, 20))),
    # Cartes Bancaires, eftpos Australia and Interac cards are co-branded with Visa or Mastercard
    # (Stripe's test cards for them are 4… and 5… numbers), so the rows above cover them.
    ("mir", (("2200", "2204"),), frozenset(range(16, 20))),
)  # fmt: skip


def card_brand(digits: str) -> str | None:
    """The brand whose prefix and length `digits` has (Luhn not checked), else None."""
    for brand, ranges, lengths in CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            if low <= digits[: len(low)] <= high:
                return brand
    return None


def is_card_number(digits: str) -> bool:
    """A brand's prefix and length, Luhn-valid, and not one digit repeated."""
    if not (digits.isascii() and digits.isdigit()) or len(set(digits)) == 1:  # 0000000000000 is not a card
        return False
    return card_brand(digits) is not None and luhn_ok(digits)


# Work bound per text: a window is one group-aligned 13–19 digit candidate. Real text has a few;
# "1 1 1 …" (10 MB of single digits) would have millions and take minutes in pure Python.
MAX_WINDOWS = 50_000
TOO_MANY_GROUPS = "too many digit groups to check"  # reported (and refused) instead of hanging
_FIRST_DIGITS = frozenset(low[0] for _, ranges, _ in CARD_BRANDS for low, _ in ranges)


def _candidates(run: str, budget: list[int]) -> list[str] | None:
    """Digit strings of 13–19 digits a run could hold: the whole run, or whole groups of it.

    Other scripts' digits (full-width １, Arabic-Indic ٤ …) count as their ASCII values: a card
    number typed in them is still a card number. None when `budget` (windows left) runs out.
    """
    groups = [g if g.isascii() else "".join(str(unicodedata.decimal(c)) for c in g) for g in _SEP.split(run)]
    found: list[str] = []
    for start in range(len(groups)):
        if groups[start][0] not in _FIRST_DIGITS:  # no brand starts like this: skip the start cheaply
            continue
        digits = ""
        for end in range(start, len(groups)):
            digits += groups[end]
            if len(digits) > 19:
                break
            if len(digits) >= 13:
                found.append(digits)
                budget[0] -= 1
                if budget[0] < 0:
                    return None
    return sorted(found, key=len, reverse=True)  # the whole run first, then the longest parts


def find_card_numbers(text: str) -> list[str]:
    """Masked forms of every card number in `text` (never the number itself).

    A text with more candidate windows than MAX_WINDOWS yields TOO_MANY_GROUPS (callers refuse it
    like a card: it is no legitimate Stripe value, and checking it fully would stall the server).
    """
    if not isinstance(text, str) or len(text) < 13:
        return []
    out: list[str] = []
    budget = [MAX_WINDOWS]
    for match in _RUN.finditer(text):
        run = match.group(0)
        if sum(c.isdigit() for c in run) < 13:
            continue
        candidates = _candidates(run, budget)
        if candidates is None:
            return [*out, TOO_MANY_GROUPS]
        for digits in candidates:
            if is_card_number(digits):
                masked = mask_card(digits)
                if masked not in out:
                    out.append(masked)
                break
    return out


EXCERPT = 40


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """How a rejected value may appear in an answer: repr of at most `limit` characters, cards masked.

    A 10 MB argument must not come back as a 10 MB error, and a card number pasted into the wrong
    field must not come back at all.
    """
    text = value if isinstance(value, str) else repr(value)
    short = text[:limit]
    window = text[: limit + 40]  # any card that starts inside the excerpt ends inside the window
    if find_card_numbers(window):
        short = _mask_in(window)[:limit]
    more = f"…(+{len(text) - limit} chars)" if len(text) > limit else ""
    return repr(short) + more


def _first_card(value: Any, path: str) -> str | None:
    """The path (e.g. `metadata['note']`) of the first string holding a card number, or None."""
    if isinstance(value, str):
        return path if find_card_numbers(value) else None
    if isinstance(value, int) and not isinstance(value, bool):  # a card sent as a JSON number is still one
        return path if value >= 10**12 and find_card_numbers(str(value)) else None
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        for key, sub in value.items():
            if isinstance(key, str) and find_card_numbers(key):
                return f"{path} (key {key[:4]}…)"
            hit = _first_card(sub, f"{path}[{excerpt(key)}]")  # keys are caller text too: short
            if hit:
                return hit
    elif isinstance(value, (list, tuple, set)):
        for index, sub in enumerate(value):
            hit = _first_card(sub, f"{path}[{index}]")
            if hit:
                return hit
    return None


def refuse_card_numbers(**fields: Any) -> None:
    """Raise a ToolError naming the first argument that contains a card number (None is skipped)."""
    for name, value in fields.items():
        if value is None:
            continue
        where = _first_card(value, name)
        if where is not None:
            at = "" if where == name else f" (at {where})"
            raise ToolError(
                f"argument '{name}'{at} contains what looks like a card number; {CARD_HELP}. "
                "Nothing was sent to Stripe."
            )


# --------------------------------------------------------------------------------------------
# Confirmation gate
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------

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
        text = _mask_in(text)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"…(+{len(text) - MAX_VALUE} chars)"
    return text


def _mask_in(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        found = find_card_numbers(run)
        return f"[card {found[0]}]" if found else run

    return _RUN.sub(replace, text)


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
    from stripe_identity_mcp.toolsets.common import tool_error

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
            write(outcome, last_id())
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
