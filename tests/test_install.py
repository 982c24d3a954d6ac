"""tools/stdio_smoke.py, the check `make package-check` runs on the installed wheel, uvx and the bundle.

Here it drives the checkout's entry point (the same console code the wheel installs), so a broken
smoke check shows up in `make test` and not only in CI's package-check; and it must be able to fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stripe_identity_mcp import __version__

ROOT = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-m", "stripe_identity_mcp", "serve", "--sandbox"]


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SMOKE_START_TIMEOUT": "60"}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/stdio_smoke.py"), *args],
        env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_smoke_passes_initialize_tools_a_real_lookup_and_prompts():
    proc = smoke("--expect-version", __version__, "--prompts", "support_lookup,offboard_team_member", "--", *SERVER)
    assert proc.returncode == 0, proc.stderr
    assert '"exact_count": 1' in proc.stderr and f'"version": "{__version__}"' in proc.stderr


def test_smoke_fails_on_a_wrong_version_or_a_missing_prompt():
    wrong = smoke("--expect-version", "9.9.9", "--", *SERVER)
    assert wrong.returncode == 1 and "expected '9.9.9'" in wrong.stderr
    missing = smoke("--prompts", "no_such_prompt", "--", *SERVER)
    assert missing.returncode == 1 and "no_such_prompt" in missing.stderr


def test_smoke_fails_when_the_server_refuses_to_start():
    proc = smoke("--", sys.executable, "-m", "stripe_identity_mcp", "serve", "--sandbox", "--toolsets", "bogus")
    assert proc.returncode != 0
    assert "unknown toolsets" in proc.stderr  # the server's own stderr is shown
    assert "stdio smoke FAILED: " in proc.stderr and "Traceback" not in proc.stderr
