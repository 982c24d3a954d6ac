"""A toolset is a value: its name, one line on what it is for, and the tools, resources and prompts it owns.

Tools are module-level async functions recorded with `@tool(READ)` (their annotations travel with
them); a module lists them in its `TOOLSET = Toolset(..., read=(...), write=(...))`. Nothing here
touches a server: `server.build_server` decides once which toolsets and which of their tools a
process serves (writes on/off, toolset selection, OAuth scopes) and registers them through the
SDK's public `add_tool` / `resource` / `prompt`. So a tool body never asks whether writes are on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

ToolFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ToolDef:
    """One tool: the function (its name, docstring and signature are the published definition) and
    the options `add_tool` takes besides it."""

    fn: ToolFn
    annotations: ToolAnnotations
    title: str | None = None
    structured_output: bool | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def read_only(self) -> bool:
        return self.annotations.read_only_hint is True

    @property
    def destructive(self) -> bool:
        return self.annotations.destructive_hint is True

    def sdk_tool(self) -> Tool:
        """The SDK's `Tool` for this definition, built once per process and shared by its servers.

        Building one is pydantic generating the argument model and both JSON schemas (2–8 ms a tool,
        ~60 ms a server); a process builds many servers of the same definitions (one per HTTP token
        or OAuth scope set, one per test), and a `Tool` is only read once built. `MCPServer(tools=…)`
        is the SDK's public way to register prebuilt tools.
        """
        key = (self.fn, self.title, self.structured_output, self.annotations.model_dump_json())
        built = _SDK_TOOLS.get(key)
        if built is None:
            built = Tool.from_function(
                self.fn, title=self.title, annotations=self.annotations, structured_output=self.structured_output
            )
            _SDK_TOOLS[key] = built
        return built


# Keyed by everything a ToolDef passes to the SDK (tests build variants of one function).
_SDK_TOOLS: dict[tuple[ToolFn, str | None, bool | None, str], Tool] = {}


@dataclass(frozen=True)
class ResourceDef:
    """One resource template: the function and the arguments of the SDK's `resource()` decorator."""

    fn: ToolFn
    uri: str
    name: str
    description: str
    mime_type: str
    needs_scim: bool = False  # served only when a SCIM token is configured (its reads need the client)


@dataclass(frozen=True)
class PromptDef:
    fn: Callable[..., Any]
    name: str | None = None
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Toolset:
    """What one module contributes to a toolset. Several modules may contribute to one name (the
    customers toolset's reads, history and writes are three files); `name` is what `--toolsets` and
    the OAuth scopes (`<name>:read`, `<name>:write`) select."""

    name: str
    description: str
    read: tuple[ToolDef, ...] = ()
    write: tuple[ToolDef, ...] = ()
    resources: tuple[ResourceDef, ...] = ()
    prompts: tuple[PromptDef, ...] = ()
    always_on: bool = False  # served whatever the toolset selection (describe_access)

    @property
    def tools(self) -> tuple[ToolDef, ...]:
        return self.read + self.write


class MisannotatedTool(ValueError):
    """A read tool not annotated read-only, or a write tool that is: the catalogue would lie about it."""


def check_annotations(toolsets: tuple[Toolset, ...]) -> None:
    """Every read tool says read_only_hint=True, every write tool says it is not read-only, and no
    name is used twice. Raises MisannotatedTool naming the tool (a wrong hint would put a write tool
    on a read-only server, or hide a read tool from a client that trusts the hint)."""
    seen: dict[str, str] = {}
    for toolset in toolsets:
        for td in toolset.read:
            if not td.read_only:
                raise MisannotatedTool(
                    f"toolset {toolset.name!r}: {td.name} is listed in read= but is not annotated "
                    "read_only_hint=True (annotate it READ, or list it in write=)"
                )
        for td in toolset.write:
            if td.annotations.read_only_hint is not False:
                raise MisannotatedTool(
                    f"toolset {toolset.name!r}: {td.name} is listed in write= but is not annotated "
                    "read_only_hint=False (annotate it WRITE/WRITE_IDEMPOTENT/DESTRUCTIVE, or list it in read=)"
                )
        for td in toolset.tools:
            if td.name in seen:
                raise MisannotatedTool(f"tool {td.name} is listed by toolsets {seen[td.name]!r} and {toolset.name!r}")
            seen[td.name] = toolset.name


def tool(
    annotations: ToolAnnotations, *, title: str | None = None, structured_output: bool | None = None
) -> Callable[[ToolFn], ToolDef]:
    """Record a module-level async function as a tool with these annotations (not registered here)."""

    def record(fn: ToolFn) -> ToolDef:
        return ToolDef(fn=fn, annotations=annotations, title=title, structured_output=structured_output)

    return record


def resource(
    uri: str, *, name: str, description: str, mime_type: str, needs_scim: bool = False
) -> Callable[[ToolFn], ResourceDef]:
    """Record a module-level async function as a resource template (not registered here)."""

    def record(fn: ToolFn) -> ResourceDef:
        return ResourceDef(
            fn=fn, uri=uri, name=name, description=description, mime_type=mime_type, needs_scim=needs_scim
        )

    return record
