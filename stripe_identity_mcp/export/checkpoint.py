"""The export checkpoint: `<out>.checkpoint.json`, replaced atomically (temp file + fsync + rename).

It records the fixed parameters of the export (format, created range, the cut-off `created_lt`
fixed at start), every unfinished window with its cursor, and `offset`: how many bytes of the output
file are complete. A resume truncates the output to `offset` (dropping a half-written tail from a
crash) and continues each window from its cursor, so nothing is lost or written twice.

Version 2 adds `at_top` per window: the ids already written whose `created` equals the cursor's. When
the cursor customer (and its fallbacks) were deleted, the window restarts at that second and skips
exactly those ids (see engine.py). Version 1 checkpoints still load, with `at_top` unknown (None).

Version 3 adds a window's second cursor, paging it from its oldest end (`ending_before`, engine.py):
`low_cursor`, `low_created`, `low_fallback` and `at_low` mirror the newest-first ones. Version 1 and 2
checkpoints load without one (the window is paged from its newest end only, as they were).

The checkpoint sits in a directory others may write to: the temp file is created exclusively and
never through a symlink, and the checkpoint is read without following one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


@dataclass
class WindowState:
    gte: int
    lt: int
    cursor: str | None = None
    cursor_created: int | None = None
    fallback: list[str] = field(default_factory=list)
    fetched: int = 0
    at_top: list[str] | None = None  # None: unknown (a version-1 checkpoint)
    low_cursor: str | None = None
    low_created: int | None = None
    low_fallback: list[str] = field(default_factory=list)
    at_low: list[str] = field(default_factory=list)
    low_stopped: bool = False


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
        if data.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"checkpoint version {data.get('version')!r} is not one of {READABLE_VERSIONS}")
        windows = [WindowState(**w) for w in data["windows"]]
        for w in windows:  # the file sits in a shared directory: a skip set must be ids, not anything
            if w.at_top is not None and not (isinstance(w.at_top, list) and all(isinstance(i, str) for i in w.at_top)):
                raise ValueError("checkpoint window at_top is not a list of ids")
            if not (isinstance(w.at_low, list) and all(isinstance(i, str) for i in w.at_low)):
                raise ValueError("checkpoint window at_low is not a list of ids")
        if data["format"] not in ("jsonl", "csv"):
            raise ValueError(f"checkpoint format {data['format']!r} is not jsonl or csv")
        fields = {k: data[k] for k in ("format", "created_gte", "created_lt", "offset", "count")}
        return cls(
            **fields, windows=windows, mode=data.get("mode", ""), requests=int(data.get("requests", 0))
        )


def save(path: Path, checkpoint: Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(checkpoint.to_json(), separators=(",", ":")).encode()
    # Only the export holding the target's lock writes here, so an existing temp file is a crash
    # leftover or was planted (perhaps a symlink to a file elsewhere): remove the name — unlink never
    # touches what a symlink points to — and create our own file exclusively, refusing to follow links.
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load(path: Path) -> Checkpoint:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        return Checkpoint.from_json(json.loads(raw))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
