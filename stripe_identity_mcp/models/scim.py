"""SCIM 2.0 resources as Stripe handles them, and the team toolset's compact outputs.

Decision: hand-written pydantic models, not `scim2-models`. Stripe's SCIM handles only `id`,
`userName`, `displayName`, `active` and `meta` on users (plus `name`/`emails` it accepts on create) and
`id`, `displayName`, `members` on groups, so a few small tolerant models cover it exactly. `scim2-models` is well kept and stricter, but it would be a
new runtime dependency (and `lark` with it) against the "few dependencies" rule, its full RFC 7643
User (addresses, x509 certificates, enterprise extension, …) is dead weight for five attributes, and
its strict validation would turn a provider's harmless deviation into a failed offboarding. It stays
a test dependency: scim2-tester (built on it) checks the sandbox's conformance independently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from stripe_identity_mcp.models.outputs import Compact

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class _Scim(BaseModel):
    """Unknown attributes tolerated (providers add their own); names as SCIM spells them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ScimMeta(_Scim):
    resourceType: str | None = None
    created: str | None = None
    lastModified: str | None = None
    location: str | None = None
    version: str | None = None


class ScimName(_Scim):
    givenName: str | None = None
    familyName: str | None = None
    formatted: str | None = None


class ScimEmail(_Scim):
    value: str | None = None
    primary: bool | None = None
    type: str | None = None


class ScimGroupRef(_Scim):
    """An item of a user's read-only `groups` (RFC 7643 §4.1.2): the group's id and name."""

    value: str
    display: str | None = None


class ScimUser(_Scim):
    id: str
    userName: str
    displayName: str | None = None
    active: bool = True  # RFC 7643: absent means the provider does not say; Stripe always does
    name: ScimName | None = None
    emails: list[ScimEmail] = []
    # None: the provider did not report membership on the user (not "in no group"); see ScimClient.groups_of.
    groups: list[ScimGroupRef] | None = None
    meta: ScimMeta | None = None
    # Set by ScimClient.create_user when a retried POST met 409: the user our own lost attempt made.
    _recovered: bool = PrivateAttr(default=False)

    @property
    def email(self) -> str:
        """Stripe uses the email address as userName."""
        return self.userName

    @property
    def recovered(self) -> bool:
        return self._recovered


class ScimListResponse(_Scim):
    # Required: `{}` or another resource answered with 200 is not an (empty) list.
    schemas: list[str]
    totalResults: int
    startIndex: int = 1
    itemsPerPage: int | None = None
    Resources: list[ScimUser] = []


class ScimGroupMember(_Scim):
    value: str  # the member's SCIM user id
    display: str | None = None  # text the IdP chose: data, never instructions


class ScimGroup(_Scim):
    id: str
    displayName: str  # required: `{}` answered with 200 is not a group
    # None: the provider left `members` out (some do on lists) — unknown, not "empty".
    members: list[ScimGroupMember] | None = None
    meta: ScimMeta | None = None

    @property
    def members_known(self) -> bool:
        return self.members is not None

    def has_member(self, user_id: str) -> bool:
        """Whether the group lists this user (False when members were not reported: check members_known)."""
        return any(m.value == user_id for m in self.members or [])


class ScimGroupListResponse(_Scim):
    schemas: list[str]
    totalResults: int
    startIndex: int = 1
    itemsPerPage: int | None = None
    Resources: list[ScimGroup] = []


# --- tool outputs -------------------------------------------------------------------------------


class TeamGroupRef(Compact):
    id: str
    name: str | None = None


class TeamMember(Compact):
    """A Stripe Dashboard team member (SCIM user; not a Customer, not a Connect account)."""

    id: str
    email: str
    display_name: str | None = None
    active: bool
    created: str | None = None
    groups: list[TeamGroupRef] | None = Field(None, description="SCIM groups; absent when Stripe did not report them")


class TeamMemberPage(Compact):
    members: list[TeamMember]
    total: int = Field(description="members matching the filter")
    start_index: int
    next_start_index: int | None = Field(None, description="pass as start_index for the next page")
    warnings: list[str] = []


class TeamMemberResult(Compact):
    member: TeamMember
    note: str | None = None
    warnings: list[str] = []


class TeamMemberRemoval(Compact):
    action: Literal["deactivated", "deleted"]
    id: str
    email: str | None = None
    active: bool | None = Field(None, description="state Stripe reports after deactivation; absent when deleted")
    groups_before: list[TeamGroupRef] | None = Field(
        None, description="groups the member was in before removal (for the access review); absent if unknown"
    )
    note: str
    api_keys_warning: str
    warnings: list[str] = []


class TeamGroup(Compact):
    """A SCIM group of Dashboard team members; the Dashboard may map it to roles (not visible over SCIM)."""

    id: str
    name: str
    member_count: int | None = Field(None, description="absent when Stripe did not report the members")


class TeamGroupPage(Compact):
    groups: list[TeamGroup]
    total: int = Field(description="groups matching the filter")
    start_index: int
    next_start_index: int | None = Field(None, description="pass as start_index for the next page")
    note: str
    warnings: list[str] = []


class TeamGroupChange(Compact):
    action: Literal["added", "removed"]
    group: TeamGroup
    member_id: str
    email: str | None = None
    note: str
    api_keys_warning: str
    warnings: list[str] = []


def group_refs(refs: list[ScimGroupRef] | None) -> list[TeamGroupRef] | None:
    return None if refs is None else [TeamGroupRef(id=g.value, name=g.display) for g in refs]


def group_of(group: ScimGroup) -> TeamGroup:
    count = len(group.members) if group.members is not None else None
    return TeamGroup(id=group.id, name=group.displayName, member_count=count)


def member_of(user: ScimUser) -> TeamMember:
    created = user.meta.created if user.meta else None
    return TeamMember(
        id=user.id,
        email=user.userName,
        display_name=user.displayName,
        active=user.active,
        created=created,
        groups=group_refs(user.groups),
    )
