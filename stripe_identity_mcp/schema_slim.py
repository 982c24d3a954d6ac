"""Make tool schemas cheap for the model: no auto titles, optional-null unions collapsed.

Pydantic spells `x: str | None = None` as `anyOf: [{type: string}, {type: null}], default: null,
title: "X"`. Omitting an optional argument means the same thing, and our outputs drop None values,
so the shorter `{type: string}` is equivalent for every caller — at about half the characters.

Applied by server.AuditedServer through the SDK's public methods (`list_tools`, `call_tool`): the
registered tools are never rewritten.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from mcp.types import CallToolResult, TextContent
from mcp.types import Tool as MCPTool
from pydantic import ValidationError


def slim(schema: Any) -> Any:
    if isinstance(schema, list):
        return [slim(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "maxLength" and isinstance(value, int) and value >= 200:
            continue  # generous sanity caps: still enforced by validation, not worth the model's tokens
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: slim(sub) for name, sub in value.items()}
        else:
            out[key] = slim(value)
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and out.get("default", None) is None:
        rest = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        out.pop("default", None)
        if len(rest) == 1:
            out = {**rest[0], **out}
        elif all(set(o) == {"type"} and isinstance(o["type"], str) for o in rest):
            out = {"type": [o["type"] for o in rest], **out}
        else:
            out["anyOf"] = rest
    return out


def slim_tool(tool: MCPTool) -> MCPTool:
    """The published definition: description dedented, input and output schemas slimmed."""
    return tool.model_copy(
        update={
            "description": inspect.cleandoc(tool.description or ""),
            "input_schema": slim(tool.input_schema),
            "output_schema": slim(tool.output_schema) if tool.output_schema is not None else None,
        }
    )


def compact_text(result: Any) -> Any:
    """A structured result's text block as compact JSON (the SDK indents it; models read every space).

    Structured content is unchanged; the text block carries the same JSON without indentation.
    """
    if not isinstance(result, CallToolResult) or result.is_error or result.structured_content is None:
        return result
    if len(result.content) != 1 or not isinstance(result.content[0], TextContent):
        return result
    try:  # only where the text IS the structured content as JSON (a model's output), not e.g. "ok"
        same = json.loads(result.content[0].text) == result.structured_content
    except ValueError:
        same = False
    if not same:
        return result
    text = json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
    return result.model_copy(update={"content": [TextContent(type="text", text=text)]})


def without_rejected_values(error: ValidationError) -> str:
    """Argument errors name the field and the rule, never echo the rejected value.

    The SDK reports invalid arguments with pydantic's text, which includes `input_value=…`: a card
    number pasted into an id field would come straight back in the answer (and into transcripts).
    """
    errors = error.errors(include_url=False, include_context=True)
    return str(ValidationError.from_exception_data(error.title, errors, hide_input=True))  # type: ignore[arg-type]
