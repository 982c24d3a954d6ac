"""Regenerate the parts of manifest.json (MCP Bundle) and server.json (MCP Registry) that must not drift.

    python tools/gen_manifests.py          # rewrite them
    python tools/gen_manifests.py --check  # exit 1 if they are stale (tests/test_packaging.py does the same)

Generated: every `version` (from stripe_identity_mcp.__version__, the one version source) and the
bundle's `tools` list, taken from the server itself built with every toolset and writes on, so the
list is what the registry registers, not what someone remembered to type. Everything else in both
files is written by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from stripe_identity_mcp import __version__

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.json"
SERVER_JSON = ROOT / "server.json"


def registry_tools() -> list[dict[str, str]]:
    """Name and one-line description of every tool the server can register (all toolsets, writes on)."""
    from stripe_identity_mcp.server import build_server
    from stripe_identity_mcp.settings import Settings

    # Nothing is contacted: building registers tools; connections open only in the server's lifespan.
    values: dict[str, Any] = {"api_key": "sk_test_manifest", "scim_token": "scim_manifest", "allow_writes": True}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    server = build_server(settings)

    async def listing() -> list[dict[str, str]]:
        tools = await server.list_tools()
        return [{"name": t.name, "description": (t.description or "").strip().splitlines()[0]} for t in tools]

    return anyio.run(listing)


def generated_manifest(current: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    out["version"] = __version__
    out["tools"] = registry_tools()
    return out


def generated_server_json(current: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    out["version"] = __version__
    out["packages"] = [{**p, "version": __version__} for p in current.get("packages", [])]
    return out


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for path, generate in ((MANIFEST, generated_manifest), (SERVER_JSON, generated_server_json)):
        text = path.read_text(encoding="utf-8")
        wanted = render(generate(json.loads(text)))
        if text != wanted:
            stale.append(path.name)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    if stale and args.check:
        print(f"stale: {', '.join(stale)}; run `python tools/gen_manifests.py`", file=sys.stderr)
        return 1
    print(f"{'updated' if stale else 'up to date'}: manifest.json, server.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
