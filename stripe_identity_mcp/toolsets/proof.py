"""Proof of a write's outcome: the answer when it proves it, else what reading the object back shows.

A status below 400 is not proof. A write tool says "done" only when
- the answer is the object in the new state (e.g. `{id, deleted: true}` for that id), or
- the answer did not prove it (204, an empty or wrong-shaped body, a redirect, a lost answer, a 5xx,
  a 404 on a retry after an attempt that may have committed) and reading the object back shows the
  new state.
Otherwise it says what it read ("still active: access is NOT revoked") or that the outcome is
unknown and how to check — never success. Failures that prove nothing was done (a 4xx to the only
attempts that reached the server, an unreachable host, a refusal before sending) pass through
unchanged: their own message is already the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from stripe_identity_mcp.clients.errors import ApiStatusError, StripeIdentityError, UnexpectedResponseError

A = TypeVar("A")
S = TypeVar("S")

GONE = "gone"  # read_back's answer for "the object no longer exists" (a 404 on the read)


class OutcomeError(ToolError):
    """A write whose outcome is not what was asked (or is unknown); `outcome` goes to the audit log."""

    def __init__(self, message: str, outcome: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.request_id = request_id  # the write's own request, not the read-back's


def nothing_was_done(exc: StripeIdentityError) -> bool:
    """True when the failure itself proves the upstream did not act on this call."""
    if exc.nothing_done:
        return True  # the client established it (e.g. the member existed before this call)
    if isinstance(exc, UnexpectedResponseError):
        return False  # it answered 2xx/3xx with something else: it may well have acted
    trace = exc.trace
    if trace is None:
        return True  # refused before any request (bad id, invalid text, local budget)
    if trace.uncertain:
        return False  # some attempt may have committed: a 404/409 now may be our own doing
    return True  # every attempt was refused (4xx/429) or never reached the server


def failure_text(exc: StripeIdentityError) -> str:
    hint = f" ({exc.hint})" if exc.hint else ""
    if isinstance(exc, ApiStatusError):
        rid = f", request_id={exc.request_id}" if exc.request_id else ""
        return f"HTTP {exc.status}{rid}: {exc.message}{hint}"
    return f"{exc.message}{hint}"


@dataclass
class Proven(Generic[A, S]):
    answer: A | None  # the write's own answer, when it had a usable one
    state: S | str | None  # what was read back (GONE for a 404), None when the answer was the proof
    lost_answer: bool = False  # an earlier attempt's answer was lost; the outcome is that attempt's
    failure: str | None = None  # the write's own failure, when the read-back proved success anyway
    notes: list[str] = field(default_factory=list)

    @property
    def audit_outcome(self) -> str:
        """"ok" for the normal path (the answer, or a 204 and its read-back); else how it was proven."""
        if self.lost_answer:
            return "ok (first answer lost; verified by " + ("reading it back)" if self.state else "the retry's answer)")
        if self.failure:
            return f"ok (answer was {self.failure[:60]}; verified by reading it back)"
        return "ok"


async def prove(
    write: Callable[[], Awaitable[A]],
    *,
    proves: Callable[[A], bool],
    read_back: Callable[[], Awaitable[S | str]],
    settled: Callable[[S | str], bool],
    describe: Callable[[S | str], str],
    action: str,
    check: str,
    trace_of: Callable[[], Any] = lambda: None,
    explain: Callable[[StripeIdentityError], str] = failure_text,
) -> Proven[A, S]:
    """Run `write`; return its proof or raise an OutcomeError saying what is true.

    proves(answer): the answer alone shows the new state.
    read_back(): the object now (GONE when it no longer exists); settled(state): the new state holds;
    describe(state): what the state is, in words ("it is still active").
    action: what was asked, for messages ("delete customer cus_1"); check: how a human can look.
    trace_of(): the client's trace of the write's call (did an earlier attempt's answer get lost?).
    explain(error): the error in the tool's usual words (status, type, request id, hint).
    """
    failure: StripeIdentityError | None = None
    answer: A | None = None
    try:
        answer = await write()
    except StripeIdentityError as exc:
        if nothing_was_done(exc):
            raise
        failure = exc
    trace = failure.trace if failure is not None else trace_of()
    lost = bool(trace is not None and trace.earlier_attempt_may_have_committed)
    if failure is None and answer is not None and proves(answer):
        # The answer is the object in its new state: proof, whatever earlier attempts did (a create's
        # replay is judged by its caller, which knows what a replay means for it).
        return Proven(answer=answer, state=None)
    why = explain(failure).rstrip(".") if failure is not None else "the answer did not show the new state"
    request_id = getattr(failure, "request_id", None)
    try:
        state = await read_back()
    except StripeIdentityError as exc:
        raise OutcomeError(
            f"the outcome of '{action}' is UNKNOWN: {why}; reading it back failed too ({explain(exc).rstrip('.')}). "
            f"Check before retrying: {check}.",
            outcome="unknown: " + (type(failure).__name__ if failure else "unproven answer"),
            request_id=request_id,
        ) from None
    if settled(state):
        note = f"{why}; reading it back shows {describe(state)}"
        if lost:
            note = "the first answer was lost; " + note
        return Proven(answer=None, state=state, lost_answer=lost, failure=type(failure).__name__ if failure is not None else None, notes=[note])
    if trace is not None and trace.lost:
        # An attempt whose answer never came may still be running upstream: what we read is a snapshot.
        raise OutcomeError(
            f"the outcome of '{action}' is UNKNOWN: {why}; reading it back shows {describe(state)}, but an attempt "
            f"whose answer was lost may still complete. Check before retrying: {check}.",
            outcome=f"unknown: answer lost; read back: {describe(state)}",
            request_id=request_id,
        )
    raise OutcomeError(
        f"'{action}' did NOT take effect: {why}; reading it back shows {describe(state)}. Check: {check}.",
        outcome=f"error: not done ({describe(state)})",
        request_id=request_id,
    )
