# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv on first use and reuse it afterwards (re-installing only when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG15   ?= /usr/lib/postgresql/15/bin

.PHONY: demo test system-packages lint typecheck pytest pytest-pg15 pytest-notebooks faults bench bench-peers lab clean-sandbox

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

test: system-packages $(VENV)/.installed-dev lint typecheck pytest pytest-pg15 pytest-notebooks

# The programs the suite runs that no Python package brings, as "program:Debian package":
# Chromium opens the runbooks in a real browser (tests/test_browser.py), Graphviz's dot
# renders `bilantools graph --format svg|png`. As root with apt-get they are installed
# from Debian's packages; otherwise make stops here, before any test, naming the command.
SYSTEM_PROGRAMS := chromium:chromium dot:graphviz

system-packages:
	@programs=""; packages=""; for pair in $(SYSTEM_PROGRAMS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 && continue; \
		programs="$$programs $${pair%%:*}"; packages="$$packages $${pair#*:}"; \
	done; \
	[ -z "$$packages" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make test needs$$programs: installing$$packages from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300$$packages >/dev/null \
		|| { echo "error: apt-get install$$packages failed (see above); fix apt, then run make test again" >&2; exit 2; }; \
	else \
		echo "error: make test needs$$programs, not installed (installed by make only as root with apt-get): run 'sudo apt-get install -y$$packages', then make test again" >&2; \
		exit 2; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bilantools tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy bilantools tests

# Tests that need Debian's PostgreSQL 15 binaries run only where they are installed.
pytest: system-packages $(VENV)/.installed-dev
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

# The fault suite at full scale (make test runs it at the fast scale): concurrency, killed
# runners, server crashes, blocking, bad input, properties, secrets, privileges, injection.
# It prints the figures the README's reliability section quotes.
faults: $(VENV)/.installed-dev
	BILANTOOLS_FAULTS=full $(BIN)/pytest tests/faults -p no:cacheprovider -q

# All the benchmarks, about 40 minutes: apply against psql, against the peers (three
# corpora), static analysis, backups against bare pg_dump, inspections at 5,000 tables.
bench: $(VENV)/.installed-bench bench-peers
	$(BIN)/python bench/apply_overhead.py
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/layouts.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/catalog_scale.py

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

# The peers that are not Python packages: dbmate from npm (its package ships the binary)
# into .bench-tools/, sqitch from Debian when running as root with apt-get. A tool that
# cannot be installed is skipped with a note (bench/compare.py then leaves it out).
bench-peers:
	@if command -v npm >/dev/null 2>&1; then \
		[ -x .bench-tools/node_modules/.bin/dbmate ] || npm install --silent --prefix .bench-tools dbmate \
		|| echo "npm install dbmate failed: dbmate not benchmarked"; \
	else echo "npm not found: dbmate not installed, not benchmarked"; fi
	@if command -v sqitch >/dev/null 2>&1 && perl -MDBD::Pg -e1 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq sqitch libdbd-pg-perl >/dev/null \
		|| echo "apt-get install sqitch failed: sqitch not benchmarked"; \
	else echo "not root or no apt-get: sqitch not installed, not benchmarked"; fi

# JupyterLab on the runbooks, with the sandbox running (each runbook works on a scratch
# database of its own there, dropped when its kernel ends, unless DATABASE_URL names one).
lab: $(VENV)/.installed-dev
	$(BIN)/bilantools sandbox start
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean-sandbox:
	-$(BIN)/bilantools sandbox stop
	rm -rf .bilantools

# The curated runbooks (notebooks/0*.ipynb) executed afresh and compared cell by cell with
# their stored outputs, in a sandbox of their own that is stopped and deleted afterwards.
pytest-notebooks: $(VENV)/.installed-dev
	@home=$$(mktemp -d); \
	BILANTOOLS_HOME=$$home TQDM_DISABLE=1 $(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval-sanitize.cfg notebooks; status=$$?; \
	BILANTOOLS_HOME=$$home $(BIN)/bilantools sandbox stop >/dev/null 2>&1; rm -rf $$home; exit $$status
