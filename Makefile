# Two commands for a fresh clone:  `make serve` (MCP server on stdio against the embedded sandbox)
# and `make test` (the whole test suite). Both create .venv and install what they need first.
#
# `make serve` speaks MCP on stdout, so make must write nothing else there: recipes are silent (@)
# and set-up output goes to stderr. (Started from another make, make 4.3 itself prints "Entering
# directory" on stdout; add --no-print-directory then.)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test check demo install bench clean toolsnaps package-check bundle manifests conformance

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run only)..." >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet -e '.[test]' >&2
	@touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	@exec $(BIN)/stripe-identity-mcp serve --sandbox

demo: $(STAMP)
	@$(BIN)/stripe-identity-mcp demo

# The whole suite in parallel (pytest-xdist): two workers per core. About a fifth of the run waits on
# something (server subprocesses, sockets, timeouts), and a worker costs ~5 s of CPU to start. On
# 2 cores, pytest wall / CPU-s: 3 workers 104 s / 168, 106 / 175; 4 workers 90 / 167, 95 / 175;
# 5 workers 104 / 199; 6 workers 95 / 187.
# `check` first: ruff (ruff.toml), mypy (mypy.ini); both keep their caches in the tree.
#
# Start-up is ~10 % of the run, so two things keep it short. Bytecode: the package is compiled once
# and the tests may write .pyc (and pytest its rewritten test modules), even where the environment
# sets PYTHONDONTWRITEBYTECODE — else every worker and each of the ~60 server subprocesses compiles
# the package from source again. Plugins: named explicitly with autoload off, because an autoloaded
# plugin marks its whole distribution for assertion rewriting (hypothesis, anyio: ~110 modules
# parsed and rewritten by every worker); the four below are all that the test extra installs.
WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
PYTEST_PLUGINS := -p xdist.plugin -p xdist.looponfail -p anyio.pytest_plugin -p _hypothesis_pytestplugin
test: $(STAMP) check
	@$(BIN)/python -m compileall -q -j 0 stripe_identity_mcp >/dev/null
	@PYTHONDONTWRITEBYTECODE= PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -q $(PYTEST_PLUGINS) -n $(WORKERS)

check: $(STAMP)
	@$(BIN)/ruff check stripe_identity_mcp tests benchmarks tools
	@$(BIN)/mypy stripe_identity_mcp

# Regenerate the per-tool schema snapshots in tests/toolsnaps/ after an intended change; review the diff.
toolsnaps: $(STAMP)
	@UPDATE_TOOLSNAPS=1 $(BIN)/python -m pytest -q tests/test_toolsnaps.py

# The wheel and the bundle as a user gets them, outside the repo (tools/package_check.sh): sdist +
# wheel, a fresh venv with only the wheel, --version, serve --sandbox over stdio, uvx --from the
# wheel, mcpb validate + pack, and the packed bundle started from its manifest. CI runs it after
# `make test`. Needs the package index and npm; `bundle` is the mcpb part alone.
package-check:
	@PYTHON=$(PYTHON) bash tools/package_check.sh all

bundle:
	@PYTHON=$(PYTHON) bash tools/package_check.sh bundle

# Regenerate manifest.json's tool list and every version in manifest.json / server.json.
manifests: $(STAMP)
	@$(BIN)/python tools/gen_manifests.py

bench: $(STAMP)
	@$(BIN)/python benchmarks/export_bench.py
	@$(BIN)/python benchmarks/http_load.py

# The official MCP conformance suite against the HTTP transport (needs npm; see conformance/run.sh).
conformance: $(STAMP)
	@PYTHON_BIN=$(abspath $(BIN))/python bash conformance/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis dist
