"""SCIM attribute names and value normalisation shared by the request builders and the PATCH engine."""

from __future__ import annotations

from typing import Any

from .protocol import GROUP_SCHEMA, USER_SCHEMA, ScimError

ROLES_DETAIL = (
    "Roles cannot be set as a SCIM attribute: Stripe assigns Dashboard roles from SAML attribute "
    "statements at sign-in, or from the Dashboard's mapping of a synced group to roles"
)
EMAIL_DETAIL = "Email updates are not supported; deprovision and re-provision the user"
RENAME_DETAIL = "Group names cannot be updated; re-provision the group under the new name"

# Attributes of the core User schema the emulator stores and echoes.
SIMPLE = {"username": "userName", "displayname": "displayName", "active": "active", "externalid": "externalId"}
NAME_SUBS = ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
EMAIL_SUBS = ["value", "display", "type", "primary"]
READ_ONLY = {"id": "id", "meta": "meta", "schemas": "schemas"}
# RFC 7643 User attributes (and the enterprise extension) accepted and silently dropped.
IGNORED = {
    a.lower()
    for a in (
        "nickName profileUrl title userType preferredLanguage locale timezone password "
        "phoneNumbers ims photos addresses groups entitlements x509Certificates"
    ).split()
}


def _strip(path: str, schema: str) -> str:
    prefix = schema.lower() + ":"
    return path[len(prefix):] if path.lower().startswith(prefix) else path


def strip_urn(path: str) -> str:
    """A User attribute path without its schema URN (``urn:...:User:userName`` → ``userName``)."""
    return _strip(path, USER_SCHEMA)


def strip_group_urn(path: str) -> str:
    return _strip(path, GROUP_SCHEMA)


def as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # Entra sends "True"/"False"
    raise ScimError(400, f"'{what}' must be a boolean", "invalidValue")


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ScimError(400, f"'{what}' must be a string", "invalidValue")
    return value


def norm_name(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ScimError(400, "'name' must be a complex object", "invalidValue")
    subs = {s.lower(): s for s in NAME_SUBS}
    out: dict[str, Any] = {}
    for k, v in value.items():
        canon = subs.get(k.lower())
        if canon and v is not None:
            out[canon] = as_str(v, f"name.{canon}")
    return out or None


def norm_email(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScimError(400, "Each 'emails' item must be a complex object", "invalidValue")
    subs = {s.lower(): s for s in EMAIL_SUBS}
    out: dict[str, Any] = {}
    for k, v in value.items():
        canon = subs.get(k.lower())
        if canon is None or v is None:
            continue
        out[canon] = email_sub_value(canon, v)
    return out


def email_sub_value(canon: str, value: Any) -> Any:
    return as_bool(value, "emails.primary") if canon == "primary" else as_str(value, f"emails.{canon}")


def norm_emails(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ScimError(400, "'emails' must be a list", "invalidValue")
    out = [e for e in (norm_email(v) for v in value) if e]
    check_one_primary(out)
    return out or None


def check_one_primary(emails: list[dict[str, Any]] | None) -> None:
    if emails is not None and sum(1 for e in emails if e.get("primary") is True) > 1:
        raise ScimError(400, "At most one email may be primary", "invalidValue")


def check_roles(body: dict[str, Any]) -> None:
    for key in body:
        if strip_urn(str(key)).split(".")[0].split("[")[0].lower() == "roles":
            raise ScimError(400, ROLES_DETAIL, "invalidValue")
