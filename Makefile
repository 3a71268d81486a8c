# One command each: `make run` serves the app on :7071, `make test` runs every test.
# Both set up what is missing first: .venv (pip install -e ".[dev]") and node_modules (npm ci).
# Another Python, in a venv of its own: make test PYTHON=python3.13 VENV=.venv-3.13
# `make test ARGS=tests/unit/test_lifecycle.py` (or `ARGS="path::test_name"`, or `ARGS="-k word"`)
# runs only what ARGS names; `make test-fast` runs the unit and integration tests alone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PY_VERSION = -c 'import sys; print("%d.%d" % sys.version_info[:2])'

.PHONY: install venv-python run test test-fast check-az lint audit lock format clean \
	reliability-report bench explore mutants

install: venv-python $(PY_STAMP) $(NODE_STAMP)

# A PYTHON given on the command line or in the environment must be the venv's own Python:
# otherwise an existing venv would run the tests on another version without a word.
venv-python:
ifneq ($(filter command line environment,$(origin PYTHON)),)
	@want=$$($(PYTHON) $(PY_VERSION)) || exit 1; \
	if [ -x $(BIN)/python ]; then have=$$($(BIN)/python $(PY_VERSION)); \
	  if [ "$$have" != "$$want" ]; then \
	    echo "$(VENV) holds Python $$have, not $$want ($(PYTHON)): pass VENV=.venv-$$want" >&2; \
	    exit 1; fi; fi
endif

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

ARGS ?=
test: install
	$(BIN)/python -m pytest $(ARGS)

# The tests that need no local host: unit and integration (against Azurite), well under a minute.
test-fast: install
	$(BIN)/python -m pytest tests/unit tests/integration -q $(ARGS)

# Runs the fault-injection scenarios and prints their figures (the table in docs/testing.md).
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

# Measures the app in process and through the local host, with 0, 5 and 20 ms of storage
# latency added by a proxy (about 6 minutes on 2 CPUs); prints and writes bench/results.json,
# bench/results.md and bench/latency.png, the figures of docs/performance.md. Figures only:
# it asserts nothing about speed. `make test` runs its quick mode (python -m bench --quick).
bench: install
	$(BIN)/python -m bench

# Checks every az command and flag on docs/deploy.md, docs/security.md and docs/operations.md
# against the --help of the azure-cli at AZ (no login needed), e.g. make check-az AZ=/opt/azcli/bin/az
AZ ?=
check-az: install
	AZ=$(AZ) $(BIN)/python -m pytest -m azcli tests/unit/test_docs_az_commands.py -q -p no:cacheprovider

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
	rm -rf $(VENV) .venv-* node_modules .azurite .pytest_cache .mypy_cache .ruff_cache

# Plants each of a list of known bugs in a throw-away copy (build/mutants) and runs the explorer
# (and the tests that guard the same behaviour) on it; prints which check killed each.
mutants: install
	$(BIN)/python scripts/mutants.py
