"""The export checkpoint: `<out>.checkpoint.json`, replaced atomically (temp file + fsync + rename).

It records the fixed parameters of the export (format, created range, the cut-off `created_lt`
fixed at start), every unfinished window with its cursor, and `offset`: how many bytes of the output
file are complete. A resume truncates the output to `offset` (dropping a half-written tail from a
crash) and continues each window from its cursor, so nothing is lost or written twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


@dataclass
class WindowState:
    gte: int
    lt: int
    cursor: str | None = None
    cursor_created: int | None = None
    fallback: list[str] = field(default_factory=list)
    fetched: int = 0


@dataclass
class Checkpoint:
    format: str
    created_gte: int
    created_lt: int
    offset: int
    count: int
    windows: list[WindowState]
    mode: str = ""
    requests: int = 0
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        if data.get("version") != VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r} is not {VERSION}")
        windows = [WindowState(**w) for w in data["windows"]]
        fields = {k: data[k] for k in ("format", "created_gte", "created_lt", "offset", "count")}
        return cls(
            **fields, windows=windows, mode=data.get("mode", ""), requests=int(data.get("requests", 0))
        )


def save(path: Path, checkpoint: Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(checkpoint.to_json(), separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load(path: Path) -> Checkpoint:
    try:
        return Checkpoint.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
