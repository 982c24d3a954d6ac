"""SCIM Groups (RFC 7643 §4.2): ``displayName`` (required, unique, immutable), ``members`` (Users).

* ``displayName`` is unique (compared case-insensitively: 409 ``uniqueness``) and cannot be
  updated ("re-provision the group under the new name"): a PUT or PATCH that changes it is 400
  ``mutability``.
* Members are Users of this account (``value`` must be an existing User id, else 400
  ``invalidValue``); nested groups are not supported. ``members.display`` is stored as the client
  sent it or, when absent, taken from the user's ``displayName`` at that time.
* ``members`` is always rendered (``[]`` for none, unless excluded) so a client can tell "no
  members" from "not reported". A group carries no ``roles``: the Dashboard's group-to-role mapping
  is not part of SCIM.
"""

from __future__ import annotations

import copy
from typing import Any

from .filters import group_filter_attr
from .patch import apply_group_op
from .protocol import GROUP_SCHEMA, ScimError, etag, now
from .resources import Resource, stored_fields
from .schemas import GROUP_TYPE
from .store import ResourceStore
from .values import RENAME_DETAIL, ROLES_DETAIL, as_str, strip_group_urn


class Groups(Resource):
    type = GROUP_TYPE
    filter_attr = staticmethod(group_filter_attr)

    def __init__(self, store: ResourceStore, users: ResourceStore) -> None:
        super().__init__(store)
        self.users = users

    # ----------------------------------------------------------------- views used by Users

    def groups_of(self, uid: str, base: str) -> list[dict[str, Any]]:
        """A user's read-only `groups` attribute, in group creation order."""
        return [
            {"value": g["id"], "$ref": f"{base}/Groups/{g['id']}", "display": g["displayName"], "type": "direct"}
            for g in self.store.sorted()
            if any(m["value"] == uid for m in g.get("members") or [])
        ]

    def drop_member(self, uid: str) -> None:
        """A deleted user leaves every group (its lastModified/version move on)."""
        when = now()
        for gid, group in list(self.store.items.items()):
            kept = [m for m in group.get("members") or [] if m["value"] != uid]
            if len(kept) != len(group.get("members") or []):
                fields = stored_fields(group)
                fields["members"] = kept
                self.store.replace(self.finish(gid, fields, group["meta"]["created"], when))

    # ----------------------------------------------------------------- the resource's rules

    def finish(self, rid: str, fields: dict[str, Any], created: str, now: str) -> dict[str, Any]:
        group: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": rid}
        for key in ("externalId", "displayName", "members"):
            if key in fields and fields[key] is not None:
                group[key] = fields[key]
        if not group.get("members"):
            group.pop("members", None)  # RFC 7643 §2.5: unassigned rather than empty
        group["meta"] = {"resourceType": "Group", "created": created, "lastModified": now}
        group["meta"]["version"] = etag(group)
        return group

    def render(self, resource: dict[str, Any], base: str) -> dict[str, Any]:
        out = copy.deepcopy(resource)
        # Always present ([] for none), like users' `groups`: an omitted attribute could mean "not reported".
        out["members"] = out.get("members") or []
        for m in out["members"]:
            m["$ref"] = f"{base}/Users/{m['value']}"
        out["meta"]["location"] = f"{base}/Groups/{resource['id']}"
        return out

    def member(self, raw: Any, display: Any) -> dict[str, Any]:
        """A stored member from a user id (+ optional display), validated against the users."""
        uid = as_str(raw, "members.value")
        user = self.users.items.get(uid)
        if user is None:
            raise ScimError(400, f"members: no User with id '{uid}' (members must be Users of this account)", "invalidValue")
        shown = as_str(display, "members.display") if display is not None else user.get("displayName") or user["userName"]
        return {"value": uid, "display": shown, "type": "User"}

    def members(self, value: Any) -> list[dict[str, Any]]:
        if value is None:
            return []
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise ScimError(400, "'members' must be a list", "invalidValue")
        out: list[dict[str, Any]] = []
        for item in value:
            if not isinstance(item, dict):
                raise ScimError(400, "Each member must be an object with 'value' (a User id)", "invalidValue")
            keys = {str(k).lower(): v for k, v in item.items()}
            kind = keys.get("type")
            if kind is not None and str(kind).lower() != "user":
                raise ScimError(400, "Only Users can be group members (no nested groups)", "invalidValue")
            if keys.get("value") is None and isinstance(keys.get("$ref"), str):
                keys["value"] = keys["$ref"].rstrip("/").rsplit("/", 1)[-1]
            member = self.member(keys.get("value"), keys.get("display"))
            if all(m["value"] != member["value"] for m in out):
                out.append(member)
        return out

    def conflict(self, fields: dict[str, Any]) -> None:
        name = fields["displayName"]
        low = name.lower()
        for g in self.store.items.values():
            if g["displayName"].lower() == low:
                raise ScimError(409, f"A group with displayName '{name}' already exists", "uniqueness")

    def build(self, body: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        fields = {strip_group_urn(str(k)).lower(): v for k, v in body.items()}
        if "roles" in fields:
            raise ScimError(400, ROLES_DETAIL, "invalidValue")
        name = fields.get("displayname")
        if not isinstance(name, str) or not name.strip():
            if base is None:
                raise ScimError(400, "'displayName' is required", "invalidValue")
            name = base["displayName"]
        name = name.strip()
        if base is not None and name.lower() != base["displayName"].lower():
            raise ScimError(400, RENAME_DETAIL, "mutability")
        out: dict[str, Any] = {"displayName": base["displayName"] if base else name}
        if fields.get("externalid") is not None:
            out["externalId"] = as_str(fields["externalid"], "externalId")
        out["members"] = self.members(fields.get("members"))
        return out

    def apply_op(self, work: dict[str, Any], raw: Any) -> None:
        apply_group_op(work, raw, self.members)

    def after_patch(self, work: dict[str, Any], current: dict[str, Any]) -> None:
        if not work.get("members"):
            work.pop("members", None)
