"""Team toolset: Stripe Dashboard team members over SCIM 2.0 (people who log in to Stripe).

Registered only when a SCIM token is configured (Settings.enabled_toolsets drops "team" otherwise,
and describe_access says why). Write tools only when writes are enabled.

Groups (SCIM /Groups): read with list_team_groups and on every member; membership changes are SCIM
PATCHes on the group, proven by reading the group back. Roles are not SCIM data: Stripe decides them
from SAML attribute statements at sign-in, or from the Dashboard's mapping of a synced group to roles
— a mapping SCIM does not show, so a group change may or may not change roles, and we never say it did.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import Field

from stripe_identity_mcp.audit import audit
from stripe_identity_mcp.card_guard import refuse_card_numbers
from stripe_identity_mcp.clients.errors import (
    ApiStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    StripeIdentityError,
    UnexpectedResponseError,
    redact,
)
from stripe_identity_mcp.clients.scim import CLOCK_SKEW_S, ScimClient, created_before, filter_value
from stripe_identity_mcp.confirmation import Confirmation, Refusal, can_elicit, require_confirmed
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.models.scim import (
    ScimGroup,
    ScimUser,
    TeamGroupChange,
    TeamGroupPage,
    TeamMemberPage,
    TeamMemberRemoval,
    TeamMemberResult,
    group_of,
    group_refs,
    member_of,
)
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import DESTRUCTIVE, READ, WRITE, WRITE_IDEMPOTENT, deps, tool_error
from stripe_identity_mcp.toolsets.proof import GONE, Proven, prove
from stripe_identity_mcp.untrusted import clean, has_lookalikes, quoted, same_email

API_KEYS_WARNING = (
    "Removing a team member does NOT revoke API keys: they belong to the account and stay valid until "
    "rotated under Developers → API keys. If this member could see or create secret or restricted keys, "
    "roll (rotate) those keys now."
)
ROLES_TRUTH = (
    "Stripe decides Dashboard roles from SAML attribute statements at sign-in, or from the Dashboard's "
    "mapping of a SCIM-synced group to roles (Settings → Team and security → Groups); that mapping is not "
    "visible over SCIM."
)
ROLE_REFUSAL = (
    "roles cannot be set as a SCIM attribute. " + ROLES_TRUTH + " Provision without a role, then assign it "
    "in your identity provider (IdP) or add the member to a group mapped to roles; a new member has no "
    "permissions until their first SSO sign-in. Nothing was provisioned."
)
NEW_MEMBER_NOTE = (
    "no permissions until first SSO sign-in; roles come from SAML attribute statements or a Dashboard "
    "group-to-role mapping (not visible over SCIM)"
)
GROUP_API_KEYS_WARNING = (
    "Group changes do NOT touch API keys: they belong to the account and stay valid until rotated under "
    "Developers → API keys. If this change takes access away and the member could see or create secret or "
    "restricted keys, roll (rotate) those keys."
)
GROUP_NOTES = {
    "added": "The member is in the group {verified}. Roles change only if the Dashboard maps this group to roles "
    "(Settings → Team and security → Groups; not visible over SCIM).",
    "removed": "The member is no longer in the group {verified}. Roles the Dashboard maps to this group no "
    "longer come from it (other groups or SAML may still grant them); the mapping is not visible over SCIM. "
    "If the IdP still assigns the group, its next sync adds the member back.",
}
RENAME_RULE = "group names cannot be updated: re-provision the group under the new name in your IdP"
GROUPS_NOTE = f"{ROLES_TRUTH} Stripe's rule: {RENAME_RULE}."
GONE_NOTE = "The member no longer exists: Dashboard access is revoked."
INACTIVE_NOTE = "The member is inactive: Dashboard access is revoked."
REMOVAL_FACTS = {
    "deactivated": "Stripe deletes the user on deactivation too; provisioning the email again creates a new member.",
    "deleted": "Provisioning the email again creates a new member.",
}
VERIFIED_NOTE = "(verified: the member was read back after the change)"
GROUP_VERIFIED = "(verified: the group was read back after the change)"
SCAN_PAGES = 20  # active-filter scans read at most 2 000 members

EMAIL_PATTERN = r"^\S+@\S+$"
MemberId = Annotated[str | None, Field(max_length=255)]  # SCIM id; empty ids are refused by path_segment
MemberEmail = Annotated[str | None, Field(max_length=512, pattern=EMAIL_PATTERN)]
Name = str | None
Confirm = Annotated[str | None, Field(max_length=512, description="member's email or id")]
GroupId = Annotated[str | None, Field(max_length=255)]
GroupName = Annotated[str | None, Field(max_length=255, description="exact group name")]


# --- errors ---------------------------------------------------------------------------------------
def scim_error(exc: StripeIdentityError, app: AppDeps, member: str | None = None, group: str | None = None) -> ToolError:
    """SCIM failures in the words a user needs; fields (status, scimType, request id) kept.

    group: the group a call was about (its 404 names the group, its mutability error is Stripe's rename rule).
    """
    lead: str | None = None
    if isinstance(exc, AuthenticationError):
        lead = (
            "SCIM token rejected by Stripe (HTTP 401): check STRIPE_SCIM_TOKEN is current "
            "(SCIM tokens are revoked when regenerated in the Dashboard's SSO settings)"
        )
    elif isinstance(exc, NotFoundError):
        if group is not None:
            lead = f"no team group with id {group}"
        else:
            lead = f"no team member with id {member}" if member else "no such team member"
    elif isinstance(exc, ConflictError):
        lead = "a member with that email already exists (userName is unique)"
    elif isinstance(exc, BadRequestError) and exc.code == "mutability":
        lead = RENAME_RULE if group is not None else "email updates are not supported; deprovision and re-provision the member"
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


def exactly_one(**given: str | None) -> None:
    """`exactly_one(member_id=…, email=…)`: one of the two ways to name a thing, not both, not neither."""
    if sum(value is not None for value in given.values()) != 1:
        raise ToolError(f"give exactly one of {' or '.join(given)}.")


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


async def find_group(scim: ScimClient, group_id: str | None, group_name: str | None) -> ScimGroup:
    """The group by id (404 → error) or by exact name (case-insensitive; none → ToolError)."""
    if group_id is not None:
        return await scim.get_group(group_id)
    assert group_name is not None
    group = await scim.find_group_by_name(group_name)
    if group is None:
        raise ToolError(f"no team group named {clean(group_name, 120)!r} (status=404); list_team_groups shows the names.")
    return group


async def _read_group(app: AppDeps, group_id: str | None, group_name: str | None) -> ScimGroup:
    try:
        return await find_group(_scim(app), group_id, group_name)
    except StripeIdentityError as exc:
        raise scim_error(exc, app, group=group_id or "") from None


async def with_groups(app: AppDeps, user: ScimUser) -> tuple[ScimUser, list[str]]:
    """The user with its groups filled in (looked up when the user did not report them), and warnings."""
    if user.groups is not None:
        return user, []
    try:
        refs, complete = await _scim(app).groups_of(user)
    except StripeIdentityError as exc:
        return user, [f"groups could not be read ({scim_error(exc, app)}); membership unknown"]
    user = user.model_copy(update={"groups": refs})
    return user, [] if complete else ["groups may be incomplete: not every group was read with its members"]


def _unreported_groups(users: list[ScimUser]) -> list[str]:
    if any(u.groups is None for u in users):
        return ["Stripe did not report groups on some members (no `groups` shown); get_team_member looks them up"]
    return []


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

    started = time.time()

    async def read_back() -> ScimUser | str:
        found = await scim.find_by_email(email)
        return GONE if found is None else found

    def made_by_us(state: ScimUser | str) -> bool:  # a member that existed before this call is not our create
        return isinstance(state, ScimUser) and not created_before(state, started - CLOCK_SKEW_S)

    def describe(state: ScimUser | str) -> str:
        if state == GONE:
            return "no member with that email exists"
        return "a member with that email exists" if made_by_us(state) else "a member with that email existed before this call"

    return await prove(
        lambda: scim.create_user(email, given_name, family_name, display_name),
        proves=lambda user: user.userName.lower() == email.lower(),
        read_back=read_back,
        settled=made_by_us,
        describe=describe,
        action=f"provision team member {email}",
        check=f"list_team_members(email='{email}')",
        trace_of=lambda: scim.last_trace,
        explain=lambda exc: str(scim_error(exc, app)),
    )


async def prove_membership(
    app: AppDeps, scim: ScimClient, group: ScimGroup, user: ScimUser, action: Literal["added", "removed"]
) -> Proven[ScimGroup | None, ScimGroup]:
    """PATCH the group's members, then prove it: a 200 whose group shows the change, else the group read back.

    A 204, `{}`, a redirect or a lost answer proves nothing; the group as read back decides.
    """
    want = action == "added"

    async def write() -> ScimGroup | None:
        if want:
            return await scim.add_group_member(group.id, user.id)
        return await scim.remove_group_member(group.id, user.id)

    async def read_back() -> ScimGroup | str:
        try:
            state = await scim.get_group(group.id)
        except NotFoundError:
            return GONE
        if not state.members_known:  # neither "in" nor "not in" can be read from it: the outcome is unknown
            raise UnexpectedResponseError(f"Stripe SCIM answered group {group.id} without its members")
        return state

    def settled(state: ScimGroup | str) -> bool:
        return isinstance(state, ScimGroup) and state.has_member(user.id) == want

    def describe(state: ScimGroup | str) -> str:
        if not isinstance(state, ScimGroup):
            return "the group no longer exists (404)"
        return "the member is in the group" if state.has_member(user.id) else "the member is NOT in the group"

    verb = "add" if want else "remove"
    return await prove(
        write,
        proves=lambda answer: isinstance(answer, ScimGroup)
        and answer.id == group.id
        and answer.members_known
        and answer.has_member(user.id) == want,
        read_back=read_back,
        settled=settled,
        describe=describe,
        action=f"{verb} team member {user.userName} ({user.id}) {'to' if want else 'from'} group {group.id}",
        check=f"get_team_member(member_id='{user.id}') or the Dashboard (Settings → Team and security → Groups)",
        trace_of=lambda: scim.last_trace,
        explain=lambda exc: str(scim_error(exc, app, user.id, group=group.id)),
    )


# --- confirmation gate ------------------------------------------------------------------------------
def confirm_mismatch(confirm: str, user: ScimUser, given: str, nothing: str) -> Refusal | None:
    """The refusal when `confirm` is neither the member's id nor (ASCII case aside) their email."""
    if confirm == user.id or same_email(confirm, user.userName):
        return None
    lookalike = " (it holds non-ASCII look-alike characters)" if has_lookalikes(confirm) else ""
    return Refusal(
        f"confirm does not match{lookalike}: it must be exactly '{user.userName}' or '{user.id}'; "
        f"call again with confirm='{given}'. {nothing}"
    )


async def confirm_group_removal(
    *,
    group_id: str | None,
    group_name: str | None,
    member_id: str | None,
    email: str | None,
    confirm: str | None,
    ctx: Context,
) -> Confirmation | Refusal | Elicit[Confirmation]:
    """Resolver: confirm must equal the member's email or id; the human is asked when the client can."""
    nothing = "Nothing was removed."
    if (member_id is None) == (email is None) or (group_id is None) == (group_name is None):
        return Refusal(f"give exactly one of member_id or email and one of group_id or group_name. {nothing}")
    given = member_id or email or ""
    if not confirm:
        return Refusal(f"removal from a group needs confirmation: call again with confirm='{given}'. {nothing}")
    app = deps(ctx)
    try:
        user = await _read(app, member_id, email)
        group = await _read_group(app, group_id, group_name)
    except ToolError as exc:
        return Refusal(f"{exc} {nothing}")
    mismatch = confirm_mismatch(confirm, user, given, nothing)
    if mismatch is not None:
        return mismatch
    if app.settings.confirm != "elicit" or not can_elicit(ctx):
        return Confirmation(confirm=True)
    # Trusted facts first (ids, email, mode, membership, consequences); names an IdP sets, last and quoted.
    where = "membership not shown" if not group.members_known else "in the group" if group.has_member(user.id) else "not in the group now"
    names = [q for q in (quoted("Group name", group.displayName), quoted("Display name", user.displayName)) if q]
    question = (
        f"Remove Dashboard team member id {user.id}, email {clean(user.userName, 254)} ({where}), from SCIM group "
        f"id {group.id}, in {app.mode_label} mode? If the Dashboard maps this group to roles, the member loses "
        f"the roles that come from it (the mapping is not visible over SCIM). {GROUP_API_KEYS_WARNING}"
        + "".join(f" {n}." for n in names)
    )
    return Elicit(question, Confirmation)


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
        mismatch = confirm_mismatch(confirm, user, given, f"Nothing was {action}.")
        if mismatch is not None:
            return mismatch
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
@tool(READ)
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
                warnings=_unreported_groups(users),
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
        warnings=([f"only the first {index - 1} members were scanned for the active filter"] if truncated else [])
        + _unreported_groups(chunk),
    )


@tool(READ)
async def get_team_member(ctx: Context, member_id: MemberId = None, email: MemberEmail = None) -> TeamMemberResult:
    """Get one Dashboard team member (with groups) by member_id or email."""
    exactly_one(member_id=member_id, email=email)
    app = deps(ctx)
    user, warnings = await with_groups(app, await _read(app, member_id, email))
    return TeamMemberResult(member=member_of(user), note=ROLES_TRUTH, warnings=_inactive_warning(user) + warnings)


@tool(READ)
async def list_team_groups(
    ctx: Context,
    name: GroupName = None,
    start_index: Annotated[int, Field(ge=1)] = 1,
    count: Annotated[int, Field(ge=1, le=100)] = 50,
) -> TeamGroupPage:
    """List SCIM groups of Dashboard team members (name, member count, id)."""
    app = deps(ctx)
    flt = f"displayName eq {filter_value(name)}" if name else None
    try:
        page = await _scim(app).list_groups(filter=flt, start_index=start_index, count=count)
    except StripeIdentityError as exc:
        raise scim_error(exc, app) from None
    groups = page.Resources[:count]
    first = page.startIndex or start_index
    following = first + len(groups)
    return TeamGroupPage(
        groups=[group_of(g) for g in groups],
        total=page.totalResults,
        start_index=first,
        next_start_index=following if groups and following <= page.totalResults else None,
        note=GROUPS_NOTE,
        warnings=["Stripe did not report the members of some groups (no member_count)"]
        if any(not g.members_known for g in groups)
        else [],
    )



@tool(WRITE)
async def provision_team_member(
    email: Annotated[str, Field(max_length=512, pattern=EMAIL_PATTERN)],
    ctx: Context,
    given_name: Name = None,
    family_name: Name = None,
    display_name: Name = None,
    role: Annotated[str | None, Field(max_length=255, description="refused: not a SCIM attribute")] = None,
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
        # Read before removing: afterwards the member is gone from every group (useful for the access review).
        user, group_warnings = await with_groups(app, user)
        proof = await prove_removed(app, scim, user, action)
        entry.outcome = proof.audit_outcome
    state = proof.state
    active = state.active if isinstance(state, ScimUser) else None
    if isinstance(proof.answer, ScimUser) and state is None:
        active = proof.answer.active
    gone = state == GONE
    verified = VERIFIED_NOTE if state is not None else "(verified: Stripe's answer shows the member inactive)"
    note = f"{GONE_NOTE if gone else INACTIVE_NOTE} {REMOVAL_FACTS[action]} {verified}"
    if user.groups:
        note += (
            " groups_before lists the groups they were in: review those groups' role mappings in the Dashboard "
            "and remove the person from them in the IdP too."
        )
    return TeamMemberRemoval(
        action=action,
        id=user.id,
        email=user.userName,
        active=None if gone else active,
        groups_before=group_refs(user.groups),
        note=note,
        api_keys_warning=API_KEYS_WARNING,
        warnings=group_warnings + proof.notes,
    )


@tool(DESTRUCTIVE)
async def deactivate_team_member(
    gate: Annotated[ElicitationResult[Confirmation], Resolve(DEACTIVATE_GATE)],
    ctx: Context,
    member_id: MemberId = None,
    email: MemberEmail = None,
    confirm: Confirm = None,
) -> TeamMemberRemoval:
    """Deactivate a Dashboard team member (member_id or email); API keys stay valid."""
    return await remove(ctx, gate, "deactivated", member_id, email, confirm)


@tool(DESTRUCTIVE)
async def delete_team_member(
    gate: Annotated[ElicitationResult[Confirmation], Resolve(DELETE_GATE)],
    ctx: Context,
    member_id: MemberId = None,
    email: MemberEmail = None,
    confirm: Confirm = None,
) -> TeamMemberRemoval:
    """Delete a Dashboard team member (member_id or email); API keys stay valid."""
    return await remove(ctx, gate, "deleted", member_id, email, confirm)


async def change_group(
    ctx: Context,
    action: Literal["added", "removed"],
    group_id: str | None,
    group_name: str | None,
    member_id: str | None,
    email: str | None,
    confirm: str | None = None,
    gate: Any = None,
) -> TeamGroupChange:
    app = deps(ctx)
    scim = _scim(app)
    tool = "add_team_member_to_group" if action == "added" else "remove_team_member_from_group"
    args = {"group_id": group_id, "group_name": group_name, "member_id": member_id, "email": email}
    if gate is not None:
        args["confirm"] = confirm
    async with audit(ctx, tool, group_id or group_name, args) as entry:
        entry.client = scim
        entry.on_error = lambda exc: scim_error(exc, app, member_id)
        if gate is not None:
            require_confirmed(gate, action="removed")
        exactly_one(member_id=member_id, email=email)
        exactly_one(group_id=group_id, group_name=group_name)
        user = await find_member(scim, member_id, email)
        entry.on_error = lambda exc: scim_error(exc, app, user.id, group=group_id or "")
        group = await find_group(scim, group_id, group_name)
        entry.target = f"{group.id}/{user.id}"
        entry.on_error = lambda exc: scim_error(exc, app, user.id, group=group.id)
        was_member = group.has_member(user.id)
        proof = await prove_membership(app, scim, group, user, action)
        entry.outcome = proof.audit_outcome
    after = proof.answer if isinstance(proof.answer, ScimGroup) else proof.state
    assert isinstance(after, ScimGroup)
    warnings = list(proof.notes)
    if group.members_known and was_member == (action == "added"):  # already as asked when we read it
        warnings.append(f"the member was {'already' if was_member else 'not'} in the group before this call")
    return TeamGroupChange(
        action=action,
        group=group_of(after),
        member_id=user.id,
        email=user.userName,
        note=GROUP_NOTES[action].format(verified=GROUP_VERIFIED),
        api_keys_warning=GROUP_API_KEYS_WARNING,
        warnings=warnings,
    )


@tool(WRITE_IDEMPOTENT)
async def add_team_member_to_group(
    ctx: Context,
    group_id: GroupId = None,
    group_name: GroupName = None,
    member_id: MemberId = None,
    email: MemberEmail = None,
) -> TeamGroupChange:
    """Add a Dashboard team member to a SCIM group (may grant roles mapped to it)."""
    return await change_group(ctx, "added", group_id, group_name, member_id, email)


@tool(DESTRUCTIVE)
async def remove_team_member_from_group(
    gate: Annotated[ElicitationResult[Confirmation], Resolve(confirm_group_removal)],
    ctx: Context,
    group_id: GroupId = None,
    group_name: GroupName = None,
    member_id: MemberId = None,
    email: MemberEmail = None,
    confirm: Confirm = None,
) -> TeamGroupChange:
    """Remove a Dashboard team member from a SCIM group (may take roles away); API keys stay valid."""
    return await change_group(ctx, "removed", group_id, group_name, member_id, email, confirm, gate)


TOOLSET = Toolset(
    name="team",
    description="Stripe Dashboard team members and groups over SCIM (people who log in to Stripe).",
    read=(list_team_members, get_team_member, list_team_groups),
    write=(
        provision_team_member,
        deactivate_team_member,
        delete_team_member,
        add_team_member_to_group,
        remove_team_member_from_group,
    ),
)
