"""The SCIM resources in memory: one store per resource type, listed in creation order."""

from __future__ import annotations

import itertools
from typing import Any

from .protocol import ScimError


class ResourceStore:
    """id → stored resource (``items``, what tests read), with a stable creation order.

    Stores share one ``clock`` (a tie-breaker for resources created in the same instant).
    """

    def __init__(self, label: str, clock: itertools.count[int]) -> None:
        self.label = label
        self.items: dict[str, dict[str, Any]] = {}
        self._clock = clock
        self._order: dict[str, tuple[str, int]] = {}

    def add(self, resource: dict[str, Any], created: str) -> None:
        self._order[resource["id"]] = (created, next(self._clock))
        self.items[resource["id"]] = resource

    def replace(self, resource: dict[str, Any]) -> None:
        """A new version of a stored resource (it keeps its place in the order)."""
        self.items[resource["id"]] = resource

    def remove(self, rid: str) -> None:
        del self.items[rid]
        self._order.pop(rid, None)

    def find(self, rid: str) -> dict[str, Any]:
        resource = self.items.get(rid)
        if resource is None:
            raise ScimError(404, f"{self.label} {rid} not found")
        return resource

    def sorted(self) -> list[dict[str, Any]]:
        return sorted(self.items.values(), key=lambda r: self._order[r["id"]])
