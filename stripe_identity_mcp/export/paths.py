"""Where an export may write: confinement of MCP-supplied file names to the export directory."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path


class PathRefused(ValueError):
    """A file name the export refuses, with the reason."""


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


# Names the export itself creates next to a target: an export *to* one of them would clobber another
# export's checkpoint or lock.
RESERVED_SUFFIXES = (".checkpoint.json", ".checkpoint.json.tmp", ".lock")
# Control (Cc), format (Cf: bidi overrides/isolates, zero-width), surrogate and line/paragraph
# separator characters: a name holding one displays as something else than it is (U+202E turns
# "txt.jsonl" around, ESC starts a terminal sequence), in our answers and in the user's file manager.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def check_name(filename: str) -> None:
    """Refuse control/bidi/invisible characters and our reserved suffixes (CLI and MCP alike).

    The message names the code point and its position, never the rejected text itself.
    """
    for index, char in enumerate(filename):
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            name = unicodedata.name(char, "control character")
            raise PathRefused(
                f"filename contains U+{ord(char):04X} ({name}) at position {index}: "
                "control, bidi and invisible characters are not allowed"
            )
    if filename.lower().endswith(RESERVED_SUFFIXES):
        raise PathRefused(f"filename must not end with {', '.join(RESERVED_SUFFIXES)} (the export's own files)")


def confine(export_dir: Path, filename: str) -> Path:
    """Resolve `filename` inside `export_dir` or refuse.

    Refused: empty names, NUL bytes, control/bidi characters and reserved suffixes (check_name),
    any `..` component, absolute paths outside the directory, and paths whose resolution (symlinks
    followed, in any component) leaves the directory. The directory is created when missing.
    """
    if not filename or not filename.strip():
        raise PathRefused("filename must not be empty")
    if "\x00" in filename:
        raise PathRefused("filename contains a NUL byte")
    check_name(filename)
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
    for extra in (checkpoint_path(resolved), lock_path(resolved)):
        if Path(os.path.realpath(extra)).parent != resolved.parent:
            raise PathRefused(f"{filename!r}: its checkpoint or lock would land outside the export directory")
    if resolved.exists() and not resolved.is_file():
        raise PathRefused(f"{filename!r} exists and is not a regular file")
    return resolved
