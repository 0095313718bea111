# chemtomo: two commands from a fresh clone.
#   make demo   creates .venv, installs, simulates the demo dataset, runs the pipeline, writes a report
#   make test   creates .venv if needed, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-run

.PHONY: demo test test-all venv anchors clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chemtomo demo $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

anchors: $(STAMP)
	$(BIN)/python -m pip install -e '.[anchors]'

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
