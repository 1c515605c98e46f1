# streamkit — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STREAMKIT := $(VENV)/bin/streamkit
# The demo's own broker (separate from a broker you may run with `make broker-start`).
DEMO_PORT ?= 39092
DEMO_DATA_DIR ?= $(CURDIR)/.streamkit/demo-broker
DEMO_ELASTIC_DATA_DIR ?= $(CURDIR)/.streamkit/demo-elastic-broker
DEMO_CDC_DATA_DIR ?= $(CURDIR)/.streamkit/demo-cdc-broker
PYTEST_ARGS ?=


.PHONY: help install lint test test-all test-docker test-unit demo demo-elastic demo-cdc postgres-install bench bench-peers chaos broker-start broker-stop broker-status clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11 or newer is needed ($(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## Create .venv and install streamkit with its dev tools

lint: install ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint ## Lint, unit tests, and the tests that prove each capability on a real broker (about 5 minutes)
	$(VENV)/bin/pytest -m "not docker and not full" $(PYTEST_ARGS)

test-all: lint postgres-install ## Everything on a real broker: also the long fault runs, the cluster, security, CDC, Helm (about 25 minutes); with CI=true also the docker tier
	$(VENV)/bin/pytest -m "not docker" $(PYTEST_ARGS)
	@if [ "$${CI:-}" = "true" ]; then $(MAKE) --no-print-directory test-docker; fi

test-docker: install ## Docker tier: local images, the Kafka container, docker compose
	deploy/docker/test-tier.sh $(PYTEST_ARGS)

test-unit: install ## Unit tests only (seconds, no broker)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

demo: install ## Run the example pipeline on a local Kafka (or the one STREAMKIT_BOOTSTRAP_SERVERS names)
	@set -euo pipefail; \
	if [ -n "$${STREAMKIT_BOOTSTRAP_SERVERS:-}" ]; then \
	  $(PY) -m processors.demo; \
	else \
	  trap '$(STREAMKIT) broker stop --data-dir "$(DEMO_DATA_DIR)" >/dev/null' EXIT; \
	  $(STREAMKIT) broker start --port $(DEMO_PORT) --data-dir "$(DEMO_DATA_DIR)"; \
	  STREAMKIT_BOOTSTRAP_SERVERS=127.0.0.1:$(DEMO_PORT) $(PY) -m processors.demo; \
	fi

demo-elastic: install ## Autoscaling on a local Kafka: bursts of invoices, workers up, down and to zero, a timeline and a PNG
	$(PY) -m pip install --quiet -e '.[plot]'
	@set -euo pipefail; \
	if [ -n "$${STREAMKIT_BOOTSTRAP_SERVERS:-}" ]; then \
	  $(PY) -m processors.demo_elastic; \
	else \
	  trap '$(STREAMKIT) broker stop --data-dir "$(DEMO_ELASTIC_DATA_DIR)" >/dev/null' EXIT; \
	  $(STREAMKIT) broker start --port $(DEMO_PORT) --data-dir "$(DEMO_ELASTIC_DATA_DIR)"; \
	  STREAMKIT_BOOTSTRAP_SERVERS=127.0.0.1:$(DEMO_PORT) $(PY) -m processors.demo_elastic; \
	fi

postgres-install: ## PostgreSQL's server from Debian's packages, when it is missing (CDC)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (apt-get install postgresql)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q postgresql >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q postgresql >/dev/null; }; }

demo-cdc: install postgres-install ## Change data capture: PostgreSQL -> Debezium -> a read model and outbox events
	@set -euo pipefail; \
	if [ -n "$${STREAMKIT_BOOTSTRAP_SERVERS:-}" ]; then \
	  $(PY) -m processors.demo_cdc; \
	else \
	  trap '$(STREAMKIT) broker stop --data-dir "$(DEMO_CDC_DATA_DIR)" >/dev/null' EXIT; \
	  rm -rf "$(DEMO_CDC_DATA_DIR)"; \
	  $(STREAMKIT) broker start --port $(DEMO_PORT) --data-dir "$(DEMO_CDC_DATA_DIR)"; \
	  STREAMKIT_BOOTSTRAP_SERVERS=127.0.0.1:$(DEMO_PORT) $(PY) -m processors.demo_cdc; \
	fi

bench: install bench-peers ## The peer benchmarks: map, windowed count, I/O-bound handler, filter, keyed aggregate, restore (BENCH_ARGS="--records 200000 --runs 5"; WINDOW_ARGS, ASYNC_ARGS, FILTER_ARGS, AGG_ARGS, RESTORE_ARGS likewise)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.harness $(BENCH_ARGS)
	$(PY) -m benchmarks.windows $(WINDOW_ARGS)
	$(PY) -m benchmarks.concurrency $(ASYNC_ARGS)
	$(PY) -m benchmarks.filters $(FILTER_ARGS)
	$(PY) -m benchmarks.aggregates $(AGG_ARGS)
	$(PY) -m benchmarks.restore $(RESTORE_ARGS)

KSTREAMS_BUILT := benchmarks/kstreams/target/.built
$(KSTREAMS_BUILT): benchmarks/kstreams/pom.xml $(wildcard benchmarks/kstreams/src/main/java/bench/*.java)
	mvn -q -B -f benchmarks/kstreams/pom.xml \
	  compile dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=target/lib
	@touch $@

PARALLEL_BUILT := benchmarks/parallel/target/.built
$(PARALLEL_BUILT): benchmarks/parallel/pom.xml $(wildcard benchmarks/parallel/src/main/java/bench/*.java)
	mvn -q -B -f benchmarks/parallel/pom.xml \
	  compile dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=target/lib
	@touch $@

# The peers' versions, pinned (the report records them): a virtualenv is made again when
# its pin changes.
FAUST_PIN := faust-streaming[fast,uvloop]==0.15.3
QUIX_PIN := quixstreams==3.28.1
FAUST_STAMP := .venv-bench-faust/.pin-$(subst ],,$(subst [,-,$(subst =,,$(FAUST_PIN))))
QUIX_STAMP := .venv-bench-quix/.pin-$(subst =,,$(QUIX_PIN))

$(FAUST_STAMP):
	rm -rf .venv-bench-faust
	$(PYTHON) -m venv .venv-bench-faust
	.venv-bench-faust/bin/pip install --quiet '$(FAUST_PIN)' fastavro orjson cramjam
	@touch $@

$(QUIX_STAMP):
	rm -rf .venv-bench-quix
	$(PYTHON) -m venv .venv-bench-quix
	.venv-bench-quix/bin/pip install --quiet '$(QUIX_PIN)' fastavro orjson
	@touch $@

bench-peers: $(KSTREAMS_BUILT) $(PARALLEL_BUILT) $(FAUST_STAMP) $(QUIX_STAMP) ## Virtualenvs for faust-streaming and Quix Streams (pinned); the Kafka Streams and Parallel Consumer builds

chaos: install ## The reliability suite in long cycles, then its table (CHAOS_ARGS="--short --only kill-9")
	$(PY) -m tests.e2e.chaos $(CHAOS_ARGS)

broker-start: install ## Start the local broker on 127.0.0.1:9092 (stays up)
	$(STREAMKIT) broker start

broker-stop: install ## Stop the local broker
	$(STREAMKIT) broker stop

broker-status: install ## Is the local broker running?
	$(STREAMKIT) broker status

clean: ## Remove the virtualenv, caches and the demo broker's data
	-@[ -x $(STREAMKIT) ] && $(STREAMKIT) broker stop --data-dir "$(DEMO_DATA_DIR)" >/dev/null 2>&1 || true
	rm -rf $(VENV) .venv-bench-faust .venv-bench-quix benchmarks/kstreams/target .streamkit \
	  .pytest_cache .mypy_cache .ruff_cache build dist
