# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv on first use and reuse it afterwards (re-installing only when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG15   ?= /usr/lib/postgresql/15/bin

.PHONY: demo test lint typecheck pytest pytest-pg15 bench clean-sandbox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/bilantools sandbox start
	$(BIN)/bilantools apply --yes
	$(BIN)/bilantools status
	$(BIN)/bilantools stats

test: $(VENV)/.installed-dev lint typecheck pytest pytest-pg15

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bilantools tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy bilantools

# Tests that need Debian's PostgreSQL 15 binaries run only where they are installed.
pytest: $(VENV)/.installed-dev
	@if [ -x "$(PG15)/postgres" ]; then $(BIN)/pytest; \
	else echo "PostgreSQL 15 binaries not found in $(PG15): cross-version tests not run"; \
	     $(BIN)/pytest -m "not needs_system_pg15"; fi

# The engine tests again on the system's PostgreSQL 15 when it is installed
# (Debian's postgresql-15); the main run above uses the embedded PostgreSQL 18.
pytest-pg15: $(VENV)/.installed-dev
	@if [ -x "$(PG15)/postgres" ]; then \
		BILANTOOLS_TEST_PG_BIN=$(PG15) $(BIN)/pytest -m "pg15 and not needs_system_pg15" -q; \
	else \
		echo "PostgreSQL 15 binaries not found in $(PG15): PG15 pass not run"; \
	fi

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/apply_overhead.py
	$(BIN)/python bench/analysis.py

clean-sandbox:
	-$(BIN)/bilantools sandbox stop
	rm -rf .bilantools
