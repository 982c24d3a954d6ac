"""SCIM filters (RFC 7644 §3.4.2.2 subset): the parser, and which attributes of each resource filter.

``eq ne co sw ew gt ge lt le pr``, ``and``/``or``/``not(...)`` and parentheses. A resolver maps an
attribute path to (getter, kind, caseExact); an unknown attribute, value-path brackets or a syntax
error is 400 ``invalidFilter``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .protocol import ScimError
from .values import EMAIL_SUBS, NAME_SUBS, SIMPLE, strip_group_urn, strip_urn

Getter = Callable[[dict[str, Any]], list[Any]]
Predicate = Callable[[dict[str, Any]], bool]
AttrResolver = Callable[[str], tuple[Getter, str, bool]]

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) | (?P<lb>\[) | (?P<rb>\]) |
        (?P<str>"(?:[^"\\]|\\.)*") |
        (?P<word>[A-Za-z0-9_:.$\-+]+)
    )""",
    re.VERBOSE,
)
_COMPARE_OPS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}


def tokenize(text: str) -> list[tuple[str, str]]:
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



_META = {"meta.created": "created", "meta.lastmodified": "lastModified", "meta.resourcetype": "resourceType"}


def _meta_attr(p: str) -> tuple[Getter, str, bool] | None:
    """``meta.created``/``meta.lastModified``/``meta.resourceType``, filterable on every resource."""
    key = _META.get(p)
    if key is None:
        return None
    return (lambda r, k=key: [(r.get("meta") or {}).get(k)], "string", True)  # type: ignore[misc]


def user_filter_attr(path: str) -> tuple[Getter, str, bool]:
    p = strip_urn(path).lower()
    if p == "id":
        return (lambda u: [u.get("id")], "string", True)
    if p == "externalid":
        return (lambda u: [u.get("externalId")], "string", True)
    if p in ("username", "displayname"):
        key = SIMPLE[p]
        return (lambda u, k=key: [u.get(k)], "string", False)  # type: ignore[misc]
    if p == "active":
        return (lambda u: [u.get("active")], "boolean", False)
    if p.startswith("name."):
        sub = {s.lower(): s for s in NAME_SUBS}.get(p[5:])
        if sub:
            return (lambda u, s=sub: [(u.get("name") or {}).get(s)], "string", False)  # type: ignore[misc]
    if p == "emails" or p.startswith("emails."):
        sub_l = p[7:] if p.startswith("emails.") else "value"
        sub = {s.lower(): s for s in EMAIL_SUBS}.get(sub_l)
        if sub:
            kind = "boolean" if sub == "primary" else "string"
            return (lambda u, s=sub: [e.get(s) for e in (u.get("emails") or [])], kind, False)  # type: ignore[misc]
    meta = _meta_attr(p)
    if meta is not None:
        return meta
    raise ScimError(400, f"Filtering on attribute '{path}' is not supported", "invalidFilter")


def group_filter_attr(path: str) -> tuple[Getter, str, bool]:
    p = strip_group_urn(path).lower()
    if p == "id":
        return (lambda g: [g.get("id")], "string", True)
    if p == "externalid":
        return (lambda g: [g.get("externalId")], "string", True)
    if p == "displayname":
        return (lambda g: [g.get("displayName")], "string", False)
    if p in ("members", "members.value"):
        return (lambda g: [m.get("value") for m in g.get("members") or []], "string", True)
    if p in ("members.display",):
        return (lambda g: [m.get("display") for m in g.get("members") or []], "string", False)
    meta = _meta_attr(p)
    if meta is not None:
        return meta
    raise ScimError(400, f"Filtering groups on attribute '{path}' is not supported", "invalidFilter")


def member_filter_attr(path: str) -> tuple[Getter, str, bool]:
    """A group's ``members[...]`` value filter, over one member."""
    p = path.lower()
    if p == "value":
        return (lambda m: [m.get("value")], "string", True)
    if p == "display":
        return (lambda m: [m.get("display")], "string", False)
    if p == "type":
        return (lambda m: [m.get("type")], "string", False)
    raise ScimError(400, f"Unknown member sub-attribute '{path}'", "invalidFilter")


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



class _FilterParser:
    def __init__(self, text: str, resolver: AttrResolver | None = None) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.resolver = resolver or user_filter_attr  # Users by default; Groups pass their own attributes

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

