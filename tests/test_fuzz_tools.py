"""Fuzz every tool through a real MCP client: no input may trigger an unexpected exception (SPEC §6).

One seeded sandbox and one long-lived MCP session (writes on, SCIM configured, confirm=param-only,
export dir and audit log in a tmp dir) are driven from hypothesis' sync `@given` tests through an
anyio blocking portal. For every tool in tools/list two strategies run:

* schema-shaped arguments (the published input schema's keys and types, filled with hostile values:
  empty/long/unicode/NUL strings, traversal, quotes, card-like digit runs, ids with the wrong prefix
  or the right prefix but unknown, real ids of the other mode, huge/negative ints, floats, null);
* arbitrary JSON objects with extra / missing keys.

Every answer must be a success or `Error executing tool NAME: <message>` (never the bare crash
text), never show a traceback or a secret, the session must still answer a ping, and the server
must not log an unexpected exception. Destructive tools get a matching `confirm` only for targets
that are not seeded objects, so the seed survives.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripe_identity_mcp.server import build_server
from stripe_identity_mcp.toolsets import all_tools
from tests.conftest import (
    SANDBOX_KEY,
    SCIM_TOKEN,
    make_settings,
    mcp_client,
    running_sandbox,
)

SECRETS = (SANDBOX_KEY, SCIM_TOKEN, "sk_live_sandbox", "rk_test_sandbox")
EXAMPLES = 80

pytestmark = pytest.mark.filterwarnings("ignore:ping is removed")

def _registered_tools() -> tuple[str, ...]:
    """Every tool of the registry (toolsets/__init__.py): a new tool is fuzzed too. The harness's
    session (every toolset, writes on) must list exactly these (test_every_tool_is_fuzzed)."""
    return tuple(sorted(td.name for td in all_tools()))


TOOLS = _registered_tools()


class _Errors(logging.Handler):
    """Collects ERROR records (and any 'unexpected exception') from the server's loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if (
            record.levelno >= logging.ERROR
            or "unexpected exception" in record.getMessage()
        ):
            self.records.append(record)


class Harness:
    def __init__(
        self,
        portal: BlockingPortal,
        client: Any,
        tools: dict[str, Any],
        pools: dict[str, list[str]],
    ):
        self.portal, self.client, self.tools, self.pools = portal, client, tools, pools
        self.errors = _Errors()
        self.outcomes: dict[str, Counter[str]] = {}
        self.sent: list[str] = []

    def call(self, name: str, arguments: dict[str, Any]) -> None:
        self.errors.records.clear()
        result = self.portal.call(self._call, name, arguments)
        kind = (
            "ok"
            if not result.is_error
            else "invalid"
            if "validation error" in str(result.content)
            else "refused"
        )
        self.outcomes.setdefault(name, Counter())[kind] += 1
        texts = [getattr(c, "text", "") for c in result.content]
        joined = "\n".join(texts)
        where = f"{name}({arguments!r:.600})"
        if result.is_error:
            assert texts, where
            text = texts[0]
            assert text != f"Error executing tool {name}", (
                f"unexpected exception in {where}"
            )
            assert re.match(rf"Error executing tool {re.escape(name)}: \S", text), (
                f"{where} -> {text!r:.300}"
            )
        assert "Traceback" not in joined, f"{where} -> {joined[:500]}"
        self.sent.append(repr(arguments))
        for (
            secret
        ) in SECRETS:  # (an echo of data some call stored, e.g. a name, is not a leak)
            assert secret not in joined or any(secret in sent for sent in self.sent), (
                f"{where} leaked {secret}"
            )
        crashes = [r.getMessage() for r in self.errors.records]
        assert not crashes, f"{where} logged {crashes}"
        self.portal.call(self.client.send_ping)  # the session is still usable

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        with anyio.fail_after(60):
            return await self.client.call_tool(name, arguments)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("fuzz")
    errors_handler = None
    with running_sandbox() as sb:
        state = sb.app.state.sandbox
        test, live = state.stores["test"], state.stores["live"]
        named = [
            i
            for e in (
                "jane@acme.com",
                "Jane@Acme.com",
                "omar@globex.com",
                "lee@initech.com",
            )
            for i in test.email_idx.get(e, [])
        ]
        deleted = [i for i, rec in test.customers.items() if rec.get("deleted")][:3]
        pools = {
            "cus": named
            + deleted
            + list(test.customers)[:5]
            + list(live.customers)[:3],
            "pm": list(test.pms)[:4] + list(live.pms)[:2],
            "acct": [a["id"] for a in test.accounts[:3]]
            + [a["id"] for a in live.accounts[:2]],
            "member": list(state.scim.users)[:4],
            "group": list(state.scim.groups)[:3],
        }
        settings_ = make_settings(
            sb,
            allow_writes=True,
            confirm="param-only",
            export_dir=str(tmp / "exports"),
            audit_log=str(tmp / "audit.jsonl"),
            max_retries=1,
            retry_deadline_s=5.0,
        )
        build_server(settings_)  # fails early on bad settings
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(mcp_client(settings_)) as client,
        ):
            listed = portal.call(client.list_tools).tools
            tools = {t.name: t for t in listed}
            h = Harness(portal, client, tools, pools)
            errors_handler = h.errors
            loggers = [logging.getLogger(n) for n in ("mcp", "stripe_identity_mcp")]
            for lg in loggers:
                lg.addHandler(errors_handler)
            try:
                yield h
            finally:
                for lg in loggers:
                    lg.removeHandler(errors_handler)
        for tool_name, counts in sorted(h.outcomes.items()):
            print(f"{tool_name}: {dict(counts)}")
        # The seed survived: the fuzzer never confirmed a destructive call on a seeded target.
        assert test.email_idx.get("omar@globex.com")


# ------------------------------------------------------------------------------------ strategies

HOSTILE = [
    "",
    " ",
    "x" * 5000,
    "é漢字🙂\u202e",
    "\x00",
    "a\x00b",
    "../../etc/passwd",
    "..",
    "/",
    "%2F..%2Fx",
    "'",
    '"',
    "\\",
    "\n",
    "a\r\nb",
    "4242424242424242",
    "4242 4242 4242 4242",
    "note 4000-0566-5566-5556 ok",
    "cus_",
    "acct_",
    "pm_",
    "cus_DOESNOTEXIST0",
    "acct_NOPE0",
    "pm_NOPE0",
    "sub_123",
    "cus_..%2F",
    "email:'x' OR",
    "metadata['",
    "a@b",
    "@",
    "a@b@c",
    "jane@acme.com",
    "Jane@Acme.com",
    "omar@globex.com",
    "lee@initech.com",
    "priya@umbrella.com",
    "<script>",
    "NaN",
    "-1",
    "0",
    "99999999999999999999",
    "1e309",
    "²³",
    "١٢٣",
    "9999-12-31T23:59:59",
    "0001-01-01",
    "2024-13-45",
    "http://evil.example",
    "javascript:alert(1)",
    "sk_live_sandbox",
    'userName eq "x"',
    "lone \ud800 surrogate",
]
# The SDK client cannot even serialise a lone surrogate in a dict key (values reach the server).
HOSTILE_KEYS = [h for h in HOSTILE if "\ud800" not in h]
INTS = [
    0,
    -1,
    1,
    100,
    101,
    500,
    501,
    2**31,
    2**63,
    -(2**63),
    10**30,
    253402300800,
    -62135596801,
]


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    """One strategy object for the process: hypothesis caches what it computes about a strategy on
    the object, and a recursive strategy rebuilt for every draw recomputed it (a tenth of the
    fuzzer's CPU)."""
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(INTS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(HOSTILE),
        st.text(max_size=30),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(max_size=10), inner, max_size=4),
        ),
        max_leaves=8,
    )


def strings(
    schema: dict[str, Any], pools: dict[str, list[str]]
) -> st.SearchStrategy[str]:
    if "enum" in schema:
        return st.one_of(
            st.sampled_from(schema["enum"]),
            st.sampled_from(schema["enum"]),
            st.sampled_from(HOSTILE),
        )
    ids = [i for pool in pools.values() for i in pool]
    hostile = st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=40),
        st.sampled_from(ids),
        st.from_regex(r"(cus|acct|pm|seti|sub|bpc)_[A-Za-z0-9]{0,24}", fullmatch=True),
    )
    if "pattern" not in schema:
        return hostile
    pattern = schema["pattern"]
    fitting = [i for i in ids + HOSTILE if re.fullmatch(pattern, i)]
    valid = st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) < 300)
    # Mostly values the schema accepts (so the tool body runs), sometimes not.
    return st.one_of(
        valid,
        st.sampled_from(fitting) if fitting else valid,
        st.sampled_from(fitting) if fitting else valid,
        hostile,
    )


def for_schema(
    schema: dict[str, Any], pools: dict[str, list[str]], wrong: bool = True
) -> st.SearchStrategy[Any]:
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if kind == "string" or "enum" in schema:
            options.append(strings(schema, pools))
        elif kind == "integer":
            lo, hi = schema.get("minimum", -(10**6)), schema.get("maximum", 10**6)
            options += [
                st.integers(lo, hi),
                st.integers(lo - 2, hi + 2),
                st.sampled_from(INTS),
            ]
        elif kind == "number":
            options.append(st.floats(allow_nan=False, allow_infinity=False))
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "object":
            values = for_schema(
                schema.get("additionalProperties") or {"type": "string"},
                pools,
                wrong=False,
            )
            keys = st.one_of(st.sampled_from(HOSTILE_KEYS), st.text(max_size=45))
            options += [
                st.dictionaries(keys, values, max_size=6),
                st.dictionaries(
                    st.from_regex(r"k[0-9]{1,3}", fullmatch=True),
                    values,
                    min_size=45,
                    max_size=55,
                ),
            ]
        elif kind == "array":
            options.append(
                st.lists(
                    for_schema(
                        schema.get("items") or {"type": "string"}, pools, wrong=False
                    ),
                    max_size=5,
                )
            )
    if not options:
        options.append(json_values())
    return maybe_wrong(st.one_of(*options)) if wrong else st.one_of(*options)


def maybe_wrong(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The declared type 9 times in 10; otherwise null or a wrong-typed JSON value."""
    wrong = st.one_of(st.none(), json_values())
    return st.integers(0, 9).flatmap(lambda n: value if n else wrong)


TARGETS = ("customer_id", "payment_method", "member_id", "email")


def schema_shaped(tool: Any, pools: dict[str, list[str]], protected: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments shaped by the tool's input schema (each property's strategy built once per tool)."""
    props: dict[str, Any] = tool.input_schema.get("properties", {})
    return _schema_shaped(tool, {name: for_schema(sub, pools) for name, sub in props.items()}, protected)


@st.composite
def _schema_shaped(
    draw: st.DrawFn, tool: Any, strategies: dict[str, st.SearchStrategy[Any]], protected: set[str]
) -> dict[str, Any]:
    schema = tool.input_schema
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    args: dict[str, Any] = {}
    for name in props:
        if name in required or draw(st.booleans()):
            args[name] = draw(strategies[name], label=name)
    destructive = (
        bool(tool.annotations and tool.annotations.destructive_hint)
        or "confirm" in props
    )
    if destructive and "confirm" in props and draw(st.booleans()):
        target = next((args[t] for t in TARGETS if isinstance(args.get(t), str)), None)
        # A matching confirm only for targets that are not seeded objects (the seed must survive).
        if target is not None and target not in protected and "@" not in target:
            args["confirm"] = target
    return args


def arbitrary(tool: Any) -> st.SearchStrategy[dict[str, Any]]:
    names = list(tool.input_schema.get("properties", {})) or ["x"]
    keys = st.one_of(st.sampled_from(names), st.text(max_size=12))
    return _arbitrary(st.dictionaries(keys, json_values(), max_size=6))


@st.composite
def _arbitrary(draw: st.DrawFn, objects: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    args = draw(objects)
    return {k: v for k, v in args.items() if k != "confirm" or draw(st.booleans())}


# ------------------------------------------------------------------------------------ tests


def test_every_tool_is_fuzzed(harness: Harness) -> None:
    assert set(harness.tools) == set(TOOLS)


def _protected(h: Harness) -> set[str]:
    return {i for pool in h.pools.values() for i in pool}


@pytest.mark.parametrize("name", TOOLS)
def test_schema_shaped_arguments(harness: Harness, name: str) -> None:
    tool = harness.tools[name]

    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(schema_shaped(tool, harness.pools, _protected(harness)))
    def run(arguments: dict[str, Any]) -> None:
        harness.call(name, arguments)

    run()


@pytest.mark.parametrize("name", TOOLS)
def test_arbitrary_json_arguments(harness: Harness, name: str) -> None:
    tool = harness.tools[name]

    @settings(
        max_examples=EXAMPLES // 2,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(arbitrary(tool))
    def run(arguments: dict[str, Any]) -> None:
        harness.call(name, arguments)

    run()
