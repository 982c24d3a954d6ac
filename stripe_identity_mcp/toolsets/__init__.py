"""Toolsets: one module per toolset (or part of one), each exporting `TOOLSET`, a `base.Toolset` value.

This package is the registry: which tools exist (`REGISTRY`, `all_read_tools()`, …) and which of them
a process serves for its settings (`served_tools`). `server.build_server` registers what
`served_tools` returns; the OAuth catalogue, the manifests and the tests read the same values, so a
tool added to a module's `TOOLSET` is served, scoped, fuzzed and snapshotted without another list.
"""

from __future__ import annotations

import importlib

from stripe_identity_mcp.settings import Settings
from stripe_identity_mcp.toolsets.base import ResourceDef, ToolDef, Toolset

# "access" (describe_access) is always on; the others follow Settings.enabled_toolsets().
# Several modules may serve one toolset (customer_writes: the customers toolset's write tools).
MODULES = ("access", "customers", "customer_writes", "history", "billing", "team", "connect", "identity", "export")


def _load() -> tuple[Toolset, ...]:
    loaded = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        value = module.TOOLSET
        if not isinstance(value, Toolset):
            raise TypeError(f"{module.__name__}.TOOLSET must be a toolsets.base.Toolset, not {type(value).__name__}")
        loaded.append(value)
    return tuple(loaded)


REGISTRY: tuple[Toolset, ...] = _load()


def all_tools(toolsets: tuple[Toolset, ...] = REGISTRY) -> tuple[ToolDef, ...]:
    return tuple(td for ts in toolsets for td in ts.tools)


def all_read_tools(toolsets: tuple[Toolset, ...] = REGISTRY) -> tuple[ToolDef, ...]:
    return tuple(td for ts in toolsets for td in ts.read)


def all_write_tools(toolsets: tuple[Toolset, ...] = REGISTRY) -> tuple[ToolDef, ...]:
    return tuple(td for ts in toolsets for td in ts.write)


def toolset_of(name: str, toolsets: tuple[Toolset, ...] = REGISTRY) -> str:
    """The toolset name a tool belongs to (KeyError for an unknown tool)."""
    for ts in toolsets:
        if any(td.name == name for td in ts.tools):
            return ts.name
    raise KeyError(name)


def selected(settings: Settings, toolsets: tuple[Toolset, ...] = REGISTRY) -> tuple[Toolset, ...]:
    """The toolsets these settings serve: the always-on ones and the enabled selection."""
    enabled = settings.enabled_toolsets()
    return tuple(ts for ts in toolsets if ts.always_on or ts.name in enabled)


def served_tools(settings: Settings, toolsets: tuple[Toolset, ...] = REGISTRY) -> list[tuple[Toolset, ToolDef]]:
    """Every tool these settings serve, with its toolset: reads of the selected toolsets, and their
    writes only when `settings.writes_enabled` (allow_writes, not read_only, live writes opted into).
    The one place that decides it."""
    writes = settings.writes_enabled
    return [(ts, td) for ts in selected(settings, toolsets) for td in (ts.read + ts.write if writes else ts.read)]


def served_resources(settings: Settings, toolsets: tuple[Toolset, ...] = REGISTRY) -> list[ResourceDef]:
    return [r for ts in selected(settings, toolsets) for r in ts.resources if settings.scim_configured or not r.needs_scim]
