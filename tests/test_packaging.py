"""Install metadata stays true: server.json (MCP Registry), manifest.json (MCP Bundle), one version.

The built wheel, uvx and the packed bundle are exercised by `make package-check` (CI); these tests
pin what can be checked offline: the registry schema, drift against the server's own registry, and
that the bundle's environment starts the server the way the manifest promises.

tests/data/server.schema.json is the MCP Registry's published schema for server.json, version
2025-12-11 (its `$id`), as the registry itself embeds it for validation
(modelcontextprotocol/registry, internal/validators/schemas/2025-12-11.json), unchanged. Moving to
a newer schema is a deliberate change: replace the file and the `$schema` in server.json together.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from stripe_identity_mcp import __version__
from stripe_identity_mcp.settings import Settings
from stripe_identity_mcp.toolsets import REGISTRY, all_write_tools
from tools import gen_manifests

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests/data/server.schema.json").read_text(encoding="utf-8"))
SERVER_JSON = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
MANIFEST = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
SETTING_VARIABLES = {
    alias for info in Settings.model_fields.values() for alias in getattr(info.validation_alias, "choices", [])
}


def registry_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_server_json_validates_against_the_vendored_registry_schema():
    assert SERVER_JSON["$schema"] == SCHEMA["$id"]  # the schema we validate with is the one it names
    assert registry_errors(SERVER_JSON) == []


def test_the_registry_schema_check_can_fail():
    bad = copy.deepcopy(SERVER_JSON)
    bad["name"] = "no-namespace"  # must be reverse-DNS with exactly one slash
    bad["packages"][0]["version"] = "latest"
    del bad["description"]
    errors = registry_errors(bad)
    assert any(e.startswith("name:") for e in errors) and any("description" in e for e in errors)
    assert any(e.startswith("packages/0/version") for e in errors), errors


def test_server_json_describes_the_pypi_package_with_uvx_and_secret_env_vars():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert SERVER_JSON["version"] == __version__
    (package,) = SERVER_JSON["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == project["name"]
    assert package["version"] == __version__ and package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}
    env = {v["name"]: v for v in package["environmentVariables"]}
    assert env["STRIPE_API_KEY"]["isSecret"] is True and env["STRIPE_API_KEY"]["isRequired"] is True
    assert env["STRIPE_SCIM_TOKEN"]["isSecret"] is True and env["STRIPE_SCIM_TOKEN"]["isRequired"] is False
    for name, variable in env.items():
        assert name in SETTING_VARIABLES, f"{name} is not a setting the server reads"
        assert variable.get("description"), name
    secrets = {name for name, v in env.items() if v.get("isSecret")}
    assert secrets == {"STRIPE_API_KEY", "STRIPE_SCIM_TOKEN"}


def test_server_json_describes_the_remote_streamable_http_transport():
    (remote,) = SERVER_JSON["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"].endswith("/mcp")
    for variable in re.findall(r"\{(\w+)\}", remote["url"]):
        assert remote["variables"][variable]["description"]
    (auth,) = remote["headers"]
    assert auth["name"] == "Authorization" and auth["isSecret"] is True and auth["value"].startswith("Bearer ")


def test_readme_names_the_registry_server_for_the_pypi_ownership_check():
    # The MCP Registry checks a PyPI package by looking for `mcp-name: <name>` in its description.
    assert f"mcp-name: {SERVER_JSON['name']}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_manifest_and_server_json_are_what_the_generator_makes():
    """The tool list is the server's own (all toolsets, writes on) and every version is __version__."""
    assert MANIFEST == gen_manifests.generated_manifest(MANIFEST)
    assert SERVER_JSON == gen_manifests.generated_server_json(SERVER_JSON)
    names = [t["name"] for t in MANIFEST["tools"]]
    assert {"find_customers_by_email", "delete_customer", "provision_team_member", "export_customers"} <= set(names)
    assert len(names) == len(set(names))


def test_manifest_user_config_key_sensitive_scim_optional_writes_off():
    config = MANIFEST["user_config"]
    assert config["stripe_api_key"]["sensitive"] is True and config["stripe_api_key"]["required"] is True
    assert config["stripe_scim_token"]["sensitive"] is True and config["stripe_scim_token"]["required"] is False
    assert config["allow_writes"]["type"] == "boolean" and config["allow_writes"]["default"] is False
    server = MANIFEST["server"]
    assert MANIFEST["manifest_version"] == "0.4" and server["type"] == "uv"
    assert (ROOT / server["entry_point"]).is_file()
    env = server["mcp_config"]["env"]
    assert set(env) <= SETTING_VARIABLES
    used = {m for v in env.values() for m in re.findall(r"\$\{user_config\.(\w+)\}", v)}
    assert used == set(config), "every user_config value reaches the server, and only those exist"


def bundle_env(sandbox, **user: str) -> dict[str, str]:
    """The environment a host builds from the manifest with these user_config answers."""
    defaults = {k: json.dumps(v["default"]) if isinstance(v.get("default"), bool) else str(v.get("default", ""))
                for k, v in MANIFEST["user_config"].items()}  # fmt: skip
    answers = {**defaults, "stripe_api_key": "sk_test_sandbox", **user}
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    for name, value in MANIFEST["server"]["mcp_config"]["env"].items():
        env[name] = re.sub(r"\$\{user_config\.(\w+)\}", lambda m: answers[m.group(1)], value)
    env.update({"STRIPE_API_BASE": sandbox.base_url, "STRIPE_SCIM_BASE": sandbox.scim_base})
    return env


async def bundle_tools(env: dict[str, str]) -> set[str]:
    # The manifest's `uv run … stripe-identity-mcp serve` runs this same entry point with `serve`.
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "stripe_identity_mcp", "serve"], env=env, cwd=tempfile.gettempdir()
    )
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("find_customers_by_email", {"email": "nobody@example.com"})
            assert not found.is_error, found.content
            return tools


@pytest.mark.anyio
async def test_bundle_defaults_start_read_only_and_without_team_tools(sandbox):
    tools = await bundle_tools(bundle_env(sandbox))  # key given; SCIM token empty; allow_writes default
    read_tools = {t["name"] for t in MANIFEST["tools"]}
    assert "find_customers_by_email" in tools and tools <= read_tools
    assert not tools & {td.name for td in all_write_tools()}  # no write tool of any toolset
    assert not tools & {td.name for ts in REGISTRY if ts.name == "team" for td in ts.tools}


@pytest.mark.anyio
async def test_bundle_with_writes_and_scim_token_offers_every_manifest_tool(sandbox):
    tools = await bundle_tools(bundle_env(sandbox, allow_writes="true", stripe_scim_token="scim_sandbox"))
    assert tools == {t["name"] for t in MANIFEST["tools"]}


def test_one_version_source_reaches_pyproject_cli_and_initialize(tmp_path):
    import subprocess

    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in build["project"] and build["project"]["dynamic"] == ["version"]
    assert build["tool"]["hatch"]["version"]["path"] == "stripe_identity_mcp/__init__.py"
    proc = subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "--version"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout.strip() == f"stripe-identity-mcp {__version__}"


def test_readme_install_section_starts_with_the_one_line():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Install\n", 1)[1]
    first_block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert section.lstrip().startswith("```sh") and first_block == "uvx stripe-identity-mcp serve --sandbox\n"
    assert readme.index("## Install") < readme.index("## Quick start (fresh clone)")
    for command in ("make serve", "make test"):  # the clone route stays next to it
        assert command in readme
