# Two commands for a fresh clone:  `make serve` (MCP server on stdio against the embedded sandbox)
# and `make test` (the whole test suite). Both create .venv and install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test demo install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/stripe-identity-mcp serve --sandbox

demo: $(STAMP)
	$(BIN)/stripe-identity-mcp demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/export_bench.py
	$(BIN)/python benchmarks/http_load.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
