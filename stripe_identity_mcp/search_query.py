"""Stripe search query language for customers: validation of raw queries and safe building.

Grammar (Stripe's documented subset for customers, https://docs.stripe.com/search):
    query  := clause (join clause)*                   -- at most 10 clauses
    join   := whitespace | " AND " | " OR "           -- keywords in any case; whitespace means AND;
                                                      -- AND and OR are mutually exclusive
    clause := ["-"] field op value
    field  := "email" | "name" | "phone" | "created" | "metadata['key']" | 'metadata["key"]'
    op     := ":" | "~" | ">" | "<" | ">=" | "<="
    value  := 'single' | "double" quoted (backslash escapes) | integer (created) | null
"""

from __future__ import annotations

import re
from typing import Literal

from stripe_identity_mcp.cards import excerpt

FIELDS = ("email", "name", "phone", "created", "metadata")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<neg>-)?
        (?P<field>[a-z_]+)(?:\[(?P<mq>['"])(?P<mkey>(?:\\.|(?!(?P=mq)).)+)(?P=mq)\])?
        (?P<op>>=|<=|:|~|>|<)
        (?:(?P<q>['"])(?P<sval>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<num>-?\d+)|(?P<null>null))
    )""",
    re.VERBOSE | re.DOTALL,  # a quoted value may hold a newline (a name_contains with one, say)
)
_JOIN = re.compile(r"\s+(AND|OR)\s+", re.IGNORECASE)
_DANGLING = re.compile(r"\s+(AND|OR)$", re.IGNORECASE)
MAX_CLAUSES = 10


class QueryError(ValueError):
    """A query Stripe would reject; the message points at the problem."""


def validate(query: str) -> str:
    """Return the query unchanged when it follows the grammar; raise QueryError saying where it breaks."""
    text, _ = _parse(query)
    return text


def conjunction(query: str) -> Literal["AND", "OR"]:
    """How a valid query joins its clauses ("AND" also for one clause or clauses joined by spaces)."""
    return _parse(query)[1]


def _parse(query: str) -> tuple[str, Literal["AND", "OR"]]:
    text = query.strip()
    if not text:
        raise QueryError("query is empty; e.g. email:'jane@acme.com' or name~'jane'")
    if len(text) > 5000:
        raise QueryError("query is longer than Stripe's 5000-character limit")
    pos, joins, clauses = 0, set(), 0
    while True:
        match = _TOKEN.match(text, pos)
        if not match:
            raise QueryError(f"cannot parse the query at character {pos + 1}: {excerpt(text[pos:], 30)}")
        field, op = match["field"], match["op"]
        if field not in FIELDS:
            raise QueryError(f"unknown field {excerpt(field)}; customers support {', '.join(FIELDS)}")
        if field == "metadata" and not match["mkey"]:
            raise QueryError("metadata needs a key: metadata['key']:'value'")
        if field != "metadata" and match["mkey"]:
            raise QueryError(f"{field} takes no [key]")
        if op in (">", "<", ">=", "<=") and field != "created":
            raise QueryError(f"{op} compares numbers: only created>1700000000 style clauses use it")
        if field == "created" and match["num"] is None:
            raise QueryError("created takes a unix timestamp, e.g. created>1700000000")
        if field != "created" and match["num"] is not None:
            raise QueryError(f"quote the value of {field}, e.g. {field}:'…'")
        if op == "~" and field == "metadata":
            raise QueryError("metadata matches exactly: use metadata['key']:'value' (~ works on email, name, phone)")
        if op == "~" and (match["sval"] is None or len(match["sval"]) < 3):
            raise QueryError("~ (substring) needs a quoted value of at least 3 characters")
        clauses += 1
        if clauses > MAX_CLAUSES:
            raise QueryError(f"a query can have at most {MAX_CLAUSES} clauses")
        pos = match.end()
        if pos >= len(text):
            break
        dangling = _DANGLING.match(text, pos)
        if dangling:
            raise QueryError(f"the query ends after {dangling.group(1).upper()}")
        join = _JOIN.match(text, pos)
        if join:
            joins.add(join.group(1).upper())
            pos = join.end()
        elif text[pos].isspace():
            joins.add("AND")  # Stripe: clauses separated by a space are combined with AND
        else:
            raise QueryError(f"expected a space, AND or OR at character {pos + 1}: {excerpt(text[pos:], 30)}")
        if len(joins) > 1:
            raise QueryError(
                "AND and OR cannot be mixed in one query (a space between clauses means AND; "
                "Stripe has no parentheses)"
            )
    return text, "OR" if joins == {"OR"} else "AND"


def quote(value: str) -> str:
    """Quote a user value for the query language (escape backslashes and single quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def clause(field: str, op: str, value: str | int, *, key: str | None = None) -> str:
    name = f"metadata[{quote(key)}]" if key is not None else field
    return f"{name}{op}{value if isinstance(value, int) else quote(value)}"
