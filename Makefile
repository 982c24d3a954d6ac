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

.PHONY: serve test demo install bench conformance clean

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

test: $(STAMP)
	@$(BIN)/python -m pytest -q

bench: $(STAMP)
	@$(BIN)/python benchmarks/export_bench.py
	@$(BIN)/python benchmarks/http_load.py

# The official MCP conformance suite against the HTTP transport (needs npm; see conformance/run.sh).
conformance: $(STAMP)
	@PYTHON_BIN=$(abspath $(BIN))/python bash conformance/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
