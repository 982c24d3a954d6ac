"""Stripe-style form/query decoding and the error type the sandbox raises.

Stripe encodes nested parameters with brackets (``metadata[k]=v``, ``expand[]=a``,
``items[0][price]=p``).  :func:`parse_form` turns such pairs into nested dicts and lists,
keeping empty strings (Stripe's "unset" marker) intact.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART_RE = re.compile(r"\[([^\[\]]*)\]")


class StripeError(Exception):
    """An error rendered as a Stripe error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        doc_code: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.doc_code = doc_code

    def body(self, request_id: str, livemode: bool) -> dict[str, Any]:
        err: dict[str, Any] = {}
        if self.code:
            err["code"] = self.code
            if self.doc_code:
                err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        err["message"] = self.message
        if self.param is not None:
            err["param"] = self.param
        base = "https://dashboard.stripe.com/" + ("" if livemode else "test/")
        err["request_log_url"] = f"{base}logs/{request_id}?t=0"
        err["type"] = self.type
        return {"error": err}


def bad_param(param: str, message: str, code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param)


def missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def unknown(param: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)


def _finalize(node: Any) -> Any:
    if isinstance(node, _Arr):
        return [_finalize(v) for v in node.items]
    if isinstance(node, _Idx):
        return [_finalize(node.items[k]) for k in sorted(node.items)]
    if isinstance(node, dict):
        return {k: _finalize(v) for k, v in node.items()}
    return node


class _Arr:
    """List built from ``a[]=x`` pairs."""

    def __init__(self) -> None:
        self.items: list[Any] = []


class _Idx:
    """List built from ``a[0]=x`` pairs (sparse until finalised)."""

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        m = _KEY_RE.match(raw_key)
        if not m:
            if raw_key.startswith("metadata["):
                raise StripeError(
                    400,
                    "Invalid metadata key: metadata keys cannot contain square brackets ('[' or ']').",
                    code="parameter_invalid",
                    param="metadata",
                )
            raise StripeError(400, f"Invalid parameter name: {raw_key}", code="parameter_unknown", param=raw_key)
        parts = [m.group(1)] + _PART_RE.findall(m.group(2) or "")
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = None if last else parts[i + 1]
            if isinstance(node, _Arr):
                if part != "":
                    raise StripeError(400, f"Invalid array: {raw_key}", code="parameter_invalid", param=parts[0])
                if last:
                    node.items.append(value)
                    break
                child = _new_container(nxt)
                node.items.append(child)
                node = child
                continue
            if isinstance(node, _Idx):
                if not part.isdigit():
                    raise StripeError(400, f"Invalid array index: {raw_key}", code="parameter_invalid", param=parts[0])
                key: Any = int(part)
                store = node.items
            else:
                if part == "" or (part.isdigit() and i > 0 and False):
                    raise StripeError(400, f"Invalid parameter name: {raw_key}", param=parts[0])
                key = part
                store = node
            if last:
                store[key] = value
                break
            child = store.get(key)
            want = _kind(nxt)
            if child is None or isinstance(child, str):
                child = _new_container(nxt)
                store[key] = child
            elif want is _Arr and isinstance(child, dict) and not child:
                child = _new_container(nxt)
                store[key] = child
            elif want is not type(child):
                if want is dict and isinstance(child, _Idx) is False and isinstance(child, dict):
                    pass
                elif want is _Idx and isinstance(child, dict) and not child:
                    child = _new_container(nxt)
                    store[key] = child
                else:
                    raise StripeError(400, f"Invalid parameter structure: {raw_key}", param=parts[0])
            node = child
    return _finalize(root)


def _kind(nxt: str | None) -> type:
    if nxt == "":
        return _Arr
    if nxt is not None and nxt.isdigit():
        return _Idx
    return dict


def _new_container(nxt: str | None) -> Any:
    return _kind(nxt)()


def parse_form(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:  # pragma: no cover - parse_qsl is lenient
        raise StripeError(400, f"Invalid request body: {exc}") from exc
    return parse_pairs(pairs)
