"""OAuth scopes → what a person's token may do on this server (never more than the process allows).

Scopes: `<toolset>:read` and `<toolset>:write` for each toolset (customers, billing, team, connect,
identity, export) and `live:write`. `<toolset>:write` implies `<toolset>:read` (a person who may
change customers may also look them up). Writes with a live-mode key also need `live:write`.
Everything is intersected with the process flags: a toolset the process does not enable, or
writes when the process is read-only, are not granted by any scope.

`describe_access` (the "access" toolset) is always present: it only reports what the caller may do.
"""

from __future__ import annotations

from dataclasses import dataclass

from stripe_identity_mcp.settings import ALL_TOOLSETS, Settings
from stripe_identity_mcp.toolsets import served_tools

LIVE_WRITE = "live:write"


def read_scope(toolset: str) -> str:
    return f"{toolset}:read"


def write_scope(toolset: str) -> str:
    return f"{toolset}:write"


ALL_SCOPES = tuple(s for t in ALL_TOOLSETS for s in (read_scope(t), write_scope(t))) + (LIVE_WRITE,)


@dataclass(frozen=True)
class Capabilities:
    """What one token may use, already intersected with the process settings."""

    read: tuple[str, ...]  # toolsets whose tools are visible (in ALL_TOOLSETS order)
    write: tuple[str, ...]  # toolsets whose write tools are visible too (a subset of read)

    @property
    def empty(self) -> bool:
        return not self.read


@dataclass(frozen=True)
class ToolInfo:
    toolset: str
    write: bool


def live_writes_need_scope(settings: Settings) -> bool:
    return settings.mode == "live"


def scopes_supported(settings: Settings) -> list[str]:
    """The scopes that mean something on this process (advertised in the metadata document)."""
    out: list[str] = []
    for toolset in settings.enabled_toolsets():
        out.append(read_scope(toolset))
        if settings.writes_enabled:
            out.append(write_scope(toolset))
    if settings.writes_enabled and live_writes_need_scope(settings):
        out.append(LIVE_WRITE)
    return out


def capabilities(scopes: list[str], settings: Settings) -> Capabilities:
    granted = set(scopes)
    enabled = settings.enabled_toolsets()
    can_write = settings.writes_enabled and (not live_writes_need_scope(settings) or LIVE_WRITE in granted)
    write = tuple(t for t in enabled if can_write and write_scope(t) in granted)
    read = tuple(t for t in enabled if read_scope(t) in granted or write_scope(t) in granted)
    return Capabilities(read=read, write=write)


def capability_settings(settings: Settings, caps: Capabilities) -> Settings:
    """The process settings narrowed to `caps` (write tools of read-only toolsets are filtered later)."""
    if caps.write:
        return settings.model_copy(update={"toolsets": caps.read})
    return settings.model_copy(update={"toolsets": caps.read, "read_only": True})


async def tool_catalogue(settings: Settings) -> dict[str, ToolInfo]:
    """Every tool the process serves, with its toolset and whether it writes (from the registry).

    The always-on toolset (describe_access) is left out: no scope is needed for it, so it is never
    withheld."""
    return {
        td.name: ToolInfo(toolset=ts.name, write=not td.read_only)
        for ts, td in served_tools(settings)
        if not ts.always_on
    }


def allowed(info: ToolInfo, caps: Capabilities) -> bool:
    return info.toolset in (caps.write if info.write else caps.read)


def needed_scope(info: ToolInfo, settings: Settings) -> str:
    """The scope(s) a token needs to call this tool (space-separated, as in a WWW-Authenticate `scope`)."""
    if not info.write:
        return read_scope(info.toolset)
    if live_writes_need_scope(settings):
        return f"{write_scope(info.toolset)} {LIVE_WRITE}"
    return write_scope(info.toolset)
