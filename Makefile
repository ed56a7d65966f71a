# Every target bootstraps .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-durations nightly nightly-tests bench faults lint clean compose compose-clean

# `make nightly`: where the run folders go, and the run history they record into and compare with
# (history.sqlite in NIGHTLY_OUT unless HISTORY names a database, e.g. HISTORY=postgresql://lqh@db/lqh).
NIGHTLY_OUT ?= runs
HISTORY ?=
HISTORY_ARGS = $(if $(HISTORY),--history '$(HISTORY)')

# `make test` runs the tests that do not measure the machine as TEST_JOBS pytest processes at once (most
# of their time is waiting on short runs), then the `serial` ones alone (scripts/run-tests.sh).
TEST_JOBS ?= 3

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/lqharness run live stress.writers-listeners --quick $(HISTORY_ARGS)

test: lint
	@bash scripts/install-chromium.sh || echo "no browser installed: the report render test will skip (and fail when CI is set)"
	@bash scripts/install-postgresql.sh || echo "postgresql not installed: the shared-history test will skip"
	@bash scripts/install-parse-deps.sh || echo "node or npm not installed: the Parse tests will skip (fail under CI=true)"
	TEST_JOBS=$(TEST_JOBS) bash scripts/run-tests.sh

# Record each test's duration into tests/durations.json, which `make test` splits its parallel part by.
test-durations: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --store-durations --durations-path tests/durations.json

# Every scenario at full length; each run is recorded in the history and judged against its baseline
# (REGRESSION). The history table follows; the exit code is the runs' (0 pass, 1 fail, 2 inconclusive).
# Exits with the verdict check's result: every run passed, but for the inconclusives it lists.
nightly: $(STAMP)
	@since=$$(date +%s); $(BIN)/lqharness run live stress --out $(NIGHTLY_OUT) $(HISTORY_ARGS); \
	$(BIN)/lqharness history $(if $(HISTORY),$(HISTORY_ARGS),--history $(NIGHTLY_OUT)/history.sqlite) --limit 40; \
	LQH_NIGHTLY_RUNS='$(abspath $(NIGHTLY_OUT))' LQH_NIGHTLY_SINCE=$$since \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -m nightly tests/integration/test_nightly_verdicts.py

# The full-length stress profiles as pytest tests of the harness itself (each criterion judged with evidence).
nightly-tests: $(STAMP)
	$(BIN)/python -m pytest -q -m nightly

bench: $(STAMP)
	$(BIN)/lqharness bench --out BENCHMARKS.md

# The fault matrix: every server and network fault caught by its criterion, each scenario 5 times clean
# with zero false alarms (the table also lands in runs/faults/faults.md). `make test` runs a quick form.
faults: $(STAMP)
	$(BIN)/lqharness faults --runs 5 --out runs/faults

# ruff (lint and format), mypy, and the import contracts that keep the layers of DESIGN.md true.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The full topology under a real Docker engine (docker-compose.yml): installs docker.io and Compose,
# starts a private dockerd, builds the images without any registry pull, runs one quick scenario to a
# verdict, tears down and stops the daemon. Needs root. LQH_SCENARIOS, LQH_WORKERS, LQH_RUNS tune it.
compose:
	bash scripts/compose/all.sh

# Remove what `make compose` keeps for a warm rerun: the daemon's images and state (about 1 GB).
compose-clean:
	bash scripts/compose/clean.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
