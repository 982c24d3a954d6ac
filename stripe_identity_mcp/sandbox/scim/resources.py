"""What the generic SCIM router needs of a resource type (Users, Groups): a store and its rules.

The router (``routes.py``) does the HTTP side once for every type — list, ``.search``, create, read
(``If-None-Match``), replace, PATCH, delete, ``If-Match``, projection, ETag headers — and asks the
resource for what differs: how a body becomes stored attributes, uniqueness, rendering, the PATCH
engine and what deletion also does.
"""

from __future__ import annotations

from typing import Any

from .filters import AttrResolver
from .schemas import ResourceType
from .store import ResourceStore

# The attributes a PUT/PATCH compares and rebuilds (everything but what the server sets).
SERVER_SET = ("schemas", "id", "meta")


def stored_fields(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in SERVER_SET}


class Resource:
    type: ResourceType
    filter_attr: AttrResolver

    def __init__(self, store: ResourceStore) -> None:
        self.store = store

    def build(self, body: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        """A POST (``base`` None) or PUT body validated into the stored attributes (no id/meta)."""
        raise NotImplementedError

    def conflict(self, fields: dict[str, Any]) -> None:
        """Refuse (409 ``uniqueness``) a new resource that clashes with a stored one."""
        raise NotImplementedError

    def finish(self, rid: str, fields: dict[str, Any], created: str, now: str) -> dict[str, Any]:
        """The stored resource: ``fields`` plus schemas, id and meta (with its ETag)."""
        raise NotImplementedError

    def render(self, resource: dict[str, Any], base: str) -> dict[str, Any]:
        """The resource as answered (computed attributes, ``meta.location``), before projection."""
        raise NotImplementedError

    def apply_op(self, work: dict[str, Any], raw: Any) -> None:
        """One PATCH operation applied to ``work`` (the stored attributes)."""
        raise NotImplementedError

    def after_patch(self, work: dict[str, Any], current: dict[str, Any]) -> None:
        """Checks and clean-up once every operation of a PATCH is applied."""

    def deactivates(self, fields: dict[str, Any]) -> bool:
        """Whether a PUT/PATCH leaving these attributes removes the resource (answered 204)."""
        return False

    def remove(self, rid: str) -> None:
        self.store.remove(rid)
