# ka_ml — key-account health. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/ka_ml.yaml
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONHASHSEED ?= 0

.PHONY: help install lint test test-fast demo train score all backtest bench bench-real ablation identical ui clean

# `make identical` needs the revision to compare with; say so before anything runs.
ifneq ($(filter identical,$(MAKECMDGOALS)),)
ifeq ($(strip $(BASE)),)
$(error usage: make identical BASE=<git ref>, e.g. BASE=main or BASE=HEAD~1 (the revision whose demo outputs the working tree must reproduce))
endif
endif

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-11s\033[0m %s\n",$$1,$$2}' $(MAKEFILE_LIST)

# Idempotent: rebuilds only when the venv is missing or the dependency files changed.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# uv installs the lock; an uv already on PATH is used, else one goes into the venv
	@# (a venv made by uv has no pip: ensurepip brings it). --compile-bytecode: uv writes no
	@# .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (this machine, many CI
	@# images) every process would then recompile ~3,000 modules (10-20 s per command).
	@UV=$$(command -v uv || true); \
	if [ -z "$$UV" ]; then \
	  $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null; \
	  $(BIN)/python -m pip install -q --disable-pip-version-check uv && UV=$(BIN)/uv; \
	fi; \
	VIRTUAL_ENV=$(VENV) $$UV pip install -q --compile-bytecode -r requirements.lock && \
	VIRTUAL_ENV=$(VENV) $$UV pip install -q --no-deps -e .
	@touch $(STAMP)
	@echo "environment ready in $(VENV)"

install: $(STAMP) ## create .venv and install the pinned dependencies (only when needed)

lint: install ## ruff check + ruff format --check, mypy on ka_ml, and the layers (import-linter: imports point down, no cycles)
	$(BIN)/ruff check ka_ml tests
	$(BIN)/ruff format --check ka_ml tests
	$(BIN)/mypy ka_ml
	$(BIN)/lint-imports --no-cache

# -n auto: one worker per core (pytest-xdist); --dist loadfile keeps a file's tests on one
# worker, so a module's Spark session, PostgreSQL schema or trained model is built once
PYTEST := $(BIN)/pytest -q -n auto --dist loadfile

test: install ## run the whole test suite on every core (CI, .ci/run, runs make lint and this)
	$(PYTEST)

test-fast: install ## the tests without the slow end-to-end ones
	$(PYTEST) -m "not slow"

demo: install ## generate the demo data set (data/demo) and validate it
	$(BIN)/ka-ml demo-data --config $(CONFIG)
	$(BIN)/ka-ml validate --config $(CONFIG)

train: install ## tune, train, evaluate and register both models on the configured data (demo by default)
	$(BIN)/ka-ml train --config $(CONFIG)

score: install ## weekly batch scoring with the champion models -> outputs/<as-of>/
	$(BIN)/ka-ml score --config $(CONFIG)

all: install ## the main job end to end on the demo data: train, then score (report in outputs/)
	$(BIN)/ka-ml train --config $(CONFIG)
	$(BIN)/ka-ml score --config $(CONFIG)

bench: install ## speed + memory: make train, 10k/100k end to end, features, 1M-account scoring, Spark vs local, the read API under load, the CLI at 10k/100k (~40 min) -> ka_ml/bench/results/BENCH.md
	$(BIN)/python -m ka_ml.bench

bench-real: install ## CDNOW real data, default + CDNOW config, 2 cutoffs: ka_ml train+score vs plain LightGBM, BG/NBD, RFM, recency; issue-13 acceptance (~12 min) -> ka_ml/bench/results/cdnow.md
	$(BIN)/python -m ka_ml.bench.cdnow

ablation: install ## CDNOW, pre-cutoff origins only: family, tuning, calibration, fit window, cadence, features, monotone trees one at a time (~9-14 min) -> ka_ml/bench/results/ablation.md
	$(BIN)/python -m ka_ml.bench.ablation

identical: install ## same demo outputs as BASE=<git rev>? (scores, run record, MLflow metrics; ~15 min)
	$(BIN)/python -m ka_ml.bench.identical --base $(BASE)

backtest: install ## outcome monitoring: past weekly scores against what happened (ka-ml backtest)
	$(BIN)/ka-ml backtest --config $(CONFIG)

ui: install ## open the MLflow UI on http://127.0.0.1:5000 over the store of $(CONFIG)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri "$$($(BIN)/python -m ka_ml.modeling.registry --config $(CONFIG))"

clean: ## remove generated data, outputs and the local MLflow store (keeps .venv)
	rm -rf data outputs models/mlflow.db models/artifacts
