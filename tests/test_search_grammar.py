"""Stripe's search grammar as documented: a space means AND, AND/OR in any case, never both.

https://docs.stripe.com/search#search-query-language: "You can combine multiple query clauses in a
search by either separating them with a space, or using the AND or OR keywords (case insensitive).
By default, the API combines clauses with AND logic. AND and OR operators are mutually exclusive."
Our validator (search_query.py) and the sandbox's parser (sandbox/search.py) must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stripe_identity_mcp.sandbox import FIXED_IDS
from stripe_identity_mcp.sandbox.forms import StripeError
from stripe_identity_mcp.sandbox.search import parse_query
from stripe_identity_mcp.search_query import QueryError, clause, conjunction, validate
from tests.conftest import make_settings, mcp_client


def validator_accepts(query: str) -> bool:
    try:
        validate(query)
    except QueryError:
        return False
    return True


def sandbox_accepts(query: str) -> bool:
    try:
        parse_query(query)
    except StripeError:
        return False
    return True


@pytest.mark.parametrize(
    ("query", "conj"),
    [
        ("email:'a@b.c' name:'x'", "AND"),  # the query
        ("email:'a@b.c'   name:'x'\tphone:'+1 415'", "AND"),
        ("email:'a@b.c' and name:'x'", "AND"),
        ("email:'a@b.c' And name:'x' aNd created>1700000000", "AND"),
        ("email:'a@b.c' or email:'d@e.f'", "OR"),
        ("email:'a@b.c' Or email:'d@e.f' OR email:'g@h.i'", "OR"),
        ("email:'a@b.c' -name:'x'", "AND"),
        ("metadata['plan']:'pro' created>=1 created<=2", "AND"),
        ("name:'Tom OR Jerry' email:'t@j.com'", "AND"),  # keywords inside values are values
        ("  name~'abc'  ", "AND"),
    ],
)
def test_documented_queries_are_accepted_by_both(query, conj):
    assert validator_accepts(query) and sandbox_accepts(query), query
    assert conjunction(query) == conj == parse_query(query).conj


@pytest.mark.parametrize(
    "query",
    [
        "email:'a@b.c' AND name:'x' OR phone:'y'",
        "email:'a@b.c' name:'x' OR phone:'y'",  # a space is AND: mixing it with OR is mixing
        "email:'a@b.c' or name:'x' name:'y'",
        "email:'a@b.c' and name:'x' or phone:'y'",
        "email:'a@b.c' AND",
        "email:'a@b.c' or ",
        "email:'a@b.c'AND name:'x'",
        "email:'a@b.c'name:'x'",
        "email:'a@b.c' AND AND name:'x'",
        "metadata['k']~'abc'",
        " ".join(["name~'abc'"] * 11),  # Stripe allows at most 10 clauses
    ],
)
def test_invalid_queries_are_refused_by_both(query):
    assert not validator_accepts(query) and not sandbox_accepts(query), query


VALID = [
    "email:'a@b.c'", 'name:"x y"', "name~'abc'", "phone:'+1 415'", "metadata['k']:'v'", 'metadata["plan"]:"pro"',
    "created>1700000000", "created<=5", "-email:'z@z.z'", "-created>5", "name:'and'", "name:'a OR b'",
]
INVALID = [
    "colour:'red'", "name~'ab'", "email:bare", "created:'x'", "metadata['k']~'abc'", "name>'x'", "email:'open",
    "metadata:'v'", "AND", "or",
]
AND_JOINS = [" ", "  ", "\t", "\n", " AND ", " and ", " And "]
OR_JOINS = [" OR ", " or ", " oR "]
ODD_JOINS = ["", ",", " , ", " AND AND ", "AND ", " ANDx "]


# Strategies built once: hypothesis caches what it learns about a strategy on the object, so one
# rebuilt for every draw (two dozen per query) was most of this test's CPU.
_FAMILIES = [AND_JOINS, OR_JOINS, AND_JOINS + OR_JOINS, AND_JOINS + OR_JOINS + ODD_JOINS]
_PICK_FAMILY = st.sampled_from([st.sampled_from(f) for f in _FAMILIES])  # draws a join strategy
_ONE_IN_15 = st.integers(0, 14)
_VALID, _INVALID, _LENGTH = st.sampled_from(VALID), st.sampled_from(INVALID), st.integers(min_value=0, max_value=11)
_ENDING, _START = st.sampled_from(["", "", "", " ", " AND", " or "]), st.sampled_from(["", " "])


@st.composite
def queries(draw: Any) -> str:
    """Mostly well-formed queries (one join family), with a few broken clauses, joins and endings."""
    family = draw(_PICK_FAMILY)

    def clause() -> str:
        return draw(_INVALID) if draw(_ONE_IN_15) == 0 else draw(_VALID)

    parts = [clause()]
    for _ in range(draw(_LENGTH)):
        parts += [draw(family), clause()]
    ending = draw(_ENDING)
    return draw(_START) + "".join(parts) + ending


@given(queries())
@settings(max_examples=1500)
def test_validator_and_sandbox_agree(query):
    """Whatever the validator lets through, the sandbox (our Stripe) accepts, and vice versa."""
    accepted = validator_accepts(query)
    assert accepted == sandbox_accepts(query), query
    if accepted:
        assert conjunction(query) == parse_query(query).conj, query


# --- through the MCP client, checked against the sandbox's own data ---------------------------------
@pytest.mark.anyio
async def test_implicit_and_and_lowercase_keywords_search_for_real(sandbox):
    store = sandbox.sandbox.stores["test"]

    def expected(pred: Any) -> set[str]:
        return {i for i, c in store.customers.items() if not c.get("deleted") and pred(c)}

    jane_doe = expected(lambda c: (c.get("email") or "").lower() == "jane@acme.com" and c.get("name") == "Jane Doe")
    jane_or_omar = expected(lambda c: (c.get("email") or "").lower() in ("jane@acme.com", "omar@globex.com"))
    assert FIXED_IDS["jane"] in jane_doe and FIXED_IDS["jane_variant"] not in jane_doe
    async with mcp_client(make_settings(sandbox)) as client:

        async def found(args: dict[str, Any]) -> set[str]:
            r = await client.call_tool("search_customers", {"limit": 100, **args})
            assert not r.is_error, r.content[0].text
            return {c["id"] for c in r.structured_content["customers"]}

        assert await found({"query": "email:'jane@acme.com' name:'Jane Doe'"}) == jane_doe
        assert await found({"query": "email:'jane@acme.com' and name:'Jane Doe'"}) == jane_doe
        assert await found({"query": "email:'jane@acme.com' or email:'omar@globex.com'"}) == jane_or_omar
        assert await found({"query": "email:'jane@acme.com'", "name_contains": "Doe"}) == jane_doe
        # a value containing " OR " is a value, not an OR query: combining it with fields is fine
        assert await found({"query": "name:'Tom OR Jerry'", "metadata_key": "k", "metadata_value": "v"}) == set()
        r = await client.call_tool("search_customers", {"query": "email:'a@b.c' or name:'x'", "name_contains": "Doe"})
        assert r.is_error and "OR" in r.content[0].text
        r = await client.call_tool("search_customers", {"query": "email:'a@b.c' name:'x' OR phone:'y'"})
        assert r.is_error and "cannot be mixed" in r.content[0].text


@pytest.mark.anyio
async def test_fields_added_to_a_full_query_are_checked_before_stripe(empty_sandbox):
    ten = " ".join(f"metadata['k{i}']:'v'" for i in range(10))
    before = empty_sandbox.sandbox.requests
    async with mcp_client(make_settings(empty_sandbox)) as client:
        alone = await client.call_tool("search_customers", {"query": ten})
        r = await client.call_tool("search_customers", {"query": ten, "name_contains": "Doe"})
    assert not alone.is_error, alone.content[0].text
    assert r.is_error and "at most 10 clauses" in r.content[0].text, r.content[0].text
    assert empty_sandbox.sandbox.requests == before + 1  # only the valid query was sent


@given(
    name=st.text(min_size=3, max_size=30),
    key=st.text(min_size=1, max_size=40).filter(lambda k: "[" not in k and "]" not in k),
    value=st.text(max_size=30),
)
@settings(max_examples=300)
def test_structured_fields_always_build_a_valid_query(name, key, value):
    """search_customers' own clauses (escaped for the caller) never trip the validator or the sandbox."""
    query = " AND ".join([clause("name", "~", name), clause("metadata", ":", value, key=key)])
    assert validator_accepts(query) and sandbox_accepts(query), query
    parsed = parse_query(query)
    assert [c.value for c in parsed.clauses] == [name, value] and parsed.clauses[1].key == key
