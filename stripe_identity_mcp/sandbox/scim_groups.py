"""SCIM Groups' public names at their old address (tests and tools import them from here).

The Groups resource lives in ``scim/groups.py``, its schema in ``scim/schemas.py`` and its seed in
``scim/seed.py``.
"""

from __future__ import annotations

from .scim.protocol import GROUP_SCHEMA
from .scim.schemas import GROUP_SCHEMA_DOC
from .scim.seed import SEED_GROUPS, group_id_for

__all__ = ["GROUP_SCHEMA", "GROUP_SCHEMA_DOC", "SEED_GROUPS", "group_id_for"]
