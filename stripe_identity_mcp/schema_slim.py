"""Make tool schemas cheap for the model: no auto titles, optional-null unions collapsed.

Pydantic spells `x: str | None = None` as `anyOf: [{type: string}, {type: null}], default: null,
title: "X"`. Omitting an optional argument means the same thing, and our outputs drop None values,
so the shorter `{type: string}` is equivalent for every caller — at about half the characters.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError


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


def slim_tools(server: Any) -> None:
    """Rewrite every registered tool's description (dedented) and schemas in place."""
    for tool in server._tool_manager.list_tools():
        tool.description = inspect.cleandoc(tool.description or "")
        tool.parameters = slim(tool.parameters)
        meta = tool.fn_metadata
        if getattr(meta, "output_schema", None) is not None:
            meta.output_schema = slim(meta.output_schema)


def compact_results(server: Any) -> None:
    """Send each tool's text content as compact JSON (the SDK indents it; models read every space).

    Structured content is unchanged; the text block carries the same JSON without indentation.
    """
    for tool in server._tool_manager.list_tools():
        if tool.output_schema is None or not tool.is_async:
            continue
        original = tool.fn

        @functools.wraps(original)
        async def wrapper(*args: Any, __fn: Any = original, **kwargs: Any) -> Any:
            result = await __fn(*args, **kwargs)
            if not isinstance(result, BaseModel):
                return result
            return CallToolResult(
                content=[TextContent(type="text", text=result.model_dump_json())],
                structured_content=result.model_dump(mode="json"),
            )

        tool.fn = wrapper


def hide_rejected_values(server: Any) -> None:
    """Argument errors name the field and the rule, never echo the rejected value.

    The SDK reports invalid arguments with pydantic's text, which includes `input_value=…`: a card
    number pasted into an id field would come straight back in the answer (and into transcripts).
    """
    for tool in server._tool_manager.list_tools():
        meta = tool.fn_metadata
        validate = meta.validate_arguments

        def checked(arguments: Any, __validate: Any = validate) -> Any:
            try:
                return __validate(arguments)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=True)
                raise ValidationError.from_exception_data(exc.title, errors, hide_input=True) from None  # type: ignore[arg-type]

        object.__setattr__(meta, "validate_arguments", checked)  # FuncMetadata is a pydantic model
