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

.PHONY: install demo test test-fast bench clean help

help:
	@echo "make install   create $(VENV) from the pinned lock and install the project"
	@echo "make demo      simulate impressions, run the whole local pipeline, print per-task results"
	@echo "make test      run the test suite (installs first when needed)"
	@echo "make test-fast the unit tests only (no pipeline or engine runs; under 3 minutes)"
	@echo "make bench     the benchmark suite (~4 hours on 2 cores): bench/results/*.json and SUMMARY.md"

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

# Two workers, each module on one (its module-scoped pipeline run built once), the end-to-end modules first
# (tests/conftest.py). The session's pipeline run is built on each worker that runs a module using it.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# The unit tests: not the end-to-end runs (slow) nor the engine runs (integration); CI runs `make test`, all of them.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration"

BENCH_WORK ?= /tmp/mtrank-bench

# Quick ones first, so a broken benchmark shows early; serving reuses the smallest scaling run's pushed model.
bench: install
	$(BIN)/python bench/simulator.py
	$(BIN)/python bench/trainer_throughput.py
	$(BIN)/python bench/pipeline_scaling.py --work $(BENCH_WORK)/scaling
	$(BIN)/python bench/serving_latency.py --seconds 3 --data-root $(BENCH_WORK)/scaling/rows-150000/data \
		--model-dir $$(ls -d $(BENCH_WORK)/scaling/rows-150000/serving/ranker/[0-9]* | tail -1)
	$(BIN)/python bench/serving_batching.py --seconds 3 --data-root $(BENCH_WORK)/scaling/rows-150000/data \
		--model-dir $$(ls -d $(BENCH_WORK)/scaling/rows-150000/serving/ranker/[0-9]* | tail -1)
	$(BIN)/python bench/evaluator_throughput.py --workspace $(BENCH_WORK)/scaling/rows-150000
	$(BIN)/python bench/gate_noise.py --workspace $(BENCH_WORK)/scaling/rows-150000
	$(BIN)/python bench/id_features.py --cache $(BENCH_WORK)/id_features
	$(BIN)/python bench/id_features.py --rows 20000 --train-days 2 --epochs 5 --l2 --min-count 20 50 100 \
		--cache $(BENCH_WORK)/id_features_small_window --name id_features_small_window
	$(BIN)/python bench/id_features.py --rows 100000 --train-days 2 --epochs 5 --l2 --min-count 20 50 100 \
		--cache $(BENCH_WORK)/id_features_2_days --name id_features_2_days
	$(BIN)/python bench/warm_chain.py
	$(BIN)/python bench/learning_curve.py --work $(BENCH_WORK)/learning --history
	$(BIN)/python bench/warm_settings.py --work $(BENCH_WORK)/learning --settings baseline "newest day" "warm lr 0.003" \
		"newest day, warm lr 0.003" "warm lr 0.001" "warm lr 0.003, 1 epoch"
	$(BIN)/python bench/warm_settings.py --work $(BENCH_WORK)/learning --name warm_optimizer \
		--settings "warm lr 0.003" "warm lr 0.003, Adam carried" "warm lr 0.003, Adam carried, decay 0.5" \
		"warm lr 0.003, Adam carried, decay 0.5, 1 epoch"
	$(BIN)/python bench/learnable_bound.py --work $(BENCH_WORK)/learning
	$(BIN)/python bench/learning_curve.py --work $(BENCH_WORK)/learning --no-ids --name learning_curve_no_ids
	$(BIN)/python bench/warm_settings.py --work $(BENCH_WORK)/learning --config $(BENCH_WORK)/learning/impressions-no-ids.yaml \
		--curve learning_curve_no_ids --settings baseline "warm lr 0.003"
	$(BIN)/python bench/summary.py

clean:
	rm -rf $(WORKSPACE) .pytest_cache
