"""Drive an installed stripe-identity-mcp over stdio the way an MCP host does, and fail loudly.

Run it with the python of the environment under test (a fresh venv with only the wheel in it), so
the `mcp` client used here is the one the wheel's dependencies brought in, not the repo's:

    python tools/stdio_smoke.py [--expect-version V] [--prompts a,b] -- stripe-identity-mcp serve --sandbox
    python tools/stdio_smoke.py --bundle DIR      # an unpacked .mcpb: its manifest says how to start it

Checks: initialize (the legacy handshake every host speaks, serverInfo.version), tools/list, one
real `find_customers_by_email` answer from the sandbox (an email taken from `list_customers`, so
the count must be at least 1), prompts/list. Every step is bounded by a timeout; on failure the
server's stderr is printed. With --bundle, the sandbox runs in this process and the manifest's
command is started with the environment the host would build from user_config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

# The first start may have to build an environment (uvx, uv run): give it time, but not forever.
START_TIMEOUT_S = float(os.environ.get("SMOKE_START_TIMEOUT", "300"))
STEP_TIMEOUT_S = 30.0


class SmokeFailure(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment minus any Stripe setting: the check must not depend on the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update(extra or {})
    return env


async def smoke(params: StdioServerParameters, expect_version: str | None, prompts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            # One overall bound; the client's read timeout covers the first answer (which may wait
            # for uvx to build an environment) and each step below has its own, shorter bound.
            with anyio.fail_after(START_TIMEOUT_S + 10 * STEP_TIMEOUT_S):
                async with Client(
                    stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=START_TIMEOUT_S
                ) as client:
                    return await _steps(client, expect_version, prompts)
        except BaseException:
            errlog.seek(0)
            print("---- server stderr ----\n" + errlog.read()[-4000:], file=sys.stderr)
            raise


async def _steps(client: Client, expect_version: str | None, prompts: list[str]) -> dict[str, Any]:
    info = client.server_info
    if info is None or info.name != "stripe-identity-mcp":
        raise SmokeFailure(f"initialize: unexpected serverInfo {info!r}")
    if expect_version:
        check(info.version == expect_version, f"initialize: version {info.version!r}, expected {expect_version!r}")
    with anyio.fail_after(STEP_TIMEOUT_S):
        tools = {t.name for t in (await client.list_tools()).tools}
    check("find_customers_by_email" in tools, f"tools/list: find_customers_by_email missing from {sorted(tools)}")
    with anyio.fail_after(STEP_TIMEOUT_S):
        page = await client.call_tool("list_customers", {"limit": 5})
    check(not page.is_error, f"list_customers failed: {page.content}")
    emails = [c.get("email") for c in (page.structured_content or {}).get("customers", []) if c.get("email")]
    check(bool(emails), f"list_customers returned no customer with an email: {page.structured_content}")
    with anyio.fail_after(STEP_TIMEOUT_S):
        found = await client.call_tool("find_customers_by_email", {"email": emails[0]})
    check(not found.is_error, f"find_customers_by_email failed: {found.content}")
    count = (found.structured_content or {}).get("exact_count", 0)
    check(count >= 1, f"find_customers_by_email({emails[0]!r}) found {count}, the sandbox has that customer")
    with anyio.fail_after(STEP_TIMEOUT_S):
        names = {p.name for p in (await client.list_prompts()).prompts}
    check(set(prompts) <= names, f"prompts/list: missing {sorted(set(prompts) - names)} (have {sorted(names)})")
    check(bool(names), "prompts/list is empty: the prompt files did not make it into the package")
    return {"version": info.version, "tools": len(tools), "prompts": len(names), "exact_count": count}


def _substitute(value: str, bundle: Path, user_config: dict[str, str]) -> str:
    value = value.replace("${__dirname}", str(bundle))
    for key, setting in user_config.items():
        value = value.replace(f"${{user_config.{key}}}", setting)
    return value


@contextmanager
def bundle_params(bundle: Path) -> Iterator[StdioServerParameters]:
    """Start the unpacked bundle as a host would: manifest command, ${...} filled from user_config."""
    from stripe_identity_mcp.sandbox import SandboxConfig, serve_in_thread

    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["server"]["mcp_config"]
    with serve_in_thread(SandboxConfig()) as sandbox:
        # What a user types into the install dialog; the SCIM token left empty (it is optional),
        # writes left at their default. The base URLs are not user_config: they point at the sandbox.
        user_config = {"stripe_api_key": "sk_test_sandbox", "stripe_scim_token": ""}
        for key, spec in manifest.get("user_config", {}).items():
            if key not in user_config and "default" in spec:
                default = spec["default"]  # booleans reach the environment as "true"/"false"
                user_config[key] = json.dumps(default) if isinstance(default, bool) else str(default)
        env = {k: _substitute(v, bundle, user_config) for k, v in config.get("env", {}).items()}
        env.update({"STRIPE_API_BASE": sandbox.base_url, "STRIPE_SCIM_BASE": sandbox.scim_base})
        yield StdioServerParameters(
            command=_substitute(config["command"], bundle, user_config),
            args=[_substitute(a, bundle, user_config) for a in config.get("args", [])],
            env=clean_env(env),
            cwd=tempfile.gettempdir(),
        )


def _describe(exc: BaseException) -> str:
    """The innermost failures (task groups wrap them), without a traceback."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) if isinstance(exc, SmokeFailure) else f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expect-version")
    parser.add_argument("--prompts", default="", help="comma list of prompt names that must be served")
    parser.add_argument("--bundle", type=Path, help="unpacked .mcpb directory (start it from its manifest)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the server command line")
    args = parser.parse_args(argv)
    prompts = [p for p in args.prompts.split(",") if p]
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        if args.bundle:
            with bundle_params(args.bundle.resolve()) as params:
                result = anyio.run(smoke, params, args.expect_version, prompts)
        else:
            check(bool(command), "give the server command after --")
            params = StdioServerParameters(
                command=command[0], args=command[1:], env=clean_env(), cwd=tempfile.gettempdir()
            )
            result = anyio.run(smoke, params, args.expect_version, prompts)
    except Exception as exc:  # noqa: BLE001 - the server's stderr was printed above; one line says what broke
        print(f"stdio smoke FAILED: {_describe(exc)}", file=sys.stderr)
        return 1
    print(f"stdio smoke ok: {json.dumps(result)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
