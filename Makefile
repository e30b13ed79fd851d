# Two commands matter: `make demo` and `make test`. Both install first when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements/stack-py311.lock requirements/extras-py311.lock
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 1
export PYTHONUNBUFFERED := 1

DEMO_DAYS ?= 3
DEMO_ROWS_PER_DAY ?= 30000
WORKSPACE ?= workspace

.PHONY: install demo test test-fast clean help

help:
	@echo "make install   create $(VENV) from the pinned lock and install the project"
	@echo "make demo      simulate impressions, run the whole local pipeline, print per-task results"
	@echo "make test      run the test suite (installs first when needed)"

install: $(STAMP)

# Re-runs only when a lock file or setup.py changes; otherwise this target costs nothing.
$(STAMP): $(LOCKS) setup.py
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (the TFX 1.16 stack is pinned for CPython 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==24.3.1
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python $(addprefix -r ,$(LOCKS))
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --use-pep517 -e .
	$(BIN)/python -m pip check
	@touch $@

demo: install
	$(BIN)/mtrank simulate --days $(DEMO_DAYS) --rows-per-day $(DEMO_ROWS_PER_DAY)
	$(BIN)/mtrank run --workspace $(WORKSPACE)

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(WORKSPACE) .pytest_cache
