"""`stripe-identity-mcp export` as a real subprocess: export, refusals, Ctrl-C + --resume to an identical set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from stripe_identity_mcp.export.paths import checkpoint_path
from tests.export.helpers import csv_rows, jsonl_ids, live_ids

ROOT = Path(__file__).resolve().parents[2]


def env_for(sb: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PYTHON"))}
    env.update({"STRIPE_API_KEY": "sk_test_sandbox", "STRIPE_API_BASE": sb.base_url, "PYTHONPATH": str(ROOT)})
    return env


def cli(sb: Any, *args: str) -> list[str]:
    return [sys.executable, "-m", "stripe_identity_mcp", "export", *args]


def start_cli(sb: Any, cwd: Path, *args: str) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start a CLI export and return once its progress line shows it is exporting (bounded read)."""
    proc = subprocess.Popen(cli(sb, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(sb), cwd=cwd)
    assert proc.stderr is not None
    seen = b""
    while b"customers" not in seen and len(seen) < 100_000:
        chunk = proc.stderr.read1(4096)  # type: ignore[attr-defined]
        if not chunk:
            break
        seen += chunk
    assert b"customers" in seen, seen.decode(errors="replace")
    return proc, seen


def run_cli(sb: Any, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stripe_identity_mcp", "export", *args],
        capture_output=True, text=True, timeout=120, env=env_for(sb), cwd=cwd,
    )  # fmt: skip


def test_cli_export_csv_and_refusals(sandbox: Any, tmp_path: Path) -> None:
    r = run_cli(sandbox, "--out", "c.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    rows = csv_rows(tmp_path / "c.csv")
    assert {row["id"] for row in rows} == live_ids(sandbox) and summary["count"] == len(rows)
    assert "customers" in r.stderr and "sha256" in r.stderr  # progress line + human summary
    again = run_cli(sandbox, "--out", "c.csv", "--quiet", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    nothing = run_cli(sandbox, "--out", "c.csv", "--resume", cwd=tmp_path)
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr
    fmt = run_cli(sandbox, "--out", "c.txt", cwd=tmp_path)
    assert fmt.returncode == 2 and "--format" in fmt.stderr
    quiet = run_cli(sandbox, "--out", "q.jsonl", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_cli_ctrl_c_then_resume_gives_identical_set(sandbox_factory: Any, tmp_path: Path) -> None:
    with sandbox_factory(customers=3000, latency_ms=20) as sb:
        out = tmp_path / "i.jsonl"
        # wait (bounded) until the progress line shows records written, then press Ctrl-C
        proc, seen = start_cli(sb, tmp_path, "--out", str(out), "--rate", "20")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        err = (seen + err).decode()
        assert proc.returncode == 130, err
        assert "--resume" in err and "interrupted" in err
        assert checkpoint_path(out).exists()
        partial = jsonl_ids(out) if out.read_text().endswith("\n") else []
        assert len(partial) < len(live_ids(sb))
        r = run_cli(sb, "--out", str(out), "--resume", "--rate", "1000", "--quiet", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        ids = jsonl_ids(out)
        assert len(ids) == len(set(ids)) and set(ids) == live_ids(sb)
        assert json.loads(r.stdout)["resumed"] is True and not checkpoint_path(out).exists()
