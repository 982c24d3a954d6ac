"""Team toolset: Stripe Dashboard team members over SCIM 2.0 (people who log in to Stripe).

Registered only when a SCIM token is configured (Settings.enabled_toolsets drops "team" otherwise,
and describe_access says why). Write tools only when writes are enabled.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import Field

from stripe_identity_mcp.clients.errors import (
    ApiStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    StripeIdentityError,
    redact,
)
from stripe_identity_mcp.clients.scim import ScimClient, filter_value
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.models.scim import (
    ScimUser,
    TeamMemberPage,
    TeamMemberRemoval,
    TeamMemberResult,
    member_of,
)
from stripe_identity_mcp.safety import (
    Confirmation,
    Refusal,
    audit,
    can_elicit,
    refuse_card_numbers,
    require_confirmed,
)
from stripe_identity_mcp.settings import Settings
from stripe_identity_mcp.toolsets.common import DESTRUCTIVE, READ, WRITE, deps, tool_error
from stripe_identity_mcp.toolsets.proof import GONE, Proven, prove
from stripe_identity_mcp.untrusted import clean, has_lookalikes, quoted, same_email

TOOLSET = "team"

API_KEYS_WARNING = (
    "Removing a team member does NOT revoke API keys: they belong to the account and stay valid until "
    "rotated under Developers → API keys. If this member could see or create secret or restricted keys, "
    "roll (rotate) those keys now."
)
ROLE_REFUSAL = (
    "roles cannot be set over SCIM: Stripe assigns Dashboard roles through SAML attribute statements in "
    "your identity provider (IdP), never SCIM. Provision without a role, then assign it in the IdP; a new "
    "member has no permissions until their first SSO sign-in. Nothing was provisioned."
)
NEW_MEMBER_NOTE = "no permissions until first SSO sign-in; roles come from your IdP's SAML attribute statements"
GONE_NOTE = "The member no longer exists: Dashboard access is revoked."
INACTIVE_NOTE = "The member is inactive: Dashboard access is revoked."
REMOVAL_FACTS = {
    "deactivated": "Stripe deletes the user on deactivation too; provisioning the email again creates a new member.",
    "deleted": "Provisioning the email again creates a new member.",
}
VERIFIED_NOTE = "(verified: the member was read back after the change)"
SCAN_PAGES = 20  # active-filter scans read at most 2 000 members

EMAIL_PATTERN = r"^\S+@\S+$"
MemberId = Annotated[str | None, Field(max_length=255)]  # SCIM id; empty ids are refused by path_segment
MemberEmail = Annotated[str | None, Field(max_length=512, pattern=EMAIL_PATTERN)]
Name = str | None
Confirm = Annotated[str | None, Field(max_length=512, description="member's email or id")]


# --- errors ---------------------------------------------------------------------------------------
def scim_error(exc: StripeIdentityError, app: AppDeps, member: str | None = None) -> ToolError:
    """SCIM failures in the words a user needs; fields (status, scimType, request id) kept."""
    lead: str | None = None
    if isinstance(exc, AuthenticationError):
        lead = (
            "SCIM token rejected by Stripe (HTTP 401): check STRIPE_SCIM_TOKEN is current "
            "(SCIM tokens are revoked when regenerated in the Dashboard's SSO settings)"
        )
    elif isinstance(exc, NotFoundError):
        lead = f"no team member with id {member}" if member else "no such team member"
    elif isinstance(exc, ConflictError):
        lead = "a member with that email already exists (userName is unique)"
    elif isinstance(exc, BadRequestError) and exc.code == "mutability":
        lead = "email updates are not supported; deprovision and re-provision the member"
    if lead is None:
        return tool_error(exc, app)
    fields = ""
    if isinstance(exc, ApiStatusError):
        parts = {"status": exc.status, "scimType": exc.code, "request_id": exc.request_id}
        fields = " (" + ", ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, "")) + ")"
    detail = redact(exc.message, app.settings.secrets())
    return ToolError(f"{lead}{fields}. Stripe said: {detail}")


def _scim(app: AppDeps) -> ScimClient:
    if app.scim is None:  # registration guarantees a token; this is a defensive message, not a path
        raise ToolError("team toolset needs STRIPE_SCIM_TOKEN")
    return app.scim


def _one(member_id: str | None, email: str | None) -> None:
    if (member_id is None) == (email is None):
        raise ToolError("give exactly one of member_id or email.")


async def find_member(scim: ScimClient, member_id: str | None, email: str | None) -> ScimUser:
    """The member by id (404 → error) or by email (none → ToolError)."""
    if member_id is not None:
        return await scim.get_user(member_id)
    assert email is not None
    user = await scim.find_by_email(email)
    if user is None:
        raise ToolError(f"no team member with email {email} (status=404).")
    return user


async def _read(app: AppDeps, member_id: str | None, email: str | None) -> ScimUser:
    try:
        return await find_member(_scim(app), member_id, email)
    except StripeIdentityError as exc:
        raise scim_error(exc, app, member_id) from None


def _inactive_warning(user: ScimUser) -> list[str]:
    if user.active:
        return []
    return ["deactivated member — API keys they created or saw remain valid until rotated (Developers → API keys)"]


# --- proof of removal --------------------------------------------------------------------------------
async def prove_removed(
    app: AppDeps, scim: ScimClient, user: ScimUser, action: Literal["deactivated", "deleted"]
) -> Proven[Any, ScimUser]:
    """Deactivate or delete, then prove it: the answer when it shows the new state, else a read-back.

    Stripe answers a deactivation with 204 and deletes the member (or, elsewhere, 200 with the user
    inactive) and a deletion with 204; neither a 204 nor `200 {}` proves anything, so the member is
    read back. Access is revoked when the member is gone or inactive — nothing less counts.
    """

    async def write() -> Any:
        if action == "deactivated":
            return await scim.deactivate_user(user.id)
        return await scim.delete_user(user.id)

    async def read_back() -> ScimUser | str:
        try:
            return await scim.get_user(user.id)
        except NotFoundError:
            return GONE

    def settled(state: ScimUser | str) -> bool:
        if state == GONE:
            return True
        return action == "deactivated" and isinstance(state, ScimUser) and not state.active

    def describe(state: ScimUser | str) -> str:
        if state == GONE:
            return "the member no longer exists (404)"
        assert isinstance(state, ScimUser)
        return "the member is inactive" if not state.active else "the member is still ACTIVE: Dashboard access is NOT revoked"

    return await prove(
        write,
        proves=lambda answer: isinstance(answer, ScimUser) and answer.id == user.id and not answer.active,
        read_back=read_back,
        settled=settled,
        describe=describe,
        action=f"{'deactivate' if action == 'deactivated' else 'delete'} team member {user.userName} ({user.id})",
        check=f"get_team_member(member_id='{user.id}') or the Dashboard (Settings → Team and security)",
        trace_of=lambda: scim.last_trace,
        explain=lambda exc: str(scim_error(exc, app, user.id)),
    )


async def prove_provisioned(
    app: AppDeps,
    scim: ScimClient, email: str, given_name: str | None, family_name: str | None, display_name: str | None
) -> Proven[ScimUser, ScimUser]:
    """Create the member; when the answer proves nothing (redirect, wrong shape, lost), look the email up."""

    async def read_back() -> ScimUser | str:
        found = await scim.find_by_email(email)
        return GONE if found is None else found

    return await prove(
        lambda: scim.create_user(email, given_name, family_name, display_name),
        proves=lambda user: user.userName.lower() == email.lower(),
        read_back=read_back,
        settled=lambda state: isinstance(state, ScimUser),
        describe=lambda state: "no member with that email exists" if state == GONE else "a member with that email exists",
        action=f"provision team member {email}",
        check=f"list_team_members(email='{email}')",
        trace_of=lambda: scim.last_trace,
        explain=lambda exc: str(scim_error(exc, app)),
    )


# --- confirmation gate ------------------------------------------------------------------------------
def _member_gate(action: str, verb: str) -> Any:
    """Resolver: confirm must equal the member's email or id; the human is asked when the client can."""

    async def gate(
        *, member_id: str | None, email: str | None, confirm: str | None, ctx: Context
    ) -> Confirmation | Refusal | Elicit[Confirmation]:
        if (member_id is None) == (email is None):
            return Refusal(f"give exactly one of member_id or email. Nothing was {action}.")
        given = member_id or email or ""
        if not confirm:
            return Refusal(f"{verb} needs confirmation: call again with confirm='{given}'. Nothing was {action}.")
        app = deps(ctx)
        try:
            user = await _read(app, member_id, email)
        except ToolError as exc:
            return Refusal(f"{exc} Nothing was {action}.")
        if confirm != user.id and not same_email(confirm, user.userName):
            lookalike = " (it holds non-ASCII look-alike characters)" if has_lookalikes(confirm) else ""
            return Refusal(
                f"confirm does not match{lookalike}: it must be exactly '{user.userName}' or '{user.id}'; "
                f"call again with confirm='{given}'. Nothing was {action}."
            )
        if app.settings.confirm != "elicit" or not can_elicit(ctx):
            return Confirmation(confirm=True)
        # Trusted facts first (id, email, mode, state, consequences); the display name — text anyone with
        # IdP access can set — last, cleaned and quoted.
        state = "active" if user.active else "already inactive"
        name = quoted("Display name", user.displayName)
        question = (
            f"{verb.capitalize()} Dashboard team member id {user.id}, email {clean(user.userName, 254)} "
            f"({state}), in {app.mode_label} mode? Dashboard access is revoked immediately; Stripe deletes the "
            f"user on deactivation too. {API_KEYS_WARNING}" + (f" {name}." if name else "")
        )
        return Elicit(question, Confirmation)

    gate.__qualname__ = gate.__name__ = f"confirm_{verb}_team_member"
    return gate


DEACTIVATE_GATE = _member_gate("deactivated", "deactivate")
DELETE_GATE = _member_gate("deleted", "delete")


# --- tools -----------------------------------------------------------------------------------------
def register(server: MCPServer, settings: Settings) -> None:
    @server.tool(annotations=READ)
    async def list_team_members(
        ctx: Context,
        email: MemberEmail = None,
        active: bool | None = None,
        start_index: Annotated[int, Field(ge=1)] = 1,
        count: Annotated[int, Field(ge=1, le=100)] = 50,
    ) -> TeamMemberPage:
        """List Stripe Dashboard team members (SCIM users, not customers)."""
        app = deps(ctx)
        scim = _scim(app)
        flt = f"userName eq {filter_value(email)}" if email else None
        try:
            if active is None:
                page = await scim.list_users(filter=flt, start_index=start_index, count=count)
                users, total = page.Resources[:count], page.totalResults
                first = page.startIndex or start_index
                following = first + len(users)
                return TeamMemberPage(
                    members=[member_of(u) for u in users],
                    total=total,
                    start_index=first,
                    next_start_index=following if users and following <= total else None,
                )
            # SCIM at Stripe filters on userName only: filter `active` here, paging over the filtered list.
            matched, truncated, index = [], True, 1
            for _ in range(SCAN_PAGES):
                page = await scim.list_users(filter=flt, start_index=index, count=100)
                matched += [u for u in page.Resources if u.active == active]
                index += len(page.Resources)
                if not page.Resources or index > page.totalResults:
                    truncated = False
                    break
        except StripeIdentityError as exc:
            raise scim_error(exc, app) from None
        chunk = matched[start_index - 1 : start_index - 1 + count]
        following = start_index + len(chunk)
        return TeamMemberPage(
            members=[member_of(u) for u in chunk],
            total=len(matched),
            start_index=start_index,
            next_start_index=following if chunk and following <= len(matched) else None,
            warnings=[f"only the first {index - 1} members were scanned for the active filter"] if truncated else [],
        )

    @server.tool(annotations=READ)
    async def get_team_member(ctx: Context, member_id: MemberId = None, email: MemberEmail = None) -> TeamMemberResult:
        """Get one Dashboard team member by member_id or email."""
        _one(member_id, email)
        user = await _read(deps(ctx), member_id, email)
        return TeamMemberResult(member=member_of(user), warnings=_inactive_warning(user))

    if settings.writes_enabled:
        register_writes(server)


def register_writes(server: MCPServer) -> None:
    @server.tool(annotations=WRITE)
    async def provision_team_member(
        email: Annotated[str, Field(max_length=512, pattern=EMAIL_PATTERN)],
        ctx: Context,
        given_name: Name = None,
        family_name: Name = None,
        display_name: Name = None,
        role: Annotated[str | None, Field(max_length=255, description="refused: SAML sets roles")] = None,
    ) -> TeamMemberResult:
        """Provision a Dashboard team member (SCIM user)."""
        app = deps(ctx)
        scim = _scim(app)
        args = {"email": email, "given_name": given_name, "family_name": family_name,
                "display_name": display_name, "role": role}  # fmt: skip
        async with audit(ctx, "provision_team_member", email, args) as entry:
            entry.client = scim
            entry.on_error = lambda exc: scim_error(exc, app)
            if role is not None:
                raise ToolError(ROLE_REFUSAL)
            refuse_card_numbers(email=email, given_name=given_name, family_name=family_name, display_name=display_name)
            proof = await prove_provisioned(app, scim, email, given_name, family_name, display_name)
            user = proof.answer if isinstance(proof.answer, ScimUser) else proof.state
            assert isinstance(user, ScimUser)
            entry.target = user.id
            entry.outcome = "ok (recovered: our first attempt made it; its answer was lost)" if user.recovered else proof.audit_outcome
        warnings = list(proof.notes)
        if user.recovered:
            warnings.append(
                "the first attempt's answer was lost (it may have committed) and the retry found this email "
                "provisioned: almost certainly that first attempt made it — check this is the member you meant"
            )
        return TeamMemberResult(member=member_of(user), note=NEW_MEMBER_NOTE, warnings=warnings)

    async def remove(
        ctx: Context,
        gate: Any,
        action: Literal["deactivated", "deleted"],
        member_id: str | None,
        email: str | None,
        confirm: str | None,
    ) -> TeamMemberRemoval:
        app = deps(ctx)
        scim = _scim(app)
        tool = "deactivate_team_member" if action == "deactivated" else "delete_team_member"
        async with audit(ctx, tool, member_id or email, {"member_id": member_id, "email": email, "confirm": confirm}) as entry:
            entry.client = scim
            entry.on_error = lambda exc: scim_error(exc, app, member_id)
            require_confirmed(gate, action=action)
            user = await find_member(scim, member_id, email)
            entry.target = user.id
            entry.on_error = lambda exc: scim_error(exc, app, user.id)
            proof = await prove_removed(app, scim, user, action)
            entry.outcome = proof.audit_outcome
        state = proof.state
        active = state.active if isinstance(state, ScimUser) else None
        if isinstance(proof.answer, ScimUser) and state is None:
            active = proof.answer.active
        gone = state == GONE
        note = f"{GONE_NOTE if gone else INACTIVE_NOTE} {REMOVAL_FACTS[action]} {VERIFIED_NOTE}"
        return TeamMemberRemoval(
            action=action,
            id=user.id,
            email=user.userName,
            active=None if gone else active,
            note=note,
            api_keys_warning=API_KEYS_WARNING,
            warnings=proof.notes,
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def deactivate_team_member(
        gate: Annotated[ElicitationResult[Confirmation], Resolve(DEACTIVATE_GATE)],
        ctx: Context,
        member_id: MemberId = None,
        email: MemberEmail = None,
        confirm: Confirm = None,
    ) -> TeamMemberRemoval:
        """Deactivate a Dashboard team member (member_id or email); API keys stay valid."""
        return await remove(ctx, gate, "deactivated", member_id, email, confirm)

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_team_member(
        gate: Annotated[ElicitationResult[Confirmation], Resolve(DELETE_GATE)],
        ctx: Context,
        member_id: MemberId = None,
        email: MemberEmail = None,
        confirm: Confirm = None,
    ) -> TeamMemberRemoval:
        """Delete a Dashboard team member (member_id or email); API keys stay valid."""
        return await remove(ctx, gate, "deleted", member_id, email, confirm)
