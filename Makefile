# Every target bootstraps .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test nightly bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/lqharness run live stress.writers-listeners --quick

test: lint
	@bash scripts/install-chromium.sh || echo "chromium not installed: the report render test will skip"
	$(BIN)/python -m pytest -q

nightly: $(STAMP)
	$(BIN)/python -m pytest -q -m nightly

bench: $(STAMP)
	$(BIN)/lqharness bench --out BENCHMARKS.md

# ruff (lint and format), mypy, and the import contracts that keep the layers of DESIGN.md true.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) runs .pytest_cache
