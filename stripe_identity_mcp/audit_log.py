"""The audit log file: append-only JSON lines, secrets redacted, card numbers masked (0600).

Its own module so that `deps.AppDeps` can hold the process's AuditLog without importing the audit
wrapper (audit.py), which needs the tools' error text and so the deps themselves.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stripe_identity_mcp.cards import find_card_numbers, mask_in
from stripe_identity_mcp.clients.errors import redact

DEFAULT_AUDIT_PATH = Path("~/.stripe-identity-mcp/audit.jsonl")
MAX_VALUE = 200
_SECRET_KEY = re.compile(r"(?i)(secret|token|password|passwd|api_key|apikey|authorization|cvc|cvv)")


def audit_path(settings: Any) -> Path:
    path = getattr(settings, "audit_log", None) or DEFAULT_AUDIT_PATH
    return Path(path).expanduser()


def redact_value(value: Any, secrets: list[str], key: str | None = None) -> Any:
    """Secrets → "[redacted]", card-like numbers masked, long strings truncated; structure kept."""
    if key is not None and _SECRET_KEY.search(key):
        return "[redacted]" if value not in (None, "") else value
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {str(redact_value(k, secrets)): redact_value(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_value(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = redact(str(value), secrets)
    if find_card_numbers(text):
        text = mask_in(text)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"…(+{len(text) - MAX_VALUE} chars)"
    return text


class AuditLog:
    """Append-only JSONL file; one line per write attempt. Thread-safe; appends are tiny."""

    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self.secrets = list(secrets or [])
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        line = redact(line, self.secrets)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                # backslashreplace: a lone surrogate becomes the JSON escape \udXXX (the line stays valid JSON)
                os.write(fd, (line + "\n").encode("utf-8", "backslashreplace"))
            finally:
                os.close(fd)

    def record(
        self,
        *,
        tool: str,
        target: str | None,
        args: dict[str, Any],
        outcome: str,
        caller: str = "local",
        request_id: str | None = None,
    ) -> dict[str, Any]:
        entry = {
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "caller": caller,
            "tool": tool,
            "target": redact_value(target, self.secrets) if target is not None else None,
            "args": redact_value({k: v for k, v in args.items() if v is not None}, self.secrets),
            "outcome": outcome,
            "request_id": request_id,
        }
        self.write(entry)
        return entry
