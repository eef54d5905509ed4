# batch_inference — every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0

export BATCH_INFERENCE_HOME ?= $(CURDIR)/.batch_inference
DEMO_DAYS ?= 7
DEMO_ROWS_PER_DAY ?= 100000
export DEMO_DAYS DEMO_ROWS_PER_DAY
BENCH_HOME ?= $(CURDIR)/bench_home
BENCH_ROWS ?= 4000000
export BENCH_HOME BENCH_ROWS

.PHONY: install demo dev test test-fast lint bench bench-backfill bench-memory clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	# The CPU torch wheel first: any other spec pulls a multi-GB CUDA build (see README for GPUs).
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: install
	$(PY) -m batch_inference.demo

dev: install
	DAGSTER_HOME=$${DAGSTER_HOME:-$(BATCH_INFERENCE_HOME)/dagster_home} ; mkdir -p $$DAGSTER_HOME ; \
	  test -f $$DAGSTER_HOME/dagster.yaml || cp dagster.yaml $$DAGSTER_HOME/dagster.yaml ; \
	  DAGSTER_HOME=$$DAGSTER_HOME $(VENV)/bin/dagster dev -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check batch_inference batch_inference_tests
	$(VENV)/bin/batch-inference check   # every pipeline's YAML, SQL columns, schemas, plug-ins: problems first

# The full suite (what CI runs): unit, integration (real dagster/daemon/webserver processes, MLflow
# server, moto S3, Postgres, Pushgateway, promtool, Chromium) and `dg check defs`.
test: install lint
	$(VENV)/bin/pytest -q

# While you work: unit tests plus one end-to-end day in-process (a few minutes).
test-fast: install lint
	$(VENV)/bin/pytest -q -m "not integration"

# Engine throughput: the tabular example against a hand-written loop, the text example against
# SentenceTransformer.encode (JSON lines; see the README's performance table).
bench: install
	$(PY) -m batch_inference.defs.card_fraud.bench
	$(PY) -m batch_inference.defs.support_tickets.bench

# A year backfill launched as the UI does (GraphQL against `dagster dev`): ranged runs against one run
# per partition (BENCH_BACKFILL_DAYS, default 365; BENCH_BACKFILL_ROWS, default 20000 a day).
bench-backfill: install
	$(PY) -m batch_inference.bench_backfill

# Peak RSS of each step of a card_fraud day and of the whole day at 1M, 3M and 5M rows
# (BENCH_MEMORY_ROWS, comma-separated), each through the real `dagster` CLI in its own process.
bench-memory: install
	$(PY) -m batch_inference.defs.card_fraud.bench_memory

clean:
	rm -rf $(BATCH_INFERENCE_HOME)
