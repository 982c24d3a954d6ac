"""Honest details: `--version`, `doctor` lines and exit codes, -32602 for a missing resource, the README's
seed people, and `make serve` writing nothing but the MCP stream on stdout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS

import stripe_identity_mcp
from stripe_identity_mcp.sandbox import FIXED_IDS
from tests import loopback
from tests.conftest import SANDBOX_KEY, SCIM_TOKEN, make_settings, mcp_client, running_sandbox

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )  # fmt: skip


# --- --version --------------------------------------------------------------------------------------
def test_version_prints_the_package_version(tmp_path):
    proc = run_cli("--version", cwd=tmp_path)
    # One version source: pyproject declares the version dynamic and hatch reads it from __init__.py.
    build = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in build["project"]["dynamic"] and "version" not in build["project"]
    assert build["tool"]["hatch"]["version"]["path"] == "stripe_identity_mcp/__init__.py"
    declared = stripe_identity_mcp.__version__
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"stripe-identity-mcp {declared}"


# --- doctor -----------------------------------------------------------------------------------------
def doctor(sb: Any, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"STRIPE_API_KEY": SANDBOX_KEY, "STRIPE_API_BASE": sb.base_url, "STRIPE_SCIM_BASE": sb.scim_base,
            "STRIPE_SCIM_TOKEN": SCIM_TOKEN}  # fmt: skip
    return run_cli("doctor", env_extra={**base, **env}, cwd=tmp_path)


def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}


def test_doctor_all_good_counts_members_and_exits_zero(tmp_path):
    with running_sandbox() as sb:
        total = loopback.get(sb.scim_base + "/Users", params={"count": 0},
                          headers={"Authorization": f"Bearer {SCIM_TOKEN}"}).json()["totalResults"]  # fmt: skip
        proc = doctor(sb, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert total > 1 and f"({total} members)" in lines(proc)["scim"]
    assert "None" not in proc.stdout and all(" ok " in line for line in lines(proc).values())


def test_doctor_a_failing_check_prints_fail_and_exits_non_zero(tmp_path):
    with running_sandbox(portal_configured={"test": False, "live": False}) as sb:
        no_portal = doctor(sb, tmp_path)
        bad_scim = doctor(sb, tmp_path, STRIPE_SCIM_TOKEN="scim_wrong_token")
    assert no_portal.returncode == 1, no_portal.stdout
    assert re.match(r"portal\s+FAIL none in test mode", lines(no_portal)["portal"])
    assert "1 check failed: portal" in no_portal.stderr
    assert bad_scim.returncode == 1 and re.match(r"scim\s+FAIL", lines(bad_scim)["scim"])
    assert "scim_wrong_token" not in bad_scim.stdout + bad_scim.stderr
    for proc in (no_portal, bad_scim):
        assert "None" not in proc.stdout and "Traceback" not in proc.stderr


def test_doctor_invalid_configuration_is_a_failing_line_and_exit_2(tmp_path):
    proc = run_cli("doctor", env_extra={"STRIPE_API_KEY": "sk_test_x", "STRIPE_API_BASE": "http://u:pw@127.0.0.1:9"},
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert re.match(r"config\s+FAIL STRIPE_API_BASE must not contain user:password@", proc.stdout)
    assert "u:pw" not in proc.stdout + proc.stderr


# --- resources: a missing object is -32602 ----------------------------------------------------------
@pytest.mark.anyio
async def test_a_missing_resource_is_invalid_params_and_the_member_hint_does_not_talk_about_modes(sandbox):
    sbx = sandbox.app.state.sandbox
    async with mcp_client(make_settings(sandbox)) as client:
        before = sbx.requests
        with pytest.raises(MCPError) as customer:
            await client.read_resource("stripe://customers/cus_DoesNotExist1")
        with pytest.raises(MCPError) as member:
            await client.read_resource("stripe://team-members/00000000-0000-0000-0000-000000000000")
        asked = sbx.requests - before
    assert asked >= 1  # the customer really was looked up at the sandbox (SCIM is counted apart)
    assert customer.value.error.code == INVALID_PARAMS and "status=404" in str(customer.value)
    assert member.value.error.code == INVALID_PARAMS and "404" in str(member.value)
    assert "mode" not in str(member.value) and "list_team_members" in str(member.value)


@pytest.mark.anyio
async def test_other_resource_failures_stay_internal_errors(sandbox):
    async with mcp_client(make_settings(sandbox, api_key="rk_test_sandbox")) as client:
        with pytest.raises(MCPError) as denied:
            await client.read_resource(f"stripe://accounts/{FIXED_IDS['acct_jane']}")
    assert denied.value.error.code == INTERNAL_ERROR and "status=403" in str(denied.value)


# --- README: what the seed people really show -------------------------------------------------------
@pytest.mark.anyio
async def test_readme_tells_the_truth_about_lee(sandbox):
    readme = " ".join((REPO / "README.md").read_text().split())
    async with mcp_client(make_settings(sandbox)) as client:
        resolved = (await client.call_tool("resolve_identity", {"email": "lee@initech.com"})).structured_content
        got = (await client.call_tool("get_customer", {"customer_id": FIXED_IDS["lee_deleted"]})).structured_content
    assert resolved["customers"] == [] and resolved["team_member"]["active"] is True
    assert got["deleted"] is True
    claim = readme[readme.index("`lee@initech.com`"):][:400]
    assert "no customer" in claim and FIXED_IDS["lee_deleted"] in claim and "active" in claim


# --- make serve: stdout is the MCP stream and nothing else ------------------------------------------
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "make-test", "version": "0"},
    },
}


def fake_venv_python(tmp_path: Path) -> Path:
    """A stand-in `python3` for a fresh clone: `-m venv DIR` builds a venv whose `pip` is chatty on stdout
    and whose console script runs this checkout; no network, no real install."""
    fake = tmp_path / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "fake python: $*"\n'  # stdout on purpose: the Makefile must send it to stderr
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then\n'
        '  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"\n'
        f'  printf \'#!/bin/sh\\nexec "%s" -m stripe_identity_mcp "$@"\\n\' "{sys.executable}" \\\n'
        '    > "$3/bin/stripe-identity-mcp"\n'
        '  chmod +x "$3/bin/stripe-identity-mcp"\n'
        "fi\n"
    )
    fake.chmod(0o755)
    return fake


async def _read_line(stream: Any, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive()
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


@pytest.mark.parametrize(
    ("fresh", "elsewhere"), [(False, False), (True, False), (False, True)],
    ids=["venv-present", "fresh-clone", "from-another-directory"],
)  # fmt: skip
@pytest.mark.anyio
async def test_make_serve_writes_only_the_mcp_stream_on_stdout(tmp_path, fresh, elsewhere):
    venv = tmp_path / "venv"
    # As an MCP client starts it: not under another make (this suite may itself run under `make test`).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "MAKE"))}
    env["PYTHONPATH"] = str(REPO)
    # The README's form for a client config that cannot set a working directory.
    argv = ["make", "-C", str(REPO), "--no-print-directory"] if elsewhere else ["make"]
    argv += ["serve", f"VENV={venv}"]
    if fresh:  # no venv yet: the install recipe runs first
        argv.append(f"PYTHON={fake_venv_python(tmp_path)}")
    else:
        (venv / "bin").mkdir(parents=True)
        script = venv / "bin" / "stripe-identity-mcp"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stripe_identity_mcp "$@"\n')
        script.chmod(0o755)
        (venv / ".installed").touch()  # newer than pyproject.toml: nothing to install
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        cwd = tmp_path if elsewhere else REPO
        process = await anyio.open_process(argv, cwd=cwd, env=env, stderr=stderr, start_new_session=True)
    try:
        assert process.stdin is not None and process.stdout is not None
        buffer = bytearray()
        with anyio.fail_after(60):
            await process.stdin.send(json.dumps(INIT).encode() + b"\n")
            first = await _read_line(process.stdout, buffer)
            answer = json.loads(first)  # the very first stdout bytes are the server's JSON-RPC answer
            await process.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
            await process.stdin.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
            tools = json.loads(await _read_line(process.stdout, buffer))
            await process.stdin.aclose()  # EOF: the server exits, and make with it
            async for chunk in process.stdout:
                buffer.extend(chunk)
            code = await process.wait()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)  # only the group this test started
            await process.wait()
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"], answer
    assert tools["id"] == 2 and any(t["name"] == "describe_access" for t in tools["result"]["tools"])
    for line in bytes(buffer).splitlines():  # anything after the answers is JSON-RPC too
        json.loads(line)
    err = stderr_path.read_text()
    assert code == 0, err
    assert "sandbox listening on" in err
    if fresh:
        assert "fake python: -m pip install --quiet -e .[test]" in err and "setting up" in err
