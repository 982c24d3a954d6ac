"""`stripe-identity-mcp demo` end to end: sandbox + stdio server + MCP client, transcript on stdout."""

from __future__ import annotations

import os
import subprocess
import sys

from stripe_identity_mcp.sandbox import FIXED_IDS


def run_demo(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE")}  # no developer credentials
    return subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "demo", *args],
        env=env,
        cwd=tmp_path,  # like a fresh checkout: no .env, nothing prepared
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_demo_prints_the_scripted_conversation(tmp_path):
    proc = run_demo(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())  # the transcript wraps long lines
    # 1. support lookup: three concepts, labelled, with the duplicate and API-key traps
    assert "resolve_identity" in out
    assert "[customer]" in out and "[team_member]" in out and "[connect_account]" in out
    assert FIXED_IDS["jane"] in out and FIXED_IDS["jane_variant"] in out
    assert "duplicate customers" in out
    # 2. a portal link
    assert "create_portal_session" in out and "https://billing.stripe.com/p/session/" in out
    # 3. offboarding refused without confirmation, then done, with the API-key warning
    assert "REFUSED" in out and "needs confirmation" in out and "Nothing was deactivated" in out
    assert "deactivated: " in out
    assert "does NOT revoke API keys" in out
    assert out.index("REFUSED") < out.index("deactivated: ")
    assert "Traceback" not in proc.stderr


def test_demo_in_process_with_raw_json(tmp_path):
    proc = run_demo(tmp_path, "--in-process", "--raw", "--email", "priya@umbrella.com")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"concept": "connect_account"' in proc.stdout and "Umbrella Ltd" in proc.stdout
