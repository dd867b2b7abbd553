# The two set-up commands (see README):
#   make run   install, migrate, backfill the offline sample tickers, train, predict, serve the API
#   make test  install and run the whole test suite (SQLite + PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export STOCKCAST_LOG_FORMAT ?= text
# TensorFlow's C++ log level (3: errors hidden too; a few import-time lines print regardless).
export TF_CPP_MIN_LOG_LEVEL ?= 3
# Cache bytecode (and pytest's assertion rewrites) between runs, even where the environment turns
# it off: it saves about a third of `make test-fast`.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install run stop test test-fast lint typecheck bench

$(BIN)/stockcast: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("stockcast needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/stockcast

run: install
	bash scripts/quickstart.sh

stop:
	-$(BIN)/stockcast serve --stop

test: install
	bash scripts/test.sh

# The inner loop: lint and every test not marked slow, on SQLite (no training, no browser, no
# PostgreSQL or Redis copies: `make test` runs those).
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not postgres and not redis and not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over forecaster, api, jobs and cli (configuration: [tool.mypy] in pyproject.toml).
typecheck: install
	$(BIN)/mypy forecaster api jobs cli

bench: install
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/nightly_cost.py
	$(BIN)/python bench/api_load.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/universe.py --tickers 20 --workers 1,2
