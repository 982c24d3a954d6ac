"""Where an export may write: confinement of MCP-supplied file names to the export directory."""

from __future__ import annotations

import os
from pathlib import Path


class PathRefused(ValueError):
    """A file name the export refuses, with the reason."""


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def confine(export_dir: Path, filename: str) -> Path:
    """Resolve `filename` inside `export_dir` or refuse.

    Refused: empty names, NUL bytes, any `..` component, absolute paths outside the directory, and
    paths whose resolution (symlinks followed, in any component) leaves the directory. The directory
    is created when missing.
    """
    if not filename or not filename.strip():
        raise PathRefused("filename must not be empty")
    if "\x00" in filename:
        raise PathRefused("filename contains a NUL byte")
    raw = Path(filename)
    if ".." in raw.parts:
        raise PathRefused("filename must not contain '..'")
    root = Path(export_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    candidate = raw if raw.is_absolute() else root / raw
    resolved = Path(os.path.realpath(candidate))
    try:
        resolved.relative_to(root)
    except ValueError:
        raise PathRefused(f"{filename!r} is outside the export directory {root}") from None
    if resolved == root or candidate.name == "":
        raise PathRefused("filename must name a file inside the export directory")
    for extra in (checkpoint_path(resolved),):
        if Path(os.path.realpath(extra)).parent != resolved.parent:
            raise PathRefused(f"{filename!r}: its checkpoint would land outside the export directory")
    if resolved.exists() and not resolved.is_file():
        raise PathRefused(f"{filename!r} exists and is not a regular file")
    return resolved
