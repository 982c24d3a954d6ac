"""The SCIM PATCH engine (RFC 7644 §3.5.2): the PatchOp envelope, then one engine per resource.

Shared: ``op`` is case-insensitive; a path-less ``add``/``replace`` takes an object value; ``remove``
needs a path. Users: simple attributes, ``name.*``, ``emails`` (with value filters such as
``emails[type eq "work"].value``: ``replace`` through a filter matching nothing is ``noTarget``,
``add`` creates the element). Groups: ``members`` (add appends, replace sets, remove clears or, with
a value list as Entra sends, removes those; ``members[value eq "id"]`` removes or swaps one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .filters import Predicate, member_filter_attr, parse_filter, tokenize
from .protocol import ENTERPRISE_SCHEMA, PATCH_SCHEMA, ScimError
from .values import (
    EMAIL_SUBS,
    IGNORED,
    NAME_SUBS,
    READ_ONLY,
    RENAME_DETAIL,
    ROLES_DETAIL,
    SIMPLE,
    as_bool,
    as_str,
    check_roles,
    email_sub_value,
    norm_email,
    norm_emails,
    norm_name,
    strip_group_urn,
    strip_urn,
)

# Validated Users/Groups members from a request value (ids checked against the users).
MembersOf = Callable[[Any], list[dict[str, Any]]]


def operations(body: dict[str, Any]) -> list[Any]:
    """The ``Operations`` of a PatchOp body (its schema checked when given)."""
    schemas = body.get("schemas")
    if schemas is not None and PATCH_SCHEMA not in (schemas if isinstance(schemas, list) else [schemas]):
        raise ScimError(400, f"PatchOp requests must use the schema {PATCH_SCHEMA}", "invalidSyntax")
    ops = body.get("Operations", body.get("operations"))
    if not isinstance(ops, list) or not ops:
        raise ScimError(400, "PatchOp requires a non-empty 'Operations' list", "invalidSyntax")
    return ops


def read_op(raw: Any) -> tuple[str, Any, Any]:
    """(op, path, value) of one operation; path None for a path-less one (then value is an object)."""
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
        return op, None, value
    if not isinstance(path, str):
        raise ScimError(400, "'path' must be a string", "invalidPath")
    return op, path, value


# --------------------------------------------------------------------------- Users

_PATH_RE = re.compile(r"^(?P<attr>[A-Za-z][\w$-]*)(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z][\w$-]*))?$")


def _canon_sub(top: str, sub: str) -> str:
    table = {s.lower(): s for s in (NAME_SUBS if top == "name" else EMAIL_SUBS)}
    canon = table.get(sub.lower())
    if canon is None:
        raise ScimError(400, f"Unknown sub-attribute '{top}.{sub}'", "invalidPath")
    return canon


def _set_attr(work: dict[str, Any], op: str, top: str, sub: str | None, value: Any) -> None:
    """add/replace of a top-level attribute or one of its sub-attributes (no value filter)."""
    if top in READ_ONLY:
        if op == "path-less":
            return  # readOnly attributes in a path-less value are ignored
        raise ScimError(400, f"'{top}' is read-only", "mutability")
    if top == "roles":
        raise ScimError(400, ROLES_DETAIL, "invalidValue")
    if top in IGNORED:
        return
    if top in SIMPLE:
        key = SIMPLE[top]
        if sub is not None:
            raise ScimError(400, f"'{key}' has no sub-attributes", "invalidPath")
        if value is None:
            work.pop(key, None)
        elif key == "active":
            work[key] = as_bool(value, "active")
        else:
            work[key] = as_str(value, key)
        return
    if top == "name":
        if sub is None:
            name = norm_name(value)
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
                name[canon] = as_str(value, f"name.{canon}")
            if name:
                work["name"] = name
            else:
                work.pop("name", None)
        return
    if top == "emails":
        if sub is None:
            emails = norm_emails(value) or []
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
                e[canon] = email_sub_value(canon, value)
            work["emails"] = items
        return
    raise ScimError(400, f"Unknown attribute '{top}'", "invalidPath")


def apply_user_op(work: dict[str, Any], raw: Any) -> None:
    op, path, value = read_op(raw)
    if path is None:
        check_roles(value)
        mode = "path-less-add" if op == "add" else "path-less"
        for key, v in value.items():
            k = strip_urn(str(key))
            if k.lower().startswith(ENTERPRISE_SCHEMA.lower()):
                continue
            top, _, sub = k.partition(".")
            top_l = top.lower()
            if top_l in READ_ONLY:
                continue
            _set_attr(work, mode if not sub else "replace", top_l, sub or None, v)
        return
    stripped = strip_urn(path.strip())
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
        if top in READ_ONLY or top == "username":
            raise ScimError(400, f"'{path}' cannot be removed", "mutability")
        _set_attr(work, "remove", top, sub, None)
        return
    _set_attr(work, op, top, sub, value)


def _apply_filtered(work: dict[str, Any], op: str, top: str, filt: str, sub: str | None, value: Any) -> None:
    if top in IGNORED:
        return
    if top != "emails":
        raise ScimError(400, f"Value filters are only supported on 'emails', not '{top}'", "invalidPath")
    try:
        # Re-root the sub-filter: `type eq "work"` is evaluated against each email item.
        tokens = tokenize(filt)
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
            emails.append(norm_email(new))
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
                emails[i][canon] = email_sub_value(canon, value)
            else:
                upd = norm_email(value)
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
    pred = parse_filter(text)  # the Users resolver: the items are re-rooted under `emails`
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
        sub = {s.lower(): s for s in EMAIL_SUBS}.get(tokens[0][1].lower())
        if sub and tokens[2][0] == "str":
            return sub, json.loads(tokens[2][1])
    return None


# --------------------------------------------------------------------------- Groups


def apply_group_op(work: dict[str, Any], raw: Any, members_of: MembersOf) -> None:
    op, path, value = read_op(raw)
    if path is None:
        for key, v in value.items():
            top = strip_group_urn(str(key)).lower()
            if top in ("id", "meta", "schemas"):
                continue
            _set_group_attr(work, op, top, v, members_of)
        return
    stripped = strip_group_urn(path.strip())
    low = stripped.lower()
    if low.startswith("members[") and low.endswith("]"):
        _filtered_members(work, op, stripped[len("members[") : -1], value, members_of)
        return
    if op != "remove" and value is None:
        raise ScimError(400, f"'{op}' requires a value", "invalidValue")
    _set_group_attr(work, op, low, value, members_of)


def _set_group_attr(work: dict[str, Any], op: str, top: str, value: Any, members_of: MembersOf) -> None:
    if top == "displayname":
        if op == "remove":
            raise ScimError(400, "'displayName' cannot be removed", "mutability")
        name = as_str(value, "displayName").strip()
        if name.lower() != work["displayName"].lower():
            raise ScimError(400, RENAME_DETAIL, "mutability")
        return
    if top == "externalid":
        if op == "remove" or value is None:
            work.pop("externalId", None)
        else:
            work["externalId"] = as_str(value, "externalId")
        return
    if top == "members":
        current = list(work.get("members") or [])
        if op == "remove":
            if value is None:
                work["members"] = []
            else:  # Entra: remove with a value list removes those members
                gone = {m["value"] for m in _members_loose(value)}
                work["members"] = [m for m in current if m["value"] not in gone]
            return
        new = members_of(value)
        if op == "replace":
            work["members"] = new
        else:
            known = {m["value"] for m in current}
            work["members"] = current + [m for m in new if m["value"] not in known]
        return
    if top in ("id", "meta", "schemas"):
        raise ScimError(400, f"'{top}' is read-only", "mutability")
    if top == "roles":
        raise ScimError(400, ROLES_DETAIL, "invalidValue")
    raise ScimError(400, f"Unknown group attribute '{top}'", "invalidPath")


def _members_loose(value: Any) -> list[dict[str, Any]]:
    """Members named for removal: only `value` matters (they may no longer exist as users)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise ScimError(400, "Each member to remove needs a 'value' (a User id)", "invalidValue")
        out.append({"value": item["value"]})
    return out


def _filtered_members(work: dict[str, Any], op: str, filt: str, value: Any, members_of: MembersOf) -> None:
    """`members[value eq "id"]` (RFC 7644 §3.5.2.2): remove (or, on replace, swap) matching members."""
    try:
        pred = parse_filter(filt, member_filter_attr)
    except ScimError as exc:
        raise ScimError(400, f"Invalid value filter: {exc.detail}", "invalidFilter") from exc
    current = list(work.get("members") or [])
    if op == "remove":
        work["members"] = [m for m in current if not pred(m)]
        return
    if op == "replace":
        if not any(pred(m) for m in current):
            raise ScimError(400, f"No member matches the filter '{filt}'", "noTarget")
        kept = [m for m in current if not pred(m)]
        new = members_of(value)
        known = {m["value"] for m in kept}
        work["members"] = kept + [m for m in new if m["value"] not in known]
        return
    raise ScimError(400, "Use 'add' with path 'members' to add members", "invalidPath")
