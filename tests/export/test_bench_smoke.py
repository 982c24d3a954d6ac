"""The export benchmark in its small-N smoke mode completes and reports a correct set for every method."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_export_bench_smoke() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "export_bench.py"), "--n", "500", "--latency-ms", "5", "--timeout", "120"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:1] in (["ours"], ["stripe-python"], ["naive"])]
    assert [row[0] for row in rows] == ["ours", "stripe-python", "naive"]
    assert all(row[-1] == "yes" for row in rows), r.stdout
