"""SCIM Users: Stripe Dashboard team members (``userName`` is the email, unique and immutable).

Only ``id``, ``userName``, ``displayName``, ``active`` and ``meta`` drive behaviour; ``name``,
``emails`` and ``externalId`` are stored and echoed; ``roles`` are refused; ``groups`` is computed
from the groups. Deactivation deletes (unless ``keep_inactive``), as Stripe's guide says.
"""

from __future__ import annotations

import copy
from typing import Any

from .filters import user_filter_attr
from .groups import Groups
from .patch import apply_user_op
from .protocol import USER_SCHEMA, ScimError, etag
from .resources import Resource
from .schemas import USER_TYPE
from .store import ResourceStore
from .values import (
    EMAIL_DETAIL,
    SIMPLE,
    as_bool,
    as_str,
    check_one_primary,
    check_roles,
    norm_emails,
    norm_name,
    strip_urn,
)


class Users(Resource):
    type = USER_TYPE
    filter_attr = staticmethod(user_filter_attr)

    def __init__(self, store: ResourceStore, groups: Groups, keep_inactive: bool) -> None:
        super().__init__(store)
        self.groups = groups
        # False is Stripe's behaviour: deactivation deletes the user (204). Read per request, so the
        # sandbox's /_sandbox/config can switch it.
        self.keep_inactive = keep_inactive

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The stored user whose userName equals ``email`` (case-insensitive), or None."""
        low = email.lower()
        return next((u for u in self.store.items.values() if u["userName"].lower() == low), None)

    def build(self, body: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        check_roles(body)
        fields = {}
        for key, value in body.items():
            k = strip_urn(str(key)).lower()
            if k in SIMPLE or k in ("name", "emails"):
                fields[k] = value
        user_name = fields.get("username")
        if not isinstance(user_name, str) or not user_name.strip():
            raise ScimError(400, "'userName' (the member's email) is required", "invalidValue")
        user_name = user_name.strip()
        if base is not None and user_name.lower() != base["userName"].lower():
            raise ScimError(400, EMAIL_DETAIL, "mutability")
        out: dict[str, Any] = {"userName": base["userName"] if base else user_name}
        if fields.get("displayname") is not None:
            out["displayName"] = as_str(fields["displayname"], "displayName")
        if fields.get("externalid") is not None:
            out["externalId"] = as_str(fields["externalid"], "externalId")
        name = norm_name(fields.get("name"))
        if name:
            out["name"] = name
        emails = norm_emails(fields.get("emails"))
        if emails:
            out["emails"] = emails
        if fields.get("active") is not None:
            out["active"] = as_bool(fields["active"], "active")
        elif base is None:
            out["active"] = True
        elif "active" in base:
            out["active"] = base["active"]  # PUT never silently re-grants access
        return out

    def conflict(self, fields: dict[str, Any]) -> None:
        user_name = fields["userName"]
        if self.by_email(user_name) is not None:
            raise ScimError(409, f"A user with userName '{user_name}' already exists", "uniqueness")

    def finish(self, rid: str, fields: dict[str, Any], created: str, now: str) -> dict[str, Any]:
        user: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": rid}
        for key in ("externalId", "userName", "name", "displayName", "active", "emails"):
            if key in fields:
                user[key] = fields[key]
        user["meta"] = {"resourceType": "User", "created": created, "lastModified": now}
        user["meta"]["version"] = etag(user)
        return user

    def render(self, resource: dict[str, Any], base: str) -> dict[str, Any]:
        out = copy.deepcopy(resource)
        # Computed (membership lives in the groups) and always present, [] for none: RFC 7643 §2.5 makes an
        # omitted attribute "unassigned", which a client cannot tell from "not reported".
        out["groups"] = self.groups.groups_of(resource["id"], base)
        out["meta"]["location"] = f"{base}/Users/{resource['id']}"
        return out

    def apply_op(self, work: dict[str, Any], raw: Any) -> None:
        apply_user_op(work, raw)

    def after_patch(self, work: dict[str, Any], current: dict[str, Any]) -> None:
        if work.get("userName", "").lower() != current["userName"].lower():
            raise ScimError(400, EMAIL_DETAIL, "mutability")
        work["userName"] = current["userName"]
        check_one_primary(work.get("emails"))

    def deactivates(self, fields: dict[str, Any]) -> bool:
        # Stripe's guide: deactivating a user deletes it; the answer is 204 like DELETE's.
        return not self.keep_inactive and fields.get("active") is False

    def remove(self, rid: str) -> None:
        super().remove(rid)
        self.groups.drop_member(rid)  # a deleted user is in no group
