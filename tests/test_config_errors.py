"""Configuration errors read as sentences: the flag or variable, the bad part, the allowed values.

Run as the user runs it (a subprocess of the console entry point), so what is checked is exactly
what lands on the terminal: no pydantic wording or docs URL, no traceback, nothing on stdout (the
MCP channel), and the sandbox is not started before the refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stripe_identity_mcp.settings import ALL_TOOLSETS

KEY = "sk_test_configerrors"


def run_cli(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", *argv],
        env=base,
        cwd=tmp_path,  # no .env from the developer's checkout
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_sentence(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    err = proc.stderr
    for part in expected:
        assert part in err, err
    for noise in ("pydantic", "errors.pydantic.dev", "Traceback", "Input should be", "For further information"):
        assert noise not in err, err
    assert "sandbox listening" not in err, "the sandbox was started before the settings were checked"
    assert len(err.strip().splitlines()) == 1, err


def test_unknown_toolset_flag_names_the_flag_the_bad_name_and_the_choices(tmp_path):
    proc = run_cli(tmp_path, "serve", "--sandbox", "--toolsets", "customers,bogus")
    assert_sentence(proc, "--toolsets", "'bogus'", ", ".join(ALL_TOOLSETS))
    assert "'customers'" not in proc.stderr  # only the bad part is named


def test_unknown_toolset_flag_without_a_key_is_still_the_toolset_error(tmp_path):
    assert_sentence(run_cli(tmp_path, "serve", "--toolsets", "bogus"), "--toolsets", "'bogus'", "customers")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("STRIPE_IDENTITY_MCP_TOOLSETS", "teams", "customers, billing, team"),
        ("STRIPE_IDENTITY_MCP_ALLOW_WRITES", "maybe", "true or false"),
        ("STRIPE_IDENTITY_MCP_READ_ONLY", "sometimes", "true or false"),
        ("STRIPE_IDENTITY_MCP_CONFIRM", "always", "one of elicit, param-only"),
        ("STRIPE_IDENTITY_MCP_LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("STRIPE_IDENTITY_MCP_MAX_RETRIES", "99", "a whole number from 0 to 10"),
        ("STRIPE_IDENTITY_MCP_TEST_RATE", "-1", "a number greater than 0"),
        ("STRIPE_IDENTITY_MCP_TIMEOUT", "soon", "a number greater than 0"),
    ],
)
def test_every_bad_variable_names_itself_its_value_and_what_is_allowed(tmp_path, variable, value, allowed):
    proc = run_cli(tmp_path, "serve", "--sandbox", env={variable: value})
    assert_sentence(proc, variable, repr(value), allowed)


def test_a_bad_value_in_dotenv_is_named_like_the_environment_variable(tmp_path):
    (tmp_path / ".env").write_text("STRIPE_API_KEY=sk_test_x\nSTRIPE_IDENTITY_MCP_ALLOW_WRITES=ja\n")
    assert_sentence(run_cli(tmp_path, "serve"), "STRIPE_IDENTITY_MCP_ALLOW_WRITES", "'ja'", "true or false")


def test_several_bad_settings_give_one_sentence_each(tmp_path):
    proc = run_cli(
        tmp_path, "serve", "--sandbox", "--toolsets", "nope",
        env={"STRIPE_IDENTITY_MCP_CONFIRM": "x", "STRIPE_IDENTITY_MCP_MAX_RETRIES": "-3"},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert any("--toolsets" in line and "'nope'" in line for line in lines)
    assert any("STRIPE_IDENTITY_MCP_CONFIRM is 'x'" in line for line in lines)
    assert any("STRIPE_IDENTITY_MCP_MAX_RETRIES is '-3'" in line and "0 to 10" in line for line in lines)
    assert "sandbox listening" not in proc.stderr and "Input should be" not in proc.stderr


def test_a_rejected_credential_is_named_but_never_echoed(tmp_path):
    # A key with a trailing CR (CRLF .env): named, the problem described, the value not shown.
    proc = run_cli(tmp_path, "serve", env={"STRIPE_API_KEY": KEY + "\r"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "STRIPE_API_KEY" in proc.stderr and "carriage return" in proc.stderr
    assert KEY not in proc.stderr and "configerrors" not in proc.stderr


def test_export_refuses_bad_settings_before_starting_its_sandbox(tmp_path):
    proc = run_cli(
        tmp_path, "export", "--sandbox", "--out", str(tmp_path / "c.jsonl"),
        env={"STRIPE_IDENTITY_MCP_ALLOW_WRITES": "maybe"},
    )  # fmt: skip
    assert_sentence(proc, "STRIPE_IDENTITY_MCP_ALLOW_WRITES", "'maybe'", "true or false")
    assert not (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize("port", ["abc", "70000", "-1"])
def test_a_bad_port_names_the_flag_the_value_and_the_range(tmp_path, port):
    proc = run_cli(tmp_path, "serve", "--transport", "http", "--sandbox", "--port", port)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"argument --port: '{port}' is not a port: expected a whole number from 0 to 65535" in proc.stderr
    assert "Traceback" not in proc.stderr and "sandbox listening" not in proc.stderr
