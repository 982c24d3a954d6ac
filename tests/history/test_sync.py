"""`sync`: first run = full export, later runs = events; exact against the sandbox's own state."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests import loopback
from tests.conftest import SANDBOX_KEY, running_sandbox
from tests.history.helpers import mirror_live, sandbox_live, sync

AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}
ROOT = Path(__file__).resolve().parents[2]


def api(sb, method: str, path: str, data: dict | None = None) -> dict:
    r = loopback.request(method, sb.base_url + path, data=data, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_first_sync_then_changes_then_incremental_sync_is_exact(tmp_path):
    db = tmp_path / "mirror.db"
    with running_sandbox(customers=150) as sb:
        first = sync(sb, db)
        assert first.kind == "full" and first.created == len(sandbox_live(sb)) == first.customers
        assert mirror_live(db) == sandbox_live(sb)
        ids = sorted(sandbox_live(sb))
        new = [api(sb, "POST", "/v1/customers", {"email": f"n{i}@example.com"})["id"] for i in range(3)]
        api(sb, "POST", f"/v1/customers/{ids[0]}", {"email": "changed@example.com", "metadata[k]": "v"})
        api(sb, "POST", f"/v1/customers/{new[0]}", {"name": "Renamed"})
        api(sb, "DELETE", f"/v1/customers/{ids[1]}")
        api(sb, "DELETE", f"/v1/customers/{new[1]}")  # created and deleted between two syncs
        loopback.post(sb.base_url + "/_sandbox/dashboard", json={"customer": ids[2], "params": {"phone": "+15550100"}})
        second = sync(sb, db)
        assert second.kind == "incremental"
        assert (second.created, second.updated, second.deleted) == (2, 2, 1)
        assert second.events == 8 and second.requests == 1  # one page of events
        assert mirror_live(db) == sandbox_live(sb)
        assert mirror_live(db)[ids[0]]["email"] == "changed@example.com"
        third = sync(sb, db)
        assert (third.created, third.updated, third.deleted, third.events, third.requests) == (0, 0, 0, 0, 1)


def test_a_cursor_older_than_the_retention_is_said_and_answered_with_a_re_export(tmp_path):
    db = tmp_path / "mirror.db"
    with running_sandbox(customers=40) as sb:
        api(sb, "POST", "/v1/customers", {"email": "before@example.com"})
        sync(sb, db)
        victim = sorted(sandbox_live(sb))[0]
        api(sb, "DELETE", f"/v1/customers/{victim}")
        assert loopback.post(sb.base_url + "/_sandbox/events/expire").json()["expired"] >= 2
        again = sync(sb, db)
        assert again.kind == "re-export" and "30 days" in again.note and "re-exported" in again.note
        assert victim not in mirror_live(db)
        assert mirror_live(db) == sandbox_live(sb)


class Killed(Exception):
    pass


def test_a_killed_first_sync_resumes_where_it_stopped(tmp_path):
    db = tmp_path / "mirror.db"
    with running_sandbox(customers=400) as sb:
        pages = [0]

        async def kill_after_two_pages(progress):
            # The time windows are paged at once and empty ones can answer first: the kill waits
            # (from the second page on) for a page that brought customers, so some are written.
            pages[0] += 1
            if pages[0] >= 2 and progress.count > 0:
                raise Killed

        with pytest.raises(Killed):
            sync(sb, db, kill_after_two_pages)
        assert 0 < len(mirror_live(db)) < 400
        api(sb, "POST", "/v1/customers", {"email": "during@example.com"})  # changed while it was down
        resumed = sync(sb, db)
        assert resumed.kind == "resumed"
        assert mirror_live(db) == sandbox_live(sb)
        fresh_db = tmp_path / "fresh.db"
        full = sync(sb, fresh_db)
        assert resumed.requests < full.requests  # the pages read before the kill were not read again


OPS = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete", "dashboard"]), st.integers(0, 50), st.sampled_from(["a", "B", ""])),
    max_size=12,
)


def test_after_any_changes_sync_leaves_the_mirror_equal_to_the_sandbox(tmp_path):
    db = tmp_path / "mirror.db"
    with running_sandbox(empty=True) as sb:
        for i in range(5):
            api(sb, "POST", "/v1/customers", {"email": f"seed{i}@example.com"})
        sync(sb, db)

        @hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(OPS)
        def prop(ops):
            for op, n, text in ops:
                live = sorted(sandbox_live(sb))
                if op == "create" or not live:
                    api(sb, "POST", "/v1/customers", {"email": f"h{n}{text}@example.com", "metadata[n]": str(n)})
                    continue
                cid = live[n % len(live)]
                if op == "update":
                    api(sb, "POST", f"/v1/customers/{cid}", {"email": f"u{n}{text}@Example.com", f"metadata[m{n % 3}]": text})
                elif op == "dashboard":
                    loopback.post(sb.base_url + "/_sandbox/dashboard", json={"customer": cid, "params": {"name": f"d{n}"}})
                else:
                    api(sb, "DELETE", f"/v1/customers/{cid}")
            sync(sb, db)
            assert mirror_live(db) == sandbox_live(sb)

        prop()


def test_cli_sync_and_export_from_db(tmp_path):
    db, out = tmp_path / "m.db", tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["PYTHONPATH"] = str(ROOT)
    with running_sandbox(customers=30) as sb:
        base = [sys.executable, "-m", "stripe_identity_mcp"]
        flags = ["--api-key", SANDBOX_KEY, "--api-base", sb.base_url]
        r = subprocess.run([*base, "sync", "--db", str(db), *flags], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["kind"] == "full" and summary["customers"] == len(sandbox_live(sb))
        assert "created" in r.stderr and "current as of" in r.stderr
        before = sb.sandbox.requests
        r = subprocess.run([*base, "export", "--from-db", str(db), "--out", str(out), *flags],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert sb.sandbox.requests == before  # the mirror answered, Stripe was not called
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert {c["id"]: c for c in rows} == sandbox_live(sb)
        assert json.loads(r.stdout)["count"] == len(rows)
        r = subprocess.run([*base, "export", "--from-db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x.csv")],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert r.returncode == 2 and "sync --db" in r.stderr


def test_a_sync_process_killed_by_sigkill_resumes(tmp_path):
    """A real kill -9 during the first export: the next run continues it and the mirror ends exact."""
    import signal

    db = tmp_path / "m.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["PYTHONPATH"] = str(ROOT)
    with running_sandbox(customers=400, latency_ms=300) as sb:
        cmd = [sys.executable, "-m", "stripe_identity_mcp", "sync", "--db", str(db),
               "--api-key", SANDBOX_KEY, "--api-base", sb.base_url]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
        seen = b""
        # the progress line is written after a page's rows were committed (a first "0 customers" line may come before)
        while re.search(rb"\s[1-9][\d,]* customers", seen) is None:
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"sync ended before its first page: {seen!r}"
            seen += chunk
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        assert 0 < len(mirror_live(db)) < 400
        r = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["kind"] == "resumed"
        assert mirror_live(db) == sandbox_live(sb)
