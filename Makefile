# One command each: `make run` serves the app on :7071, `make test` runs every test.
# Both set up what is missing first: .venv (pip install -e ".[dev]") and node_modules (npm ci).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install run test lint audit lock format clean reliability-report bench explore mutants

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json: local.settings.json.example
	test -f $@ || cp $< $@

run: install local.settings.json
	./scripts/run.sh

test: install
	$(BIN)/python -m pytest

# Runs the fault-injection scenarios and prints their figures (the README's Reliability table).
reliability-report: install
	rm -rf build/reliability
	$(BIN)/python -m pytest -m reliability -q
	$(BIN)/python -m tests.reliability.report

# The model-based fault explorer with its deep budget (5,000 examples; `make test` runs 200).
# Prints the shrunk failing schedule, or a summary table. Replay a run with SEED=<n>.
SEED ?=
explore: install
	EXPLORE_PROFILE=deep $(BIN)/python -m pytest -m explore tests/explore -q -p no:cacheprovider \
	  $(if $(SEED),--hypothesis-seed=$(SEED),)

# Measures the app in process and through the local host; prints and writes bench/results.json,
# bench/results.md and bench/latency.png. Figures only: it asserts nothing about speed.
bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# pip-audit on requirements.lock; an unreachable vulnerability database is reported, not failed.
audit: install
	$(BIN)/python scripts/audit.py

# Re-pin requirements.lock from requirements.txt in a throwaway venv.
lock:
	rm -rf build/lockenv && $(PYTHON) -m venv build/lockenv
	build/lockenv/bin/pip install --quiet -r requirements.txt
	(echo "# The runtime dependencies, pinned: what pip-audit checks (make audit). Regenerate with make lock."; \
	  build/lockenv/bin/pip freeze) > requirements.lock

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache

# Plants each of a list of known bugs in a throw-away copy (build/mutants) and runs the explorer
# (and the tests that guard the same behaviour) on it; prints which check killed each.
mutants: install
	$(BIN)/python scripts/mutants.py
