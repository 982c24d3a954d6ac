"""Bearer tokens for the HTTP transport: the token file, constant-time lookup, `token create`.

Token file (TOML or JSON, chosen by the file extension: `.json` → JSON, anything else → TOML)::

    # TOML
    [[tokens]]
    name = "support-bot"            # shown as caller "token:support-bot" in the audit log
    sha256 = "9f86d0…"              # hex sha256 of the token; the token itself is never stored
    scope = "read-only"             # or "writes"
    toolsets = ["customers"]        # optional; absent = every toolset the server enables
    live_writes = false             # writes with a live key (also needs --allow-live-writes)

    # JSON
    {"tokens": [{"name": "...", "sha256": "...", "scope": "writes", "toolsets": null, "live_writes": false}]}

A token can never get more than the process allows: its scope is intersected with the server's
flags by `transport_http.scoped_settings`.

Tokens are `sim_` + 32 random bytes (urlsafe base64). Lookup (`TokenTable.match`) hashes the
presented token with sha256 and compares it with `hmac.compare_digest` against EVERY entry (no early
exit), so timing reveals neither which entry matched nor how much of a hash did.

`stripe-identity-mcp token create --name NAME --scope read-only|writes [--toolsets a,b]
[--live-writes] --file tokens.toml` appends an entry and prints the token once on stdout (the
only place it ever appears); `token list` shows names and scopes (never hashes).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stripe_identity_mcp.settings import ALL_TOOLSETS

TOKEN_PREFIX = "sim_"
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
Scope = Literal["read-only", "writes"]
TOKENS_ENV = "STRIPE_IDENTITY_MCP_TOKENS_FILE"


class TokenFileError(ValueError):
    """The token file cannot be used; the message says what to fix (never a token)."""


class TokenEntry(BaseModel):
    """One bot's credentials and scope as stored in the token file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scope: Scope
    toolsets: tuple[str, ...] | None = None
    live_writes: bool = False

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("toolsets")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(ALL_TOOLSETS))
        if unknown:
            raise ValueError(f"unknown toolsets {unknown}; choose from {', '.join(ALL_TOOLSETS)}")
        if not value:
            raise ValueError("an empty toolsets list grants nothing; omit it for all toolsets")
        return value

    @property
    def caller(self) -> str:
        """How the audit log names this token."""
        return f"token:{self.name}"

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.sha256)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenTable:
    """The loaded entries; `match` is constant-time with respect to which entry (if any) matches."""

    entries: tuple[TokenEntry, ...]

    def match(self, presented: str | None) -> TokenEntry | None:
        digest = hashlib.sha256((presented or "").encode("utf-8", "surrogateescape")).digest()
        found: TokenEntry | None = None
        for entry in self.entries:  # every entry is compared, whatever matched before
            if hmac.compare_digest(digest, entry.digest) and presented:
                found = entry
        return found

    def __len__(self) -> int:
        return len(self.entries)


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _raw_entries(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileError(
            f"token file {path} does not exist; create a token with "
            f"`stripe-identity-mcp token create --name NAME --scope read-only --file {path}`"
        ) from None
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from None
    if not text.strip():
        return []
    try:
        data: Any = json.loads(text) if _is_json(path) else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TokenFileError(f"token file {path} is not valid {'JSON' if _is_json(path) else 'TOML'}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokens", []), list):
        raise TokenFileError(f"token file {path} must hold a list `tokens` of entries")
    return list(data.get("tokens", []))


def load_tokens(path: Path | str) -> TokenTable:
    """Read and validate a token file (unknown fields, duplicate names or hashes are errors)."""
    path = Path(path).expanduser()
    entries: list[TokenEntry] = []
    for index, raw in enumerate(_raw_entries(path)):
        try:
            entries.append(TokenEntry.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}" for err in exc.errors()
            )
            label = raw.get("name") if isinstance(raw, dict) else None
            raise TokenFileError(f"token file {path}, entry {index + 1} ({label or 'unnamed'}): {problems}") from None
    seen_names: set[str] = set()
    seen_hashes: set[str] = set()
    for entry in entries:
        if entry.name in seen_names:
            raise TokenFileError(f"token file {path}: the name '{entry.name}' is used twice")
        if entry.sha256 in seen_hashes:
            raise TokenFileError(f"token file {path}: two entries have the same token hash ('{entry.name}')")
        seen_names.add(entry.name)
        seen_hashes.add(entry.sha256)
    return TokenTable(tuple(entries))


def _toml_entry(entry: TokenEntry) -> str:
    lines = ["[[tokens]]", f"name = {json.dumps(entry.name)}", f'sha256 = "{entry.sha256}"']
    lines.append(f'scope = "{entry.scope}"')
    if entry.toolsets is not None:
        lines.append("toolsets = [" + ", ".join(json.dumps(t) for t in entry.toolsets) + "]")
    lines.append(f"live_writes = {'true' if entry.live_writes else 'false'}")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write `text` atomically with mode 0600 (the file holds hashes, still nobody else's business)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def append_entry(path: Path | str, entry: TokenEntry) -> None:
    """Add `entry` to the file (created if missing); refuses a name that already exists."""
    path = Path(path).expanduser()
    existing = load_tokens(path) if path.exists() else TokenTable(())
    if any(e.name == entry.name for e in existing.entries):
        raise TokenFileError(f"token file {path} already has a token named '{entry.name}'; pick another name")
    if _is_json(path):
        raw = _raw_entries(path) if path.exists() else []
        raw.append(entry.model_dump(mode="json"))
        _write_private(path, json.dumps({"tokens": raw}, indent=2) + "\n")
    else:
        old = path.read_text(encoding="utf-8") if path.exists() else (
            "# stripe-identity-mcp bearer tokens: sha256 of each token (the tokens are never stored)\n"
        )
        _write_private(path, old.rstrip("\n") + "\n\n" + _toml_entry(entry))
    load_tokens(path)  # what we wrote must read back


def create_token(
    path: Path | str, name: str, scope: Scope, toolsets: tuple[str, ...] | None = None, live_writes: bool = False
) -> str:
    """Create a token, store its hash in `path`, return the token (show it once, never store it)."""
    token = new_token()
    entry = TokenEntry(name=name, sha256=hash_token(token), scope=scope, toolsets=toolsets, live_writes=live_writes)
    append_entry(path, entry)
    return token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stripe-identity-mcp token", description="bearer tokens for --transport http")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a token, store its hash, print it once")
    create.add_argument("--name", required=True, help="bot name (letters, digits, _ . @ -); named in the audit log")
    create.add_argument("--scope", required=True, choices=["read-only", "writes"])
    create.add_argument("--toolsets", help=f"comma list of {','.join(ALL_TOOLSETS)} (default: all the server enables)")
    create.add_argument("--live-writes", action="store_true", help="allow writes with a live key (scope writes only)")
    create.add_argument("--file", help=f"token file, .toml or .json (default ${TOKENS_ENV})")
    listing = sub.add_parser("list", help="show token names and scopes (never hashes or tokens)")
    listing.add_argument("--file", help=f"token file (default ${TOKENS_ENV})")
    return parser


def main_token(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    file = args.file or os.environ.get(TOKENS_ENV)
    if not file:
        print(f"stripe-identity-mcp token: pass --file tokens.toml (or set {TOKENS_ENV})", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            for entry in load_tokens(file).entries:
                shown = ",".join(entry.toolsets) if entry.toolsets else "all"
                live = " live-writes" if entry.live_writes else ""
                print(f"{entry.name}\t{entry.scope}\ttoolsets={shown}{live}")
            return 0
        if not re.match(NAME_RE, args.name):
            raise TokenFileError("--name: 1–64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
        if args.live_writes and args.scope != "writes":
            raise TokenFileError("--live-writes needs --scope writes")
        toolsets: tuple[str, ...] | None = None
        if args.toolsets is not None:
            toolsets = tuple(t.strip() for t in args.toolsets.split(",") if t.strip())
            unknown = sorted(set(toolsets) - set(ALL_TOOLSETS))
            if unknown or not toolsets:
                raise TokenFileError(f"--toolsets: unknown {unknown}; choose from {', '.join(ALL_TOOLSETS)}")
        token = create_token(file, args.name, args.scope, toolsets, args.live_writes)
    except TokenFileError as exc:
        print(f"stripe-identity-mcp token: {exc}", file=sys.stderr)
        return 2
    print(token, flush=True)
    print(
        f"stored the sha256 of token '{args.name}' ({args.scope}) in {file}. This is the only time the token is "
        "shown: hand it to the bot now (Authorization: Bearer <token>). Restart the server to load it.",
        file=sys.stderr,
    )
    return 0
