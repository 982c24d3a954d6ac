"""Layering, lowest first: settings, models → clients → toolsets → server → transports/CLI; no cycles.

Read from the source by tools/import_cycles.py: every import counts, function-local and
TYPE_CHECKING ones included (a local import that closes a cycle is a cycle waiting for its call).
"""

from __future__ import annotations

from pathlib import Path

from tools.import_cycles import cycles, import_graph

PKG = "stripe_identity_mcp"

GRAPH = import_graph()


def imports_of(prefix: str) -> dict[str, set[str]]:
    """For each module under `prefix` (a module or a package), the package modules it imports."""
    return {m: deps for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".")}


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_checker_sees_a_cycle_through_a_function_local_import(tmp_path: Path):
    pkg = tmp_path / "demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo_pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from demo_pkg import a\n    return a\n")
    (pkg / "c.py").write_text("from . import a\n")
    assert cycles(import_graph(tmp_path, "demo_pkg")) == [["demo_pkg.a", "demo_pkg.b"]]


def test_no_import_cycles_in_the_package():
    assert cycles(GRAPH) == [], "import cycles (python tools/import_cycles.py)"


def test_the_sandbox_imports_nothing_of_the_package_outside_itself():
    outside = {m: sorted(d for d in deps if not under(d, f"{PKG}.sandbox")) for m, deps in imports_of(f"{PKG}.sandbox").items()}
    assert {m: d for m, d in outside.items() if d} == {}


def test_models_import_nothing_from_toolsets_server_or_transports():
    higher = (f"{PKG}.toolsets", f"{PKG}.server", f"{PKG}.transport_http", f"{PKG}.cli")
    bad = {m: sorted(d for d in deps if under(d, *higher)) for m, deps in imports_of(f"{PKG}.models").items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_toolsets_import_nothing_from_the_server_or_the_transports():
    higher = (f"{PKG}.server", f"{PKG}.transport_http", f"{PKG}.http_auth", f"{PKG}.http_oauth", f"{PKG}.cli")
    bad = {m: sorted(d for d in deps if under(d, *higher)) for m, deps in imports_of(f"{PKG}.toolsets").items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_only_transports_and_the_cli_build_the_server():
    users = sorted(m for m, deps in GRAPH.items() if f"{PKG}.server" in deps)
    assert users == [f"{PKG}.cli", f"{PKG}.demo", f"{PKG}.transport_http"]


def test_settings_sit_below_clients_models_and_toolsets():
    higher = (f"{PKG}.clients", f"{PKG}.models", f"{PKG}.toolsets", f"{PKG}.server", f"{PKG}.deps")
    assert sorted(d for d in GRAPH[f"{PKG}.settings"] if under(d, *higher)) == []


def test_the_export_sync_and_doctor_commands_start_without_the_mcp_sdk():
    """The CLIs that talk to Stripe only (export, sync, doctor) do not import the MCP SDK: it costs
    ~0.7 s of CPU at every start (its pydantic models), and card checks or audit lines do not need it."""
    import subprocess
    import sys

    modules = [
        "stripe_identity_mcp.export.cli", "stripe_identity_mcp.export.engine", "stripe_identity_mcp.deps",
        "stripe_identity_mcp.mirror.cli", "stripe_identity_mcp.mirror.sync", "stripe_identity_mcp.mirror.export",
        "stripe_identity_mcp.doctor", "stripe_identity_mcp.audit_log", "stripe_identity_mcp.cards",
    ]  # fmt: skip
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
