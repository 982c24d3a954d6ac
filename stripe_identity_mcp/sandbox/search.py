"""Customer search: a subset of Stripe's search query language.

Supported: ``email``, ``name``, ``phone`` with ``:`` (exact, case-insensitive) and ``~``
(substring, >= 3 chars); ``metadata['key']:'value'`` (exact); ``created`` with ``:``, ``>``,
``>=``, ``<``, ``<=`` and an integer; a leading ``-`` negates a clause; clauses joined by
whitespace (= AND), ``AND`` or ``OR`` in any case (mixing AND and OR is an error: Stripe's docs
say they are mutually exclusive, and there are no parentheses). At most 10 clauses.

Indexing lag: every customer record carries ``changed_at`` (wall time of the last
create/update) and ``prev`` (the search-visible snapshot from before that change, or ``None``
for a customer created within the lag window). While ``now - changed_at < search_lag_s`` search
evaluates ``prev`` instead of the live record, so a new customer is invisible and an updated one
is found under its OLD values, like Stripe's asynchronous index. Deleted customers are never found.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from .forms import StripeError

FIELDS = {"email", "name", "phone", "created", "metadata"}
_DOC = "See https://stripe.com/docs/search#search-query-language for more information."


def _err(msg: str) -> StripeError:
    return StripeError(400, msg, code="parameter_invalid", param="query", doc_code=False)


@dataclass
class Clause:
    field: str
    key: str | None
    op: str
    value: Any
    negate: bool

    def match(self, view: dict[str, Any]) -> bool:
        res = self._match(view)
        return not res if self.negate else res

    def _match(self, view: dict[str, Any]) -> bool:
        if self.field == "created":
            c = view["created"]
            v = self.value
            return {":": c == v, ">": c > v, ">=": c >= v, "<": c < v, "<=": c <= v}[self.op]
        if self.field == "metadata":
            return (view.get("metadata") or {}).get(self.key) == self.value
        actual = view.get(self.field)
        if actual is None:
            return False
        if self.op == ":":
            return actual.lower() == self.value.lower()
        return self.value.lower() in actual.lower()


@dataclass
class Query:
    clauses: list[Clause]
    conj: str  # "AND" | "OR"

    def match(self, view: dict[str, Any]) -> bool:
        if self.conj == "OR":
            return any(c.match(view) for c in self.clauses)
        return all(c.match(view) for c in self.clauses)

    def exact_emails(self) -> set[str] | None:
        """Lower-cased emails that any match must have (for index use), else None."""
        if self.conj == "AND":
            for c in self.clauses:
                if c.field == "email" and c.op == ":" and not c.negate:
                    return {c.value.lower()}
            return None
        if all(c.field == "email" and c.op == ":" and not c.negate for c in self.clauses):
            return {c.value.lower() for c in self.clauses}
        return None


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def eof(self) -> bool:
        self.ws()
        return self.i >= len(self.s)

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def ident(self) -> str:
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.s, self.i)
        if not m:
            raise _err(f"Invalid query: expected a field name at position {self.i} ({self.s[self.i:self.i + 10]!r}). {_DOC}")
        self.i = m.end()
        return m.group(0)

    def quoted(self) -> str:
        q = self.peek()
        if q not in ("'", '"'):
            raise _err(f"Invalid query: expected a quoted value at position {self.i}. String values must be wrapped in single or double quotes. {_DOC}")
        self.i += 1
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == q:
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise _err(f"Invalid query: unterminated string starting at position {self.i - len(out) - 1}. {_DOC}")


# A join keyword: AND / OR in any case, followed by whitespace or the end (anything else, like
# `orders:` or `ANDname`, is the start of the next clause and gets the field error).
_WORD = re.compile(r"(AND|OR)(?=\s|$)", re.IGNORECASE)


def parse_query(text: str) -> Query:
    if text is None or not str(text).strip():
        raise _err(f"Invalid query: the query is empty. {_DOC}")
    if len(text) > 5000:
        raise _err("Invalid query: the query is longer than 5000 characters.")
    lx = _Lexer(text)
    clauses: list[Clause] = []
    conj: str | None = None
    while True:
        lx.ws()
        if lx.peek() in ("(", ")"):
            raise _err(f"Invalid query: parentheses are not supported at position {lx.i}. {_DOC}")
        negate = False
        if lx.peek() == "-":
            negate = True
            lx.i += 1
        start = lx.i
        field = lx.ident()
        key = None
        if field not in FIELDS:
            raise _err(
                f"Field `{field[:40]}` is an unsupported search field for resource `customers`. "
                "See http://stripe.com/docs/search#query-fields-for-customers for a list of supported fields."
            )
        if field == "metadata":
            if lx.peek() != "[":
                raise _err(f"Invalid query: expected metadata['key'] at position {lx.i}. {_DOC}")
            lx.i += 1
            key = lx.quoted()
            if lx.peek() != "]":
                raise _err(f"Invalid query: expected ']' at position {lx.i}. {_DOC}")
            lx.i += 1
        lx.ws()
        op = None
        for cand in (">=", "<=", ":", "~", ">", "<"):
            if lx.peek(len(cand)) == cand:
                op = cand
                lx.i += len(cand)
                break
        if op is None:
            raise _err(f"Invalid query: expected an operator (:, ~, >, >=, <, <=) after `{lx.s[start:lx.i].strip()}` at position {lx.i}. {_DOC}")
        lx.ws()
        if field == "created":
            if op == "~":
                raise _err("Invalid query: the `~` operator is not supported for field `created`.")
            if lx.peek() in ("'", '"'):
                raw = lx.quoted()
            else:
                m = re.compile(r"-?\d+").match(lx.s, lx.i)
                if not m:
                    raise _err(f"Invalid query: `created` needs an integer timestamp at position {lx.i}. {_DOC}")
                raw = m.group(0)
                lx.i = m.end()
            try:
                value: Any = int(raw)
            except ValueError:
                raise _err(f"Invalid query: `created` needs an integer timestamp, got {raw[:40]!r}.") from None
        else:
            if op in (">", ">=", "<", "<="):
                raise _err(f"Invalid query: the `{op}` operator is only supported for numeric fields such as `created`.")
            if op == "~" and field == "metadata":
                raise _err("Invalid query: the `~` operator is not supported for metadata.")
            value = lx.quoted()
            if op == "~" and len(value) < 3:
                raise _err(f"Invalid query: the `~` (substring) operator needs a value of at least 3 characters, got {value!r}.")
        clauses.append(Clause(field, key, op, value, negate))
        if len(clauses) > 10:
            raise _err("Invalid query: a query can have at most 10 clauses.")
        spaced = lx.i < len(lx.s) and lx.s[lx.i].isspace()
        if lx.eof():
            break
        word_start = lx.i
        if not spaced:
            raise _err(
                f"Invalid query: expected a space, `AND` or `OR` at position {word_start} but found "
                f"{lx.s[word_start:word_start + 12]!r}. {_DOC}"
            )
        m = _WORD.match(lx.s, lx.i)
        if m:
            word = m.group(1).upper()
            lx.i = m.end()
            if lx.eof():
                raise _err(f"Invalid query: the query ends after `{word}`. {_DOC}")
        else:
            word = "AND"  # clauses separated by whitespace are combined with AND
        if conj is not None and conj != word:
            raise _err(f"Invalid query: cannot mix `AND` and `OR` without parentheses (position {word_start}). {_DOC}")
        conj = word
    return Query(clauses, conj or "AND")


def encode_page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sbxpage:{offset}".encode()).decode().rstrip("=")


def decode_page(token: str) -> int:
    try:
        pad = "=" * (-len(token) % 4)
        raw = base64.urlsafe_b64decode(token + pad).decode()
        tag, _, num = raw.partition(":")
        if tag != "sbxpage":
            raise ValueError
        off = int(num)
        if off < 0:
            raise ValueError
        return off
    except Exception:
        raise StripeError(400, f"Invalid page: {token[:40]!r} is not a valid page token. Pass the `next_page` value of a previous search result.", code="parameter_invalid", param="page", doc_code=False) from None


def search_view(rec: dict[str, Any], now: float, lag: float) -> dict[str, Any] | None:
    """The version of ``rec`` the search index sees right now (None = not indexed)."""
    if rec.get("deleted"):
        return None
    if lag > 0 and now - rec.get("changed_at", 0.0) < lag:
        return rec.get("prev")
    return rec


def snapshot(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "created": rec["created"],
        "seq": rec["seq"],
        "email": rec.get("email"),
        "name": rec.get("name"),
        "phone": rec.get("phone"),
        "metadata": dict(rec.get("metadata") or {}),
    }
