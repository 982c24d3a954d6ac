"""Toolsets: one module per toolset, each exporting TOOLSET and register(server, settings)."""

from __future__ import annotations

import importlib
from types import ModuleType

# "access" (describe_access) is always on; the others follow Settings.enabled_toolsets().
# Several modules may serve one toolset (customer_writes: the customers toolset's write tools).
MODULES = ("access", "customers", "customer_writes", "history", "billing", "team", "connect", "identity", "export")


def _load() -> list[ModuleType]:
    loaded = []
    for name in MODULES:
        try:
            loaded.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return loaded


REGISTRY: list[ModuleType] = _load()
