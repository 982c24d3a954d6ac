"""Outputs that span Stripe's three user concepts; every record says which concept it is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer

from stripe_identity_mcp.models.outputs import Compact, CustomerSummary
from stripe_identity_mcp.models.stripe import Account


class ConnectAccountSummary(Compact):
    """A Connect account (a business on the platform; not a customer, not a team member)."""

    concept: Literal["connect_account"] = "connect_account"
    id: str
    type: str | None = None
    email: str | None = None
    business_name: str | None = None
    country: str | None = None
    created: str | None = None
    charges_enabled: bool | None = None
    payouts_enabled: bool | None = None
    currently_due: list[str] | None = None
    past_due: list[str] | None = None
    disabled_reason: str | None = None


class AccountPage(Compact):
    mode: str
    accounts: list[ConnectAccountSummary]
    has_more: bool
    next_cursor: str | None = Field(None, description="pass as starting_after (or ending_before) for the next page")


class IdentityCustomer(CustomerSummary):
    concept: Literal["customer"] = "customer"
    match: Literal["exact", "case_variant"] = "exact"

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        # concept first; defaults that say nothing (deleted=false, metadata={}) left out
        out = {k: v for k, v in handler(self).items() if v is not None and v != {}}
        if out.get("deleted") is False:
            out.pop("deleted")
        return {"concept": out.pop("concept"), **out}


class TeamMemberRecord(Compact):
    """A Dashboard team member (SCIM user: a person who logs in to Stripe)."""

    concept: Literal["team_member"] = "team_member"
    id: str
    email: str | None = None
    name: str | None = None
    active: bool | None = None
    groups: list[str] | None = Field(None, description="names of their SCIM groups; absent when not reported")


TeamStatus = Literal["active", "inactive", "absent", "not configured", "error"]


class IdentityReport(Compact):
    """One email across customers, team members and Connect accounts."""

    email: str
    mode: str
    customers: list[IdentityCustomer] = []
    team_member: TeamMemberRecord | None = None
    team_status: TeamStatus
    connect_accounts: list[ConnectAccountSummary] = []
    notes: dict[str, str] = Field({}, description="per concept: what was searched, what could not be")
    warnings: list[str] = []


def summarize_account(account: Account) -> ConnectAccountSummary:
    from stripe_identity_mcp.timefmt import iso

    req = account.requirements
    profile = account.business_profile
    settings_name = None
    extra = account.model_extra or {}
    company = extra.get("company")
    if isinstance(company, dict):
        settings_name = company.get("name")
    return ConnectAccountSummary(
        id=account.id,
        type=account.type,
        email=account.email,
        business_name=(profile.name if profile else None) or settings_name,
        country=account.country,
        created=iso(account.created),
        charges_enabled=account.charges_enabled,
        payouts_enabled=account.payouts_enabled,
        currently_due=(req.currently_due or None) if req else None,
        past_due=(req.past_due or None) if req else None,
        disabled_reason=req.disabled_reason if req else None,
    )
