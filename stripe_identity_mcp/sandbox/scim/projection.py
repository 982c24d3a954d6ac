"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5): which attributes an answer carries.

``id`` and ``schemas`` are always returned.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from .values import strip_urn


def split_attr_list(raw: str | list[str] | None) -> list[tuple[str, str | None]]:
    if not raw:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    out: list[tuple[str, str | None]] = []
    for item in items:
        item = strip_urn(str(item).strip())
        if not item:
            continue
        top, _, sub = item.partition(".")
        out.append((top.lower(), sub.lower() or None))
    return out


def project(resource: dict[str, Any], attributes: list[tuple[str, str | None]], excluded: list[tuple[str, str | None]]) -> dict[str, Any]:
    always = {"id", "schemas"}
    if attributes:
        wanted: dict[str, set[str] | None] = {}
        for top, sub in attributes:
            if sub is None:
                wanted[top] = None
            elif wanted.get(top, set()) is not None:
                wanted.setdefault(top, set()).add(sub)  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        for key, value in resource.items():
            k = key.lower()
            if k in always:
                out[key] = value
            elif k in wanted:
                subs = wanted[k]
                out[key] = value if subs is None else _pick_subs(value, subs, keep=True)
        return out
    if excluded:
        out = dict(resource)
        for top, sub in excluded:
            for key in list(out):
                if key.lower() != top or key.lower() in always:
                    continue
                if sub is None:
                    del out[key]
                else:
                    out[key] = _pick_subs(out[key], {sub}, keep=False)
        return out
    return resource


def _pick_subs(value: Any, subs: set[str], keep: bool) -> Any:
    def one(d: Any) -> Any:
        if not isinstance(d, dict):
            return d
        return {k: v for k, v in d.items() if (k.lower() in subs) == keep}

    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)



def project_params(resource: dict[str, Any], params: QueryParams | dict[str, Any]) -> dict[str, Any]:
    """``resource`` as the request's ``attributes``/``excludedAttributes`` ask."""
    return project(resource, split_attr_list(params.get("attributes")), split_attr_list(params.get("excludedAttributes")))
