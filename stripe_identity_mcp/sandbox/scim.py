"""In-memory emulator of Stripe's SCIM 2.0 endpoint for Dashboard team members.

Mounted by the sandbox at ``/scim/v2``; every path below is relative to that mount point.

What it reproduces from Stripe's SCIM guide
-------------------------------------------
* Bearer SCIM token (``Authorization: Bearer <token>``); a missing or wrong token gets a SCIM
  401 error with ``WWW-Authenticate: Bearer``. The token is never echoed.
* ``userName`` is the member's email and the unique identifier (uniqueness ``server``, compared
  case-insensitively as RFC 7643 makes ``userName`` ``caseExact: false``). Email updates are not
  supported: a PUT or PATCH that changes ``userName`` gets 400 ``mutability`` ("deprovision and
  re-provision the user"). The published schema therefore declares ``userName`` ``immutable``.
  The emulator does not validate the email *format* of ``userName`` (conformance suites post
  random strings).
* Only ``id``, ``userName``, ``displayName``, ``active`` and ``meta`` drive behaviour. ``name``,
  ``emails`` and the common attribute ``externalId`` (RFC 7643 §3.1; identity providers use it to
  correlate) are accepted on input, stored and echoed back verbatim (so standard clients and
  conformance suites round-trip them) but never change identity or access. Other RFC 7643 User
  attributes (``title``, ``nickName``, ``phoneNumbers``, enterprise extension, ...) are accepted
  and silently dropped; a wholly unknown PATCH path is 400 ``invalidPath``.
* Roles are never set over SCIM: any ``roles`` attribute (POST, PUT or PATCH) is rejected with
  400 ``invalidValue``. Stripe decides roles from SAML attribute statements at sign-in, or from the
  Dashboard's mapping of a SCIM-synced group to roles (Settings → Team and security → Groups); that
  mapping is not visible over SCIM.
* A newly provisioned member has no permissions until their first SSO sign-in (``active`` defaults
  to ``true`` on POST; that only means "may sign in").
* Groups: ``/Groups`` (see ``scim_groups.py``: group names cannot be updated, displayName unique,
  members are Users). Users carry a read-only ``groups`` attribute computed from the groups (always
  present, ``[]`` for none — an emulator choice: Stripe does not document it), and a
  deleted (or, by default, deactivated) user leaves every group. ``bulk``, ``sort`` and
  ``changePassword`` are ``false`` in ``/ServiceProviderConfig``.

Emulator choices
----------------
* Deactivation deletes, as Stripe's guide says ("deactivating a user deletes it"): a PATCH or PUT
  that leaves the member ``active: false`` removes the member and answers 204 No Content, exactly
  like ``DELETE`` (subsequent GET → 404, gone from lists). Either way Dashboard access is revoked at
  once. ``keep_inactive=True`` (``SandboxConfig.scim_keep_inactive``, CLI ``--scim-keep-inactive``)
  keeps the usual-SCIM-server behaviour instead: the member stays visible with ``active: false`` and
  the PATCH/PUT answers 200 with the member. (A POST with ``active: false`` creates an inactive
  member in both modes; Stripe does not document that case.)
* PUT without ``active`` keeps the current value (a PUT never silently re-grants access); other
  omitted readWrite attributes are cleared. PATCH ``remove`` of ``active`` leaves it unassigned.
* ``op`` is case-insensitive ("Replace" from Entra); ``"True"``/``"False"`` strings for boolean
  attributes are accepted (Entra quirk); a path-less PATCH value may use dotted keys
  (``{"name.givenName": "x"}``).
* A ``replace`` through a value filter that matches nothing (``emails[type eq "x"].value``) is
  400 ``noTarget`` as RFC 7644 §3.5.2.3 says; ``add`` through such a filter creates the element.
* ETags: ``meta.version`` is a weak ETag, sent as the ``ETag`` header; ``If-Match`` on
  PUT/PATCH/DELETE (mismatch → 412 ``preconditionFailed`` style error) and ``If-None-Match`` on
  GET (→ 304) are honoured.
* Filters: ``eq ne co sw ew gt ge lt le pr``, ``and``/``or``/``not(...)`` and parentheses over
  ``id``, ``userName``, ``displayName``, ``active``, ``name.*``, ``emails.*`` (``emails`` alone
  means ``emails.value``) and ``meta.created``/``meta.lastModified``/``meta.resourceType``.
  Anything else (unknown attribute, value-path brackets, syntax error) → 400 ``invalidFilter``.
* Listing: stable order by creation time; ``startIndex`` 1-based (<1 → 1); ``count`` default and
  maximum 100 (negative → 0; 0 → only ``totalResults``). ``sortBy`` is ignored (sort unsupported).
  ``attributes``/``excludedAttributes`` are honoured (``id`` and ``schemas`` are always returned).
  ``POST /Users/.search`` and ``POST /.search`` (Users and Groups) are supported.

Seed (unless ``empty``): 12 members drawn deterministically from ``seed`` plus every email of
``shared_emails`` (default: the four shared demo people). About a third of the drawn members and
``jane@acme.com`` ("Jane Doe", a removed member) are inactive; inactive members exist only under
``keep_inactive`` (by default they were deleted when deactivated, as on Stripe, so the default seed
holds the active ones only, with the same ids). ``omar@globex.com``, ``priya@umbrella.com`` and
``lee@initech.com`` are active in both modes. Three groups are seeded (``SEED_GROUPS`` in
``scim_groups.py``): Support (jane, omar), Developers (lee, priya), Admins (jane, priya), plus drawn
members in Support and Developers; jane is in them only where she exists (``keep_inactive``).
The shared people have seed-independent ids (uuid5 of their email, see ``SCIM_FIXED_IDS``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["ScimSandbox", "SCIM_FIXED_IDS", "SHARED_SCIM_MEMBERS", "scim_id_for"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_MEDIA_TYPE = "application/scim+json"
MAX_RESULTS = 100
ROLES_DETAIL = (
    "Roles cannot be set as a SCIM attribute: Stripe assigns Dashboard roles from SAML attribute "
    "statements at sign-in, or from the Dashboard's mapping of a synced group to roles"
)
EMAIL_DETAIL = "Email updates are not supported; deprovision and re-provision the user"

_ID_NAMESPACE = uuid.UUID("6f1c9a52-3b1e-4c41-9d55-5a8f0e4b2c10")


def scim_id_for(email: str) -> str:
    """Seed-independent SCIM id of a shared demo person (uuid5 of the lower-cased email)."""
    return str(uuid.uuid5(_ID_NAMESPACE, email.strip().lower()))


# email -> (displayName, given, family, active)
SHARED_SCIM_MEMBERS: dict[str, tuple[str, str, str, bool]] = {
    "jane@acme.com": ("Jane Doe", "Jane", "Doe", False),
    "omar@globex.com": ("Omar Haddad", "Omar", "Haddad", True),
    "priya@umbrella.com": ("Priya Raman", "Priya", "Raman", True),
    "lee@initech.com": ("Lee Chen", "Lee", "Chen", True),
}
SCIM_FIXED_IDS: dict[str, str] = {email: scim_id_for(email) for email in SHARED_SCIM_MEMBERS}

_FIRST = (
    "Ava Noah Mia Liam Zoe Ethan Nora Lucas Iris Mateo Hana Felix Ines Ravi Yuki Sofia Kenji Amara "
    "Leo Maya Omar Lena Arjun Chloe Diego Freya Tomas Aisha Jonas Clara"
).split()
_LAST = (
    "Nguyen Smith Garcia Muller Rossi Kowalski Tanaka Okafor Silva Jensen Novak Ahmed Cohen Park "
    "Dubois Larsen Moreau Singh Costa Ivanova"
).split()
_DOMAINS = ["acme.com", "globex.com", "umbrella.com", "initech.com", "hooli.com", "stark.io"]

# Attributes of the core User schema the emulator stores and echoes.
_SIMPLE = {"username": "userName", "displayname": "displayName", "active": "active", "externalid": "externalId"}
_NAME_SUBS = ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
_EMAIL_SUBS = ["value", "display", "type", "primary"]
_READ_ONLY = {"id": "id", "meta": "meta", "schemas": "schemas"}
# RFC 7643 User attributes (and the enterprise extension) accepted and silently dropped.
_IGNORED = {
    a.lower()
    for a in (
        "nickName profileUrl title userType preferredLanguage locale timezone password "
        "phoneNumbers ims photos addresses groups entitlements x509Certificates"
    ).split()
}


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _scim_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type=SCIM_MEDIA_TYPE)


def _error_response(exc: ScimError) -> Response:
    payload: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(exc.status)}
    if exc.scim_type:
        payload["scimType"] = exc.scim_type
    payload["detail"] = exc.detail
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if exc.status == 401 else None
    return _scim_json(payload, exc.status, headers)


# --------------------------------------------------------------------------- schema documents


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


USER_SCHEMA_DOC: dict[str, Any] = {
    "schemas": [SCHEMA_SCHEMA],
    "id": USER_SCHEMA,
    "name": "User",
    "description": "Stripe Dashboard team member. Only id, userName, displayName, active and meta "
    "are handled; name and emails are stored and echoed only. Roles come from SAML or a Dashboard "
    "group-to-role mapping, not from SCIM attributes.",
    "attributes": [
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
            subs=[_attr(s, description=f"name.{s}") for s in _NAME_SUBS],
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
}

SPC_SCHEMA_DOC: dict[str, Any] = {
    "schemas": [SCHEMA_SCHEMA],
    "id": SPC_SCHEMA,
    "name": "ServiceProviderConfig",
    "description": "Schema for representing the service provider's configuration",
    "attributes": [
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
}

RT_SCHEMA_DOC: dict[str, Any] = {
    "schemas": [SCHEMA_SCHEMA],
    "id": RT_SCHEMA,
    "name": "ResourceType",
    "description": "Specifies the schema that describes a SCIM resource type",
    "attributes": [
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
}

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

SCHEMA_SCHEMA_DOC: dict[str, Any] = {
    "schemas": [SCHEMA_SCHEMA],
    "id": SCHEMA_SCHEMA,
    "name": "Schema",
    "description": "Specifies the schema attribute",
    "attributes": [
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
}

SCHEMA_DOCS = [USER_SCHEMA_DOC, SPC_SCHEMA_DOC, RT_SCHEMA_DOC, SCHEMA_SCHEMA_DOC]
_SCHEMA_BY_ID = {doc["id"].lower(): doc for doc in SCHEMA_DOCS}


# --------------------------------------------------------------------------- filters

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) | (?P<lb>\[) | (?P<rb>\]) |
        (?P<str>"(?:[^"\\]|\\.)*") |
        (?P<word>[A-Za-z0-9_:.$\-+]+)
    )""",
    re.VERBOSE,
)
_COMPARE_OPS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ScimError(400, f"Unparseable filter near position {pos}", "invalidFilter")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _strip_urn(path: str) -> str:
    low = path.lower()
    for urn in (USER_SCHEMA.lower() + ":",):
        if low.startswith(urn):
            return path[len(urn):]
    return path


# Filterable attribute -> (getter, kind, caseExact)
def _filter_attr(path: str) -> tuple[Callable[[dict[str, Any]], list[Any]], str, bool]:
    p = _strip_urn(path).lower()
    if p == "id":
        return (lambda u: [u.get("id")], "string", True)
    if p == "externalid":
        return (lambda u: [u.get("externalId")], "string", True)
    if p in ("username", "displayname"):
        key = _SIMPLE[p]
        return (lambda u, k=key: [u.get(k)], "string", False)  # type: ignore[misc]
    if p == "active":
        return (lambda u: [u.get("active")], "boolean", False)
    if p.startswith("name."):
        sub = {s.lower(): s for s in _NAME_SUBS}.get(p[5:])
        if sub:
            return (lambda u, s=sub: [(u.get("name") or {}).get(s)], "string", False)  # type: ignore[misc]
    if p == "emails" or p.startswith("emails."):
        sub_l = p[7:] if p.startswith("emails.") else "value"
        sub = {s.lower(): s for s in _EMAIL_SUBS}.get(sub_l)
        if sub:
            kind = "boolean" if sub == "primary" else "string"
            return (lambda u, s=sub: [e.get(s) for e in (u.get("emails") or [])], kind, False)  # type: ignore[misc]
    if p in ("meta.created", "meta.lastmodified", "meta.resourcetype"):
        key = {"meta.created": "created", "meta.lastmodified": "lastModified", "meta.resourcetype": "resourceType"}[p]
        return (lambda u, k=key: [(u.get("meta") or {}).get(k)], "string", True)  # type: ignore[misc]
    raise ScimError(400, f"Filtering on attribute '{path}' is not supported", "invalidFilter")


Predicate = Callable[[dict[str, Any]], bool]


def _compare(op: str, actual: Any, expected: Any, kind: str, case_exact: bool) -> bool:
    if actual is None:
        return False
    if kind == "boolean":
        if not isinstance(expected, bool) or op not in ("eq", "ne"):
            raise ScimError(400, "Boolean attributes only support eq/ne with true or false", "invalidFilter")
        return (actual == expected) if op == "eq" else (actual != expected)
    if not isinstance(expected, str):
        if op == "ne":
            return True
        if op == "eq":
            return False
        raise ScimError(400, "String attributes must be compared with a quoted string", "invalidFilter")
    a, e = (str(actual), expected) if case_exact else (str(actual).lower(), expected.lower())
    return {
        "eq": a == e,
        "ne": a != e,
        "co": e in a,
        "sw": a.startswith(e),
        "ew": a.endswith(e),
        "gt": a > e,
        "ge": a >= e,
        "lt": a < e,
        "le": a <= e,
    }[op]


AttrResolver = Callable[[str], tuple[Callable[[dict[str, Any]], list[Any]], str, bool]]


class _FilterParser:
    def __init__(self, text: str, resolver: AttrResolver | None = None) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.resolver = resolver or _filter_attr  # Users by default; Groups pass their own attributes

    def parse(self) -> Predicate:
        if not self.tokens:
            raise ScimError(400, "Empty filter", "invalidFilter")
        pred = self._or()
        if self.i != len(self.tokens):
            raise ScimError(400, f"Unexpected token '{self.tokens[self.i][1]}' in filter", "invalidFilter")
        return pred

    def _peek_word(self) -> str | None:
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "word":
            return self.tokens[self.i][1].lower()
        return None

    def _next(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ScimError(400, "Filter ends unexpectedly", "invalidFilter")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _or(self) -> Predicate:
        left = self._and()
        while self._peek_word() == "or":
            self.i += 1
            right = self._and()
            left = (lambda a, b: lambda u: a(u) or b(u))(left, right)
        return left

    def _and(self) -> Predicate:
        left = self._unary()
        while self._peek_word() == "and":
            self.i += 1
            right = self._unary()
            left = (lambda a, b: lambda u: a(u) and b(u))(left, right)
        return left

    def _unary(self) -> Predicate:
        if self._peek_word() == "not" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][0] == "lp":
            self.i += 1
            inner = self._group()
            return lambda u: not inner(u)
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "lp":
            return self._group()
        return self._comparison()

    def _group(self) -> Predicate:
        kind, _ = self._next()
        if kind != "lp":
            raise ScimError(400, "Expected '(' in filter", "invalidFilter")
        inner = self._or()
        kind, _ = self._next()
        if kind != "rp":
            raise ScimError(400, "Expected ')' in filter", "invalidFilter")
        return inner

    def _comparison(self) -> Predicate:
        kind, path = self._next()
        if kind != "word":
            raise ScimError(400, f"Expected an attribute name, got '{path}'", "invalidFilter")
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "lb":
            raise ScimError(400, "Value-path filters ('attr[...]') are not supported", "invalidFilter")
        getter, attr_kind, case_exact = self.resolver(path)
        kind, op = self._next()
        op = op.lower()
        if kind != "word" or (op not in _COMPARE_OPS and op != "pr"):
            raise ScimError(400, f"Unknown filter operator '{op}'", "invalidFilter")
        if op == "pr":
            return lambda u: any(v not in (None, "", []) for v in getter(u))
        kind, raw = self._next()
        value: Any
        if kind == "str":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ScimError(400, "Invalid string literal in filter", "invalidFilter") from exc
        elif kind == "word" and raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif kind == "word" and raw.lower() == "null":
            value = None
        elif kind == "word" and re.fullmatch(r"-?\d+(\.\d+)?", raw):
            value = raw
        else:
            raise ScimError(400, f"Invalid comparison value '{raw}' in filter", "invalidFilter")
        return lambda u: any(_compare(op, v, value, attr_kind, case_exact) for v in getter(u))


def parse_filter(text: str, resolver: AttrResolver | None = None) -> Predicate:
    """Compile a SCIM filter (RFC 7644 §3.4.2.2 subset) into a predicate over user (or `resolver`'s) dicts."""
    return _FilterParser(text, resolver).parse()


# --------------------------------------------------------------------------- attribute projection


def _split_attr_list(raw: str | list[str] | None) -> list[tuple[str, str | None]]:
    if not raw:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    out: list[tuple[str, str | None]] = []
    for item in items:
        item = _strip_urn(str(item).strip())
        if not item:
            continue
        top, _, sub = item.partition(".")
        out.append((top.lower(), sub.lower() or None))
    return out


def _project(resource: dict[str, Any], attributes: list[tuple[str, str | None]], excluded: list[tuple[str, str | None]]) -> dict[str, Any]:
    always = {"id", "schemas"}
    if attributes:
        wanted: dict[str, set[str] | None] = {}
        for top, sub in attributes:
            if sub is None:
                wanted[top] = None
            elif wanted.get(top, set()) is not None:
                wanted.setdefault(top, set()).add(sub)  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        for key, value in resource.items():
            k = key.lower()
            if k in always:
                out[key] = value
            elif k in wanted:
                subs = wanted[k]
                out[key] = value if subs is None else _pick_subs(value, subs, keep=True)
        return out
    if excluded:
        out = dict(resource)
        for top, sub in excluded:
            for key in list(out):
                if key.lower() != top or key.lower() in always:
                    continue
                if sub is None:
                    del out[key]
                else:
                    out[key] = _pick_subs(out[key], {sub}, keep=False)
        return out
    return resource


def _pick_subs(value: Any, subs: set[str], keep: bool) -> Any:
    def one(d: Any) -> Any:
        if not isinstance(d, dict):
            return d
        return {k: v for k, v in d.items() if (k.lower() in subs) == keep}

    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


# --------------------------------------------------------------------------- value normalisation


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # Entra sends "True"/"False"
    raise ScimError(400, f"'{what}' must be a boolean", "invalidValue")


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ScimError(400, f"'{what}' must be a string", "invalidValue")
    return value


def _norm_name(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ScimError(400, "'name' must be a complex object", "invalidValue")
    subs = {s.lower(): s for s in _NAME_SUBS}
    out: dict[str, Any] = {}
    for k, v in value.items():
        canon = subs.get(k.lower())
        if canon and v is not None:
            out[canon] = _str(v, f"name.{canon}")
    return out or None


def _norm_email(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScimError(400, "Each 'emails' item must be a complex object", "invalidValue")
    subs = {s.lower(): s for s in _EMAIL_SUBS}
    out: dict[str, Any] = {}
    for k, v in value.items():
        canon = subs.get(k.lower())
        if canon is None or v is None:
            continue
        out[canon] = _bool(v, "emails.primary") if canon == "primary" else _str(v, f"emails.{canon}")
    return out


def _norm_emails(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ScimError(400, "'emails' must be a list", "invalidValue")
    out = [e for e in (_norm_email(v) for v in value) if e]
    if sum(1 for e in out if e.get("primary") is True) > 1:
        raise ScimError(400, "At most one email may be primary", "invalidValue")
    return out or None


def _check_roles(body: dict[str, Any]) -> None:
    for key in body:
        if _strip_urn(str(key)).split(".")[0].split("[")[0].lower() == "roles":
            raise ScimError(400, ROLES_DETAIL, "invalidValue")


# --------------------------------------------------------------------------- the sandbox


class ScimSandbox:
    """Stripe-like SCIM 2.0 Users endpoint, in memory. ``app`` is a Starlette ASGI app."""

    def __init__(
        self,
        token: str = "scim_sandbox",
        seed: int = 42,
        empty: bool = False,
        shared_emails: list[str] | None = None,
        keep_inactive: bool = False,
    ) -> None:
        self.token = token
        # False is Stripe's behaviour: deactivation deletes the user (204). Read per request, so the
        # sandbox's /_sandbox/config can switch it; the seed is decided once, here.
        self.keep_inactive = keep_inactive
        self.seed = seed
        self.users: dict[str, dict[str, Any]] = {}
        self._clock = 0  # tie-breaker for stable ordering
        self._order: dict[str, tuple[str, int]] = {}
        from .scim_groups import GroupsApi  # beside this module; it imports helpers from here

        self.groups: dict[str, dict[str, Any]] = {}
        self._group_order: dict[str, tuple[str, int]] = {}
        self.groups_api = GroupsApi(self)
        if not empty:
            shared = list(SHARED_SCIM_MEMBERS) if shared_emails is None else list(shared_emails)
            self._seed(seed, shared)
            shared_low = {e.strip().lower() for e in shared}
            drawn = [u["id"] for u in self._sorted_users() if u["userName"].lower() not in shared_low]
            self.groups_api.seed(drawn)
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    # ----------------------------------------------------------------- white-box helpers

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The stored user whose userName equals ``email`` (case-insensitive), or None."""
        low = email.lower()
        return next((u for u in self.users.values() if u["userName"].lower() == low), None)

    def _store(self, user: dict[str, Any], created: str) -> None:
        self._clock += 1
        self._order[user["id"]] = (created, self._clock)
        self.users[user["id"]] = user

    def _sorted_users(self) -> list[dict[str, Any]]:
        return sorted(self.users.values(), key=lambda u: self._order[u["id"]])

    # ----------------------------------------------------------------- seed

    def _seed(self, seed: int, shared: list[str]) -> None:
        rng = random.Random(seed)
        start = datetime(2025, 3, 1, tzinfo=UTC)
        people: list[tuple[str, str, str, str, bool, str]] = []
        taken: set[str] = set()
        for email in shared:
            low = email.strip().lower()
            if low in taken:
                continue
            taken.add(low)
            display, given, family, active = SHARED_SCIM_MEMBERS.get(
                low, (self._display_from_email(email), "", "", True)
            )
            people.append((email.strip(), display, given, family, active, scim_id_for(email)))
        n_others = 12 - min(len(people), 4)
        while n_others > 0:
            given, family = rng.choice(_FIRST), rng.choice(_LAST)
            email = f"{given.lower()}.{family.lower()}@{rng.choice(_DOMAINS)}"
            if email in taken:
                continue
            taken.add(email)
            active = rng.random() < 0.7
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            people.append((email, f"{given} {family}", given, family, active, uid))
            n_others -= 1
        # Deterministic, distinct creation times spread over ~a year.
        offsets = sorted(rng.sample(range(0, 360 * 24), len(people)))
        order = list(range(len(people)))
        rng.shuffle(order)
        for slot, idx in zip(offsets, order, strict=True):
            email, display, given, family, active, uid = people[idx]
            if not active and not self.keep_inactive:
                continue  # deactivated on Stripe means deleted; skipping keeps the rng draws (and ids) unchanged
            created = (start + timedelta(hours=slot)).isoformat().replace("+00:00", "Z")
            user: dict[str, Any] = {
                "schemas": [USER_SCHEMA],
                "id": uid,
                "userName": email,
                "displayName": display,
                "active": active,
                "emails": [{"value": email, "type": "work", "primary": True}],
                "meta": {"resourceType": "User", "created": created, "lastModified": created},
            }
            if given or family:
                user["name"] = {k: v for k, v in (("givenName", given), ("familyName", family)) if v}
            user["meta"]["version"] = self._etag(user)
            self._store(user, created)

    @staticmethod
    def _display_from_email(email: str) -> str:
        local = email.split("@", 1)[0]
        return " ".join(p.capitalize() for p in re.split(r"[._+-]+", local) if p) or email

    # ----------------------------------------------------------------- plumbing

    @staticmethod
    def _etag(user: dict[str, Any]) -> str:
        content = {k: v for k, v in user.items() if k != "meta"}
        raw = json.dumps(content, sort_keys=True) + (user.get("meta") or {}).get("lastModified", "")
        return 'W/"' + hashlib.sha256(raw.encode()).hexdigest()[:20] + '"'

    @staticmethod
    def _base(request: Request) -> str:
        root = request.scope.get("root_path", "") or ""
        return str(request.url.replace(path=root, query="", fragment="")).rstrip("/")

    def _render(self, user: dict[str, Any], request: Request) -> dict[str, Any]:
        out = copy.deepcopy(user)
        base = self._base(request)
        # Computed (membership lives in the groups) and always present, [] for none: RFC 7643 §2.5 makes an
        # omitted attribute "unassigned", which a client cannot tell from "not reported".
        out["groups"] = self.groups_api.groups_of(user["id"], base)
        out["meta"]["location"] = f"{base}/Users/{user['id']}"
        return out

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and value.strip() == self.token and bool(self.token)

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype not in (SCIM_MEDIA_TYPE, "application/json") and not ctype.endswith("+json"):
            raise ScimError(415, f"Unsupported content type '{ctype}'; use {SCIM_MEDIA_TYPE}")
        if not raw.strip():
            raise ScimError(400, "Request body is empty", "invalidSyntax")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ScimError(400, "Request body is not valid JSON", "invalidSyntax") from exc

    async def _dispatch(self, request: Request) -> Response:
        try:
            if not self._authorised(request):
                raise ScimError(401, "Authentication failed: a valid SCIM bearer token is required")
            return await self._route(request)
        except ScimError as exc:
            return _error_response(exc)
        except Exception:  # pragma: no cover - an emulator bug still answers in SCIM shape
            return _error_response(ScimError(500, "Internal error in the SCIM sandbox"))

    async def _route(self, request: Request) -> Response:
        parts = [p for p in request.path_params.get("path", "").split("/") if p]
        method = request.method.upper()
        if method == "HEAD":
            method = "GET"
        top = parts[0].lower() if parts else ""
        if top == "users":
            if len(parts) == 1:
                if method == "GET":
                    return self._list(request, dict(request.query_params))
                if method == "POST":
                    return await self._create(request)
                raise ScimError(405, f"{method} is not allowed on /Users")
            if len(parts) == 2 and parts[1] == ".search":
                if method == "POST":
                    return await self._search(request)
                raise ScimError(405, f"{method} is not allowed on /Users/.search")
            if len(parts) == 2:
                uid = parts[1]
                if method == "GET":
                    return self._get(request, uid)
                if method == "PUT":
                    return await self._replace(request, uid)
                if method == "PATCH":
                    return await self._patch(request, uid)
                if method == "DELETE":
                    return self._delete(request, uid)
                raise ScimError(405, f"{method} is not allowed on /Users/{{id}}")
        if top == ".search" and len(parts) == 1:
            if method == "POST":
                return await self._search(request, every_type=True)
            raise ScimError(405, f"{method} is not allowed on /.search")
        if top == "serviceproviderconfig" and len(parts) == 1:
            self._only_get(method, "/ServiceProviderConfig")
            return _scim_json(self._spc(request))
        if top == "resourcetypes" and len(parts) <= 2:
            self._only_get(method, "/ResourceTypes")
            return self._resource_types(request, parts[1] if len(parts) == 2 else None)
        if top == "schemas" and len(parts) <= 2:
            self._only_get(method, "/Schemas")
            return self._schemas(request, parts[1] if len(parts) == 2 else None)
        if top == "groups":
            return await self.groups_api.route(request, parts[1:], method)
        raise ScimError(404, "Unknown SCIM endpoint")

    @staticmethod
    def _only_get(method: str, endpoint: str) -> None:
        if method != "GET":
            raise ScimError(405, f"{method} is not allowed on {endpoint}; discovery endpoints are read-only")

    def _find(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None:
            raise ScimError(404, f"User {uid} not found")
        return user

    @staticmethod
    def _check_if_match(request: Request, user: dict[str, Any]) -> None:
        wanted = request.headers.get("if-match")
        if not wanted:
            return
        tags = [t.strip() for t in wanted.split(",")]
        current = user["meta"]["version"]
        if "*" not in tags and current not in tags and current.removeprefix("W/") not in [t.removeprefix("W/") for t in tags]:
            raise ScimError(412, "The resource has changed since it was read (If-Match failed)")

    def _single(self, request: Request, user: dict[str, Any], status: int = 200, extra: dict[str, str] | None = None) -> Response:
        rendered = self._render(user, request)
        params = request.query_params
        rendered = _project(rendered, _split_attr_list(params.get("attributes")), _split_attr_list(params.get("excludedAttributes")))
        headers = {"ETag": user["meta"]["version"], **(extra or {})}
        return _scim_json(rendered, status, headers)

    # ----------------------------------------------------------------- discovery

    def _meta(self, request: Request, resource_type: str, path: str) -> dict[str, Any]:
        return {"resourceType": resource_type, "location": f"{self._base(request)}{path}"}

    def _spc(self, request: Request) -> dict[str, Any]:
        return {
            "schemas": [SPC_SCHEMA],
            "documentationUri": "https://docs.stripe.com/get-started/account/sso/scim",
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
                    "documentationUri": "https://docs.stripe.com/get-started/account/sso/scim",
                    "primary": True,
                }
            ],
            "meta": self._meta(request, "ServiceProviderConfig", "/ServiceProviderConfig"),
        }

    def _user_resource_type(self, request: Request) -> dict[str, Any]:
        return {
            "schemas": [RT_SCHEMA],
            "id": "User",
            "name": "User",
            "description": "Stripe Dashboard team member",
            "endpoint": "/Users",
            "schema": USER_SCHEMA,
            "meta": self._meta(request, "ResourceType", "/ResourceTypes/User"),
        }

    @staticmethod
    def _list_payload(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "schemas": [LIST_SCHEMA],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }

    def _group_resource_type(self, request: Request) -> dict[str, Any]:
        from .scim_groups import GROUP_SCHEMA

        return {
            "schemas": [RT_SCHEMA],
            "id": "Group",
            "name": "Group",
            "description": "Group of Dashboard team members (roles may be mapped to it in the Dashboard)",
            "endpoint": "/Groups",
            "schema": GROUP_SCHEMA,
            "meta": self._meta(request, "ResourceType", "/ResourceTypes/Group"),
        }

    def _resource_types(self, request: Request, rid: str | None) -> Response:
        from .scim_groups import GROUP_SCHEMA

        user_rt, group_rt = self._user_resource_type(request), self._group_resource_type(request)
        if rid is None:
            return _scim_json(self._list_payload([user_rt, group_rt]))
        if rid.lower() in ("user", USER_SCHEMA.lower()):
            return _scim_json(user_rt)
        if rid.lower() in ("group", GROUP_SCHEMA.lower()):
            return _scim_json(group_rt)
        raise ScimError(404, f"Resource type {rid} not found (User and Group are supported)")

    def _schemas(self, request: Request, sid: str | None) -> Response:
        def render(doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "meta": self._meta(request, "Schema", f"/Schemas/{doc['id']}")}

        from .scim_groups import GROUP_SCHEMA_DOC

        docs = [SCHEMA_DOCS[0], GROUP_SCHEMA_DOC, *SCHEMA_DOCS[1:]]
        if sid is None:
            return _scim_json(self._list_payload([render(d) for d in docs]))
        doc = {d["id"].lower(): d for d in docs}.get(sid.lower())
        if doc is None:
            raise ScimError(404, f"Schema {sid} not found")
        return _scim_json(render(doc))

    # ----------------------------------------------------------------- Users: read

    def _get(self, request: Request, uid: str) -> Response:
        user = self._find(uid)
        inm = request.headers.get("if-none-match")
        if inm and user["meta"]["version"] in [t.strip() for t in inm.split(",")]:
            return Response(status_code=304, headers={"ETag": user["meta"]["version"]})
        return self._single(request, user)

    def _list(self, request: Request, params: dict[str, Any], every_type: bool = False) -> Response:
        def as_int(name: str, default: int) -> int:
            raw = params.get(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except (TypeError, ValueError) as exc:
                raise ScimError(400, f"'{name}' must be an integer", "invalidValue") from exc

        start = max(as_int("startIndex", 1), 1)
        count = min(max(as_int("count", MAX_RESULTS), 0), MAX_RESULTS)
        filt = params.get("filter")
        kinds: list[tuple[list[dict[str, Any]], AttrResolver | None, Callable[..., dict[str, Any]]]] = [
            (self._sorted_users(), None, self._render)
        ]
        if every_type:  # POST /.search (RFC 7644 §3.4.3): every resource type, Users then Groups
            from .scim_groups import _group_filter_attr

            kinds.append((self.groups_api._sorted(), _group_filter_attr, self.groups_api._render))
        matched: list[tuple[dict[str, Any], Callable[..., dict[str, Any]]]] = []
        refusals: list[ScimError] = []
        for resources, resolver, render in kinds:
            if filt is not None and str(filt).strip():
                try:
                    pred = parse_filter(str(filt), resolver)
                except ScimError as exc:
                    refusals.append(exc)  # an attribute of the other type only: this type matches nothing
                    continue
                resources = [r for r in resources if pred(r)]
            matched += [(r, render) for r in resources]
        if len(refusals) == len(kinds):
            raise refusals[0]
        total = len(matched)
        page = matched[start - 1 : start - 1 + count] if count else []
        attrs = _split_attr_list(params.get("attributes"))
        excluded = _split_attr_list(params.get("excludedAttributes"))
        payload: dict[str, Any] = {
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(page),
        }
        payload["Resources"] = [_project(render(r, request), attrs, excluded) for r, render in page]
        return _scim_json(payload)

    async def _search(self, request: Request, every_type: bool = False) -> Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "SearchRequest must be a JSON object", "invalidSyntax")
        params = {k: body.get(k) for k in ("filter", "startIndex", "count", "attributes", "excludedAttributes")}
        params = {k: v for k, v in params.items() if v is not None}
        for key in ("attributes", "excludedAttributes"):
            listed = params.get(key)
            if isinstance(listed, list):
                params[key] = ",".join(str(v) for v in listed)
        return self._list(request, params, every_type)

    # ----------------------------------------------------------------- Users: write

    def _build(self, body: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        """Validate a POST/PUT body into the stored attributes (no id/meta)."""
        _check_roles(body)
        fields = {}
        for key, value in body.items():
            k = _strip_urn(str(key)).lower()
            if k in _SIMPLE or k in ("name", "emails"):
                fields[k] = value
        user_name = fields.get("username")
        if not isinstance(user_name, str) or not user_name.strip():
            raise ScimError(400, "'userName' (the member's email) is required", "invalidValue")
        user_name = user_name.strip()
        if base is not None and user_name.lower() != base["userName"].lower():
            raise ScimError(400, EMAIL_DETAIL, "mutability")
        out: dict[str, Any] = {"userName": base["userName"] if base else user_name}
        if fields.get("displayname") is not None:
            out["displayName"] = _str(fields["displayname"], "displayName")
        if fields.get("externalid") is not None:
            out["externalId"] = _str(fields["externalid"], "externalId")
        name = _norm_name(fields.get("name"))
        if name:
            out["name"] = name
        emails = _norm_emails(fields.get("emails"))
        if emails:
            out["emails"] = emails
        if fields.get("active") is not None:
            out["active"] = _bool(fields["active"], "active")
        elif base is None:
            out["active"] = True
        elif "active" in base:
            out["active"] = base["active"]  # PUT never silently re-grants access
        return out

    def _conflict(self, user_name: str, except_id: str | None = None) -> None:
        existing = self.by_email(user_name)
        if existing is not None and existing["id"] != except_id:
            raise ScimError(409, f"A user with userName '{user_name}' already exists", "uniqueness")

    def _finish(self, uid: str, fields: dict[str, Any], created: str, now: str) -> dict[str, Any]:
        user: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": uid}
        for key in ("externalId", "userName", "name", "displayName", "active", "emails"):
            if key in fields:
                user[key] = fields[key]
        user["meta"] = {"resourceType": "User", "created": created, "lastModified": now}
        user["meta"]["version"] = self._etag(user)
        return user

    async def _create(self, request: Request) -> Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "User must be a JSON object", "invalidSyntax")
        fields = self._build(body, None)
        self._conflict(fields["userName"])
        now = _now()
        uid = str(uuid.uuid4())
        user = self._finish(uid, fields, now, now)
        self._store(user, now)
        location = f"{self._base(request)}/Users/{uid}"
        return self._single(request, user, 201, {"Location": location})

    async def _replace(self, request: Request, uid: str) -> Response:
        current = self._find(uid)
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "User must be a JSON object", "invalidSyntax")
        self._check_if_match(request, current)
        fields = self._build(body, current)
        if not self.keep_inactive and fields.get("active") is False:
            return self._deactivated(uid)  # a PUT with active=false is a deactivation too
        user = self._finish(uid, fields, current["meta"]["created"], _now())
        self.users[uid] = user
        return self._single(request, user)

    def _deactivated(self, uid: str) -> Response:
        """Stripe's guide: deactivating a user deletes it; the answer is 204 like DELETE's."""
        self._remove_user(uid)
        return Response(status_code=204)

    def _remove_user(self, uid: str) -> None:
        del self.users[uid]
        self._order.pop(uid, None)
        self.groups_api.drop_member(uid)  # a deleted user is in no group

    def _delete(self, request: Request, uid: str) -> Response:
        user = self._find(uid)
        self._check_if_match(request, user)
        self._remove_user(uid)
        return Response(status_code=204)

    async def _patch(self, request: Request, uid: str) -> Response:
        current = self._find(uid)
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "PatchOp must be a JSON object", "invalidSyntax")
        schemas = body.get("schemas")
        if schemas is not None and PATCH_SCHEMA not in (schemas if isinstance(schemas, list) else [schemas]):
            raise ScimError(400, f"PatchOp requests must use the schema {PATCH_SCHEMA}", "invalidSyntax")
        ops = body.get("Operations", body.get("operations"))
        if not isinstance(ops, list) or not ops:
            raise ScimError(400, "PatchOp requires a non-empty 'Operations' list", "invalidSyntax")
        self._check_if_match(request, current)
        work = {k: copy.deepcopy(v) for k, v in current.items() if k not in ("schemas", "id", "meta")}
        for op in ops:
            _apply_op(work, op)
        if work.get("userName", "").lower() != current["userName"].lower():
            raise ScimError(400, EMAIL_DETAIL, "mutability")
        work["userName"] = current["userName"]
        if work.get("emails") is not None and sum(1 for e in work["emails"] if e.get("primary") is True) > 1:
            raise ScimError(400, "At most one email may be primary", "invalidValue")
        if not self.keep_inactive and work.get("active") is False:
            return self._deactivated(uid)
        changed = {k: v for k, v in current.items() if k not in ("schemas", "id", "meta")} != work
        if changed:
            user = self._finish(uid, work, current["meta"]["created"], _now())
            self.users[uid] = user
        else:
            user = current
        return self._single(request, user)


# --------------------------------------------------------------------------- PATCH engine

_PATH_RE = re.compile(r"^(?P<attr>[A-Za-z][\w$-]*)(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z][\w$-]*))?$")


def _canon_sub(top: str, sub: str) -> str:
    table = {s.lower(): s for s in (_NAME_SUBS if top == "name" else _EMAIL_SUBS)}
    canon = table.get(sub.lower())
    if canon is None:
        raise ScimError(400, f"Unknown sub-attribute '{top}.{sub}'", "invalidPath")
    return canon


def _set_attr(work: dict[str, Any], op: str, top: str, sub: str | None, value: Any) -> None:
    """add/replace of a top-level attribute or one of its sub-attributes (no value filter)."""
    if top in _READ_ONLY:
        if op == "path-less":
            return  # readOnly attributes in a path-less value are ignored
        raise ScimError(400, f"'{top}' is read-only", "mutability")
    if top == "roles":
        raise ScimError(400, ROLES_DETAIL, "invalidValue")
    if top in _IGNORED:
        return
    if top in _SIMPLE:
        key = _SIMPLE[top]
        if sub is not None:
            raise ScimError(400, f"'{key}' has no sub-attributes", "invalidPath")
        if value is None:
            work.pop(key, None)
        elif key == "active":
            work[key] = _bool(value, "active")
        else:
            work[key] = _str(value, key)
        return
    if top == "name":
        if sub is None:
            name = _norm_name(value)
            if op == "add" or op == "path-less-add":
                merged = {**(work.get("name") or {}), **(name or {})}
                name = merged or None
            if name:
                work["name"] = name
            else:
                work.pop("name", None)
        else:
            canon = _canon_sub("name", sub)
            name = dict(work.get("name") or {})
            if value is None:
                name.pop(canon, None)
            else:
                name[canon] = _str(value, f"name.{canon}")
            if name:
                work["name"] = name
            else:
                work.pop("name", None)
        return
    if top == "emails":
        if sub is None:
            emails = _norm_emails(value) or []
            if op in ("add", "path-less-add"):
                existing = list(work.get("emails") or [])
                if any(e.get("primary") is True for e in emails):
                    for e in existing:
                        e.pop("primary", None) if e.get("primary") is True else None
                emails = existing + [e for e in emails if e not in existing]
            if emails:
                work["emails"] = emails
            else:
                work.pop("emails", None)
        else:
            canon = _canon_sub("emails", sub)
            items = list(work.get("emails") or [])
            if not items:
                raise ScimError(400, "No emails to update", "noTarget")
            for e in items:
                e[canon] = _bool(value, "emails.primary") if canon == "primary" else _str(value, f"emails.{canon}")
            work["emails"] = items
        return
    raise ScimError(400, f"Unknown attribute '{top}'", "invalidPath")


def _apply_op(work: dict[str, Any], raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ScimError(400, "Each operation must be a JSON object", "invalidSyntax")
    op = str(raw.get("op", "")).lower()
    if op not in ("add", "replace", "remove"):
        raise ScimError(400, f"Unknown PATCH op '{raw.get('op')}'", "invalidSyntax")
    path = raw.get("path")
    value = raw.get("value")
    if path is None or (isinstance(path, str) and not path.strip()):
        if op == "remove":
            raise ScimError(400, "'remove' requires a path", "noTarget")
        if not isinstance(value, dict):
            raise ScimError(400, "A PATCH operation without path needs an object value", "invalidValue")
        _check_roles(value)
        mode = "path-less-add" if op == "add" else "path-less"
        for key, v in value.items():
            k = _strip_urn(str(key))
            if k.lower().startswith(ENTERPRISE_SCHEMA.lower()):
                continue
            top, _, sub = k.partition(".")
            top_l = top.lower()
            if top_l in _READ_ONLY:
                continue
            _set_attr(work, mode if not sub else "replace", top_l, sub or None, v)
        return
    if not isinstance(path, str):
        raise ScimError(400, "'path' must be a string", "invalidPath")
    stripped = _strip_urn(path.strip())
    if stripped.lower().startswith(ENTERPRISE_SCHEMA.lower()):
        return  # enterprise extension attributes are accepted and dropped
    m = _PATH_RE.match(stripped)
    if not m:
        raise ScimError(400, f"Malformed path '{path}'", "invalidPath")
    top, filt, sub = m.group("attr").lower(), m.group("filter"), m.group("sub")
    if top == "roles":
        raise ScimError(400, ROLES_DETAIL, "invalidValue")
    if op != "remove" and value is None:
        raise ScimError(400, f"'{op}' requires a value", "invalidValue")
    if filt is not None:
        _apply_filtered(work, op, top, filt, sub, value)
        return
    if op == "remove":
        if top in _READ_ONLY or top == "username":
            raise ScimError(400, f"'{path}' cannot be removed", "mutability")
        _set_attr(work, "remove", top, sub, None)
        return
    _set_attr(work, op, top, sub, value)


def _apply_filtered(work: dict[str, Any], op: str, top: str, filt: str, sub: str | None, value: Any) -> None:
    if top in _IGNORED:
        return
    if top != "emails":
        raise ScimError(400, f"Value filters are only supported on 'emails', not '{top}'", "invalidPath")
    try:
        # Re-root the sub-filter: `type eq "work"` is evaluated against each email item.
        tokens = _tokenize(filt)
        item_pred = _item_predicate(tokens)
    except ScimError as exc:
        raise ScimError(400, f"Invalid value filter: {exc.detail}", "invalidFilter") from exc
    emails = list(work.get("emails") or [])
    matches = [i for i, e in enumerate(emails) if item_pred(e)]
    canon = _canon_sub("emails", sub) if sub else None
    if not matches:
        if op == "add":
            new: dict[str, Any] = {}
            eq = _simple_eq(tokens)
            if eq:
                new[eq[0]] = eq[1]
            if canon:
                new[canon] = value
            elif isinstance(value, dict):
                new.update(value)
            emails.append(_norm_email(new))
            work["emails"] = emails
            return
        raise ScimError(400, f"No email matches the filter '{filt}'", "noTarget")
    if op == "remove":
        if canon:
            for i in matches:
                emails[i].pop(canon, None)
        else:
            emails = [e for i, e in enumerate(emails) if i not in matches]
    else:
        for i in matches:
            if canon:
                emails[i][canon] = _bool(value, "emails.primary") if canon == "primary" else _str(value, f"emails.{canon}")
            else:
                upd = _norm_email(value)
                emails[i] = upd if op == "replace" else {**emails[i], **upd}
    emails = [e for e in emails if e]
    if emails:
        work["emails"] = emails
    else:
        work.pop("emails", None)


def _item_predicate(tokens: list[tuple[str, str]]) -> Predicate:
    """Evaluate a value filter against one multi-valued item (`type eq "work"`)."""
    text = " ".join(
        (f"emails.{t[1]}" if t[0] == "word" and i_is_attr else t[1])
        for t, i_is_attr in _mark_attrs(tokens)
    )
    pred = parse_filter(text)
    return lambda item: pred({"emails": [item]})


def _mark_attrs(tokens: list[tuple[str, str]]) -> list[tuple[tuple[str, str], bool]]:
    out = []
    expect_attr = True
    for kind, text in tokens:
        if kind == "word" and expect_attr and text.lower() not in ("not", "and", "or"):
            out.append(((kind, text), True))
            expect_attr = False
            continue
        if kind == "word" and text.lower() in ("and", "or"):
            expect_attr = True
        elif kind in ("lp",):
            expect_attr = True
        out.append(((kind, text), False))
    return out


def _simple_eq(tokens: list[tuple[str, str]]) -> tuple[str, Any] | None:
    if len(tokens) == 3 and tokens[0][0] == "word" and tokens[1][1].lower() == "eq":
        sub = {s.lower(): s for s in _EMAIL_SUBS}.get(tokens[0][1].lower())
        if sub and tokens[2][0] == "str":
            return sub, json.loads(tokens[2][1])
    return None
