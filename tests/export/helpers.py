"""Helpers for export tests: talk to the sandbox over its HTTP API (never its internals for writes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx

from tests import loopback

KEY = "sk_test_sandbox"


def create_customer(sb: Any, **fields: Any) -> dict[str, Any]:
    form: dict[str, str] = {}
    for k, v in fields.items():
        if isinstance(v, dict):
            form.update({f"{k}[{kk}]": vv for kk, vv in v.items()})
        else:
            form[k] = v
    r = loopback.post(f"{sb.base_url}/v1/customers", data=form, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


async def acreate_customer(http: httpx.AsyncClient, sb: Any, **fields: Any) -> dict[str, Any]:
    r = await http.post(f"{sb.base_url}/v1/customers", data=fields, headers={"Authorization": f"Bearer {KEY}"})
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def add_faults(sb: Any, *rules: dict[str, Any]) -> None:
    loopback.post(f"{sb.base_url}/_sandbox/faults", json={"rules": list(rules)}, timeout=10).raise_for_status()


def sandbox_stats(sb: Any) -> dict[str, Any]:
    return loopback.get(f"{sb.base_url}/_sandbox/stats", timeout=10).json()  # type: ignore[no-any-return]


def live_ids(sb: Any) -> set[str]:
    return set(sb.app.state.sandbox.stores["test"].ids)


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
