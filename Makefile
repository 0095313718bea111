# chemtomo: two commands from a fresh clone.
#   make demo   creates .venv, installs the locked versions, simulates the demo dataset, runs the pipeline, writes a report
#   make test   creates .venv if needed, runs the test suite
#   make docs   builds the documentation site into docs/_build/html (warnings are errors)
# The virtual environment is built from requirements/lock.txt (exact versions with hashes, the
# ones the suite passed with); pyproject.toml keeps the ranges for people installing chemtomo as
# a library. `make test-latest` tries the newest versions those ranges allow, in .venv-latest;
# `make lock` refreshes the lock (see the README, "Dependencies").
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
DEMO   ?= demo-run
LATEST := .venv-latest

.PHONY: demo test test-all test-latest venv anchors lock clean docs

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chemtomo demo $(DEMO)

# Two test processes (pytest-xdist), each test file whole in one of them so that a file's
# module-scoped fixtures are made once; times in benchmarks/RESULTS.md, sessions 34 and 35.
# `pytest tests/...` typed alone stays one process.
PYTEST_N := -n 2 --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_N)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m '' $(PYTEST_N)

# The newest versions pyproject.toml allows, in a separate environment: drift found on purpose.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip list --format=freeze
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_N)

# Re-resolve the lock to the newest versions allowed (needs the registries); then run
# `make test` and commit requirements/lock.txt if it passes.
lock:
	test -d .venv-lock || $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade uv
	.venv-lock/bin/uv pip compile pyproject.toml requirements/build.in --extra dev --extra docs \
	    --python-version 3.11 --universal --generate-hashes --upgrade -o $(LOCK)

# The documentation site (Sphinx; warnings are errors): docs/_build/html/index.html. The gallery's
# examples run at build time at demo size or smaller.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

anchors: $(STAMP)
	$(BIN)/python -m pip install -e '.[anchors]'

clean:
	rm -rf $(VENV) $(LATEST) .venv-lock $(DEMO) .pytest_cache docs/_build docs/tutorials/gallery
