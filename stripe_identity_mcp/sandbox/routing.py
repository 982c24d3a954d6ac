"""The sandbox's one routing style: a route table of (method, path template, handler).

Stripe's ``/v1`` handlers and SCIM's ``/scim/v2`` endpoints are both declared as small tables of
`Route`s (a table per resource module, collected where the app is built) and looked up by a
`RouteTable`. A template is a path with ``{name}`` segments (``/v1/customers/{id}``); a segment
parameter matches one non-empty path segment except the route's ``reserved`` words (SCIM's
``/Users/.search`` is an endpoint beside ``/Users/{id}``, never an id).

Lookup: the first route whose method and path both match answers. When none does, `allowed`
names the first route whose path alone matches (SCIM answers 405 for it; Stripe answers 404
either way, as Stripe does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

H = TypeVar("H")

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route(Generic[H]):
    method: str
    template: str
    handler: H
    # How a 405 names the endpoint.
    label: str = ""
    reserved: tuple[str, ...] = ()


@dataclass
class RouteTable(Generic[H]):
    routes: list[Route[H]]
    _compiled: list[tuple[Route[H], re.Pattern[str]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = [(r, _compile(r.template, r.reserved)) for r in self.routes]

    def find(self, method: str, path: str) -> tuple[Route[H], dict[str, str]] | None:
        """The route answering ``method path`` and its path parameters, or None."""
        for route, rx in self._compiled:
            if route.method == method:
                m = rx.match(path)
                if m:
                    return route, m.groupdict()
        return None

    def allowed(self, path: str) -> Route[H] | None:
        """The first route whose path matches (whatever its method), or None."""
        return next((route for route, rx in self._compiled if rx.match(path)), None)


def _compile(template: str, reserved: tuple[str, ...]) -> re.Pattern[str]:
    # A lookahead per reserved word: the segment may not be exactly that word.
    segment = "".join(f"(?!{re.escape(word)}(?:/|$))" for word in reserved) + "[^/]+"
    out, pos = "", 0
    for m in _PARAM.finditer(template):
        out += re.escape(template[pos : m.start()]) + f"(?P<{m[1]}>{segment})"
        pos = m.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$")


def collect(*tables: Iterable[Route[H]]) -> list[Route[H]]:
    """Routes of several resource modules, in the order given (earlier tables win)."""
    return [route for table in tables for route in table]
