"""MCP prompts from Markdown files with a small front matter.

```
---
name: support_lookup
description: Look up a person by email across customers, team members and Connect accounts
arguments:
  - name: email
    description: the email the user asked about
    required: true
---
Body with {{email}} placeholders.
```

Files live in the repo's `prompts/` directory; an installed wheel carries them as
`stripe_identity_mcp/_prompts`. Placeholders name declared arguments only; an optional argument
left out renders as its `default` (front matter) or an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

PACKAGE_DIR = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PromptFileError(ValueError):
    """A prompt file that cannot be served; the message names the file and the problem."""


@dataclass
class PromptArg:
    name: str
    description: str = ""
    required: bool = False
    default: str = ""


@dataclass
class PromptSpec:
    name: str
    description: str
    body: str
    path: Path
    arguments: list[PromptArg] = field(default_factory=list)
    title: str | None = None

    def render(self, values: dict[str, Any]) -> str:
        declared = {a.name: a for a in self.arguments}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise ValueError(f"prompt {self.name}: unknown arguments {unknown}")
        missing = sorted(a.name for a in self.arguments if a.required and not str(values.get(a.name) or "").strip())
        if missing:
            raise ValueError(f"prompt {self.name}: missing required arguments {missing}")

        def fill(match: re.Match[str]) -> str:
            arg = declared[match.group(1)]
            value = values.get(arg.name)
            return str(value).strip() if value not in (None, "") else arg.default

        return PLACEHOLDER.sub(fill, self.body).strip() + "\n"


def prompts_dir() -> Path:
    """The repo's prompts/ (source checkout), else the copy installed inside the package."""
    repo = PACKAGE_DIR.parent / "prompts"
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file() and repo.is_dir():
        return repo
    return PACKAGE_DIR / "_prompts"


def _scalar(text: str) -> str | bool:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.lower() in ("true", "yes"):
        return True
    if text.lower() in ("false", "no"):
        return False
    return text


def parse_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """The small YAML subset prompts use: `key: value` lines and an `arguments:` list of mappings."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise PromptFileError(f"{path.name}: must start with a '---' front matter block")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise PromptFileError(f"{path.name}: front matter is not closed with '---'") from None
    meta: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    in_list = False
    for number, raw in enumerate(lines[1:end], start=2):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indented = raw[0] in " \t"
        item = raw.strip()
        if not indented:
            key, sep, value = item.partition(":")
            if not sep:
                raise PromptFileError(f"{path.name}:{number}: expected 'key: value'")
            key = key.strip()
            in_list = key == "arguments" and not value.strip()
            if in_list:
                meta["arguments"] = []
            else:
                meta[key] = _scalar(value)
            current = None
            continue
        if not in_list:
            raise PromptFileError(f"{path.name}:{number}: unexpected indented line")
        if item.startswith("- "):
            current = {}
            meta["arguments"].append(current)
            item = item[2:].strip()
        if current is None:
            raise PromptFileError(f"{path.name}:{number}: argument fields must follow '- name: …'")
        key, sep, value = item.partition(":")
        if not sep:
            raise PromptFileError(f"{path.name}:{number}: expected 'key: value'")
        current[key.strip()] = _scalar(value)
    return meta, "\n".join(lines[end + 1 :])


def load_prompt(path: Path) -> PromptSpec:
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"), path)
    name = meta.get("name")
    description = meta.get("description")
    if not isinstance(name, str) or not NAME.match(name):
        raise PromptFileError(f"{path.name}: 'name' must be snake_case")
    if not isinstance(description, str) or not description:
        raise PromptFileError(f"{path.name}: 'description' is required")
    args: list[PromptArg] = []
    for raw in meta.get("arguments", []):
        arg_name = raw.get("name")
        if not isinstance(arg_name, str) or not NAME.match(arg_name):
            raise PromptFileError(f"{path.name}: every argument needs a snake_case 'name'")
        unknown = set(raw) - {"name", "description", "required", "default"}
        if unknown:
            raise PromptFileError(f"{path.name}: argument {arg_name}: unknown fields {sorted(unknown)}")
        args.append(
            PromptArg(
                name=arg_name,
                description=str(raw.get("description", "")),
                required=raw.get("required") is True,
                default=str(raw.get("default", "")),
            )
        )
    declared = {a.name for a in args}
    used = set(PLACEHOLDER.findall(body))
    if used - declared:
        raise PromptFileError(f"{path.name}: placeholders {sorted(used - declared)} are not declared arguments")
    title = meta.get("title")
    return PromptSpec(
        name=name,
        description=description,
        body=body,
        path=path,
        arguments=args,
        title=title if isinstance(title, str) else None,
    )


def load_prompts(directory: Path | None = None) -> list[PromptSpec]:
    directory = directory or prompts_dir()
    specs = [load_prompt(p) for p in sorted(directory.glob("*.md"))]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PromptFileError(f"duplicate prompt names: {duplicates}")
    return specs


def to_mcp_prompt(spec: PromptSpec) -> Prompt:
    def render(**values: Any) -> str:
        try:
            return spec.render(values)
        except ValueError as exc:  # a clear invalid-params error instead of "Error rendering prompt"
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None

    return Prompt(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        arguments=[PromptArgument(name=a.name, description=a.description, required=a.required) for a in spec.arguments],
        fn=render,
    )


def register_prompts(server: MCPServer, specs: Iterable[PromptSpec] | None = None) -> None:
    """Serve every prompt file as an MCP prompt (prompts/list, prompts/get)."""
    for spec in load_prompts() if specs is None else specs:
        server.add_prompt(to_mcp_prompt(spec))
