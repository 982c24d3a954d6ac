"""SCIM discovery documents (RFC 7643 §5-7): the attribute builder, every schema, resource types, SPC.

One builder (`schema_doc`) writes the User and Group schemas and the discovery schemas alike;
`ResourceType` describes a resource once, for its schema, its ``/ResourceTypes`` entry and its routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import GROUP_SCHEMA, MAX_RESULTS, RT_SCHEMA, SCHEMA_SCHEMA, SPC_SCHEMA, USER_SCHEMA
from .values import NAME_SUBS

DOCS_URI = "https://docs.stripe.com/get-started/account/sso/scim"


def _attr(
    name: str,
    type_: str = "string",
    *,
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    description: str = "",
    subs: list[dict[str, Any]] | None = None,
    canonical: list[str] | None = None,
    refs: list[str] | None = None,
) -> dict[str, Any]:
    attr: dict[str, Any] = {
        "name": name,
        "type": type_,
        "multiValued": multi,
        "description": description or name,
        "required": required,
    }
    if type_ in ("string", "reference", "binary"):
        attr["caseExact"] = case_exact
    if canonical:
        attr["canonicalValues"] = canonical
    if refs:
        attr["referenceTypes"] = refs
    attr.update({"mutability": mutability, "returned": returned})
    if type_ not in ("complex", "boolean"):
        attr["uniqueness"] = uniqueness
    if subs is not None:
        attr["subAttributes"] = subs
    return attr


def _ro(name: str, type_: str = "string", **kw: Any) -> dict[str, Any]:
    return _attr(name, type_, mutability="readOnly", **kw)


def schema_doc(urn: str, name: str, description: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [SCHEMA_SCHEMA], "id": urn, "name": name, "description": description, "attributes": attributes}


USER_SCHEMA_DOC = schema_doc(
    USER_SCHEMA,
    "User",
    "Stripe Dashboard team member. Only id, userName, displayName, active and meta "
    "are handled; name and emails are stored and echoed only. Roles come from SAML or a Dashboard "
    "group-to-role mapping, not from SCIM attributes.",
    [
        _attr(
            "userName",
            required=True,
            mutability="immutable",
            uniqueness="server",
            description="The member's email address; unique identifier. Email updates are not "
            "supported: deprovision and re-provision the user.",
        ),
        _attr(
            "name",
            "complex",
            description="The components of the member's name (stored and echoed only).",
            subs=[_attr(s, description=f"name.{s}") for s in NAME_SUBS],
        ),
        _attr("displayName", description="Name shown in the Dashboard."),
        _attr(
            "active",
            "boolean",
            description="Whether the member may sign in; false revokes Dashboard access immediately.",
        ),
        _attr(
            "emails",
            "complex",
            multi=True,
            description="Email addresses (stored and echoed only; never change identity).",
            subs=[
                _attr("value", description="Email address."),
                _attr("display", description="Human-readable form."),
                _attr("type", description="Label.", canonical=["work", "home", "other"]),
                _attr("primary", "boolean", description="Primary address."),
            ],
        ),
        # RFC 7643 §4.1.2: read-only, computed from /Groups (membership changes go through the group).
        _ro(
            "groups",
            "complex",
            multi=True,
            description="Groups the member is in (read-only; change membership through /Groups).",
            subs=[
                _ro("value", description="id of the group."),
                _ro("$ref", "reference", refs=["Group"], description="URI of the group."),
                _ro("display", description="Name of the group."),
                _ro("type", canonical=["direct"], description="direct"),
            ],
        ),
    ],
)

GROUP_SCHEMA_DOC = schema_doc(
    GROUP_SCHEMA,
    "Group",
    "Group of Dashboard team members. Roles may be mapped to a group in the Dashboard "
    "(Settings → Team and security → Groups); the mapping is not exposed over SCIM.",
    [
        _attr(
            "displayName",
            required=True,
            mutability="immutable",
            uniqueness="server",
            description="Name of the group, unique. Group names cannot be updated: re-provision the group "
            "under the new name.",
        ),
        _attr(
            "members",
            "complex",
            multi=True,
            description="Team members in the group (Users of this account; no nested groups).",
            subs=[
                _attr("value", mutability="immutable", case_exact=True, description="id of the User."),
                _attr("$ref", "reference", mutability="immutable", refs=["User"], description="URI of the User."),
                _attr("type", mutability="immutable", canonical=["User"], description="Always User."),
                _attr("display", mutability="immutable", description="Name of the member."),
            ],
        ),
    ],
)


SPC_SCHEMA_DOC = schema_doc(
    SPC_SCHEMA,
    "ServiceProviderConfig",
    "Schema for representing the service provider's configuration",
    [
        _ro("documentationUri", "reference", refs=["external"]),
        _ro("patch", "complex", required=True, subs=[_ro("supported", "boolean", required=True)]),
        _ro(
            "bulk",
            "complex",
            required=True,
            subs=[
                _ro("supported", "boolean", required=True),
                _ro("maxOperations", "integer", required=True),
                _ro("maxPayloadSize", "integer", required=True),
            ],
        ),
        _ro(
            "filter",
            "complex",
            required=True,
            subs=[_ro("supported", "boolean", required=True), _ro("maxResults", "integer", required=True)],
        ),
        _ro("changePassword", "complex", required=True, subs=[_ro("supported", "boolean", required=True)]),
        _ro("sort", "complex", required=True, subs=[_ro("supported", "boolean", required=True)]),
        _ro("etag", "complex", required=True, subs=[_ro("supported", "boolean", required=True)]),
        _ro(
            "authenticationSchemes",
            "complex",
            multi=True,
            required=True,
            subs=[
                _ro("type", required=True),
                _ro("name", required=True),
                _ro("description", required=True),
                _ro("specUri", "reference", refs=["external"]),
                _ro("documentationUri", "reference", refs=["external"]),
                _ro("primary", "boolean"),
            ],
        ),
    ],
)

RT_SCHEMA_DOC = schema_doc(
    RT_SCHEMA,
    "ResourceType",
    "Specifies the schema that describes a SCIM resource type",
    [
        _ro("id"),
        _ro("name", required=True),
        _ro("description"),
        _ro("endpoint", "reference", required=True, refs=["uri"]),
        _ro("schema", "reference", required=True, case_exact=True, refs=["uri"]),
        _ro(
            "schemaExtensions",
            "complex",
            multi=True,
            subs=[
                _ro("schema", "reference", required=True, case_exact=True, refs=["uri"]),
                _ro("required", "boolean", required=True),
            ],
        ),
    ],
)

_SCHEMA_ATTR_SUBS = [
    _ro("name", required=True, case_exact=True),
    _ro("type", required=True, canonical=["string", "complex", "boolean", "decimal", "integer", "dateTime", "reference", "binary"]),
    _ro("multiValued", "boolean", required=True),
    _ro("description"),
    _ro("required", "boolean"),
    _ro("canonicalValues", multi=True),
    _ro("caseExact", "boolean"),
    _ro("mutability", canonical=["readOnly", "readWrite", "immutable", "writeOnly"]),
    _ro("returned", canonical=["always", "never", "default", "request"]),
    _ro("uniqueness", canonical=["none", "server", "global"]),
    _ro("referenceTypes", multi=True),
]

SCHEMA_SCHEMA_DOC = schema_doc(
    SCHEMA_SCHEMA,
    "Schema",
    "Specifies the schema attribute",
    [
        _ro("id", required=True),
        _ro("name"),
        _ro("description"),
        _ro(
            "attributes",
            "complex",
            multi=True,
            required=True,
            subs=[*_SCHEMA_ATTR_SUBS, _ro("subAttributes", "complex", multi=True, subs=list(_SCHEMA_ATTR_SUBS))],
        ),
    ],
)



@dataclass(frozen=True)
class ResourceType:
    """A SCIM resource type as discovery publishes it (``/ResourceTypes/{name}``, ``/Schemas/{schema}``)."""

    name: str
    endpoint: str
    description: str
    schema_doc: dict[str, Any]

    @property
    def schema(self) -> str:
        return str(self.schema_doc["id"])

    def names(self) -> tuple[str, str]:
        """How ``/ResourceTypes/{id}`` may name it: its name or its schema URN (case-insensitive)."""
        return self.name.lower(), self.schema.lower()


USER_TYPE = ResourceType("User", "/Users", "Stripe Dashboard team member", USER_SCHEMA_DOC)
GROUP_TYPE = ResourceType(
    "Group", "/Groups", "Group of Dashboard team members (roles may be mapped to it in the Dashboard)", GROUP_SCHEMA_DOC
)
RESOURCE_TYPES = (USER_TYPE, GROUP_TYPE)
# In the order /Schemas lists them: the resources' schemas, then discovery's own.
SCHEMA_DOCS = [USER_SCHEMA_DOC, GROUP_SCHEMA_DOC, SPC_SCHEMA_DOC, RT_SCHEMA_DOC, SCHEMA_SCHEMA_DOC]


def meta(base: str, resource_type: str, path: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "location": f"{base}{path}"}


def resource_type_doc(rt: ResourceType, base: str) -> dict[str, Any]:
    return {
        "schemas": [RT_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "description": rt.description,
        "endpoint": rt.endpoint,
        "schema": rt.schema,
        "meta": meta(base, "ResourceType", f"/ResourceTypes/{rt.name}"),
    }


def schema_with_meta(doc: dict[str, Any], base: str) -> dict[str, Any]:
    return {**doc, "meta": meta(base, "Schema", f"/Schemas/{doc['id']}")}


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS_URI,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "SCIM bearer token",
                "description": "Authentication with the SCIM token generated in the Stripe Dashboard "
                "(SSO organisations only)",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "documentationUri": DOCS_URI,
                "primary": True,
            }
        ],
        "meta": meta(base, "ServiceProviderConfig", "/ServiceProviderConfig"),
    }
