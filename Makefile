# fedrisk: the single gate. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION := 2.13.0
STAMP := $(VENV)/.fedrisk-installed
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export RAY_USAGE_STATS_ENABLED := 0
export FLWR_HOME := $(CURDIR)/.fedrisk/flwr-home

.PHONY: setup protos browser demo demo-deploy test test-quick fuzz lint bench bench-scale tune clean

setup: $(STAMP) protos

# gRPC stubs of the ledger service, generated from ledger/service.proto by
# grpcio-tools; never edited by hand, never committed.
PROTO := ledger/service.proto
PROTO_STUBS := ledger/service_pb2.py ledger/service_pb2_grpc.py \
	ledger/service_pb2.pyi
protos: $(PROTO_STUBS)

$(PROTO_STUBS) &: $(PROTO) $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. $(PROTO)

# torch is installed FIRST, pinned to the CPU wheel on this machine: installing flwr or
# opacus into a venv without torch would resolve to a multi-GB CUDA build (STACK.md).
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -e ".[dev]"
	@touch $(STAMP)

# Debian's chromium, in which a test opens the insurers' product sheet
# (tests/insurance/test_product_sheet.py); installed only when missing: as root with
# apt-get, else with sudo (never asking for a password), else make stops and says how.
CHROMIUM := /usr/bin/chromium
browser: $(CHROMIUM)

$(CHROMIUM):
	@if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	else echo "make browser: $(CHROMIUM) is missing and installing it needs root;" \
		"run 'apt-get install --no-install-recommends chromium' as root"; exit 1; fi; \
	$$as_root apt-get update -q && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
	@test -x $(CHROMIUM) || { echo "make browser: apt-get installed no $(CHROMIUM)"; exit 1; }

demo: setup
	$(VENV)/bin/fedrisk-lab demo --out demo-out

# Coordinator and 4 nodes as separate processes over TLS with node authentication. Three
# model rounds (about 5 minutes on 2 cores); without --rounds the plan's 10 take about 16.
demo-deploy: setup
	$(VENV)/bin/fedrisk-lab demo-deploy --out demo-deploy-out --rounds 3

test: setup browser
	$(PY) -m pytest -q --durations=15

# The unit tier (about a minute); `-m "not slow"` adds the in-process integration tier.
test-quick: setup
	$(PY) -m pytest -q -m "not slow and not integration"

# The ledger parser, verifier, audit and plot fuzzed with 10,000 hypothesis examples per
# target (make test runs 1,000); long: minutes per target.
fuzz: setup
	FEDRISK_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -m slow --timeout=3600 tests/ledger/test_ledger_fuzz.py \
		tests/auditor/test_audit_fuzz.py tests/auditor/test_plot_fuzz.py

lint: setup
	$(VENV)/bin/ruff check common ledger privacy secagg coordinator enterprise_node models protocols auditor insurance harness bench tests
	$(VENV)/bin/mypy common ledger privacy secagg coordinator enterprise_node models protocols auditor insurance harness bench
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py tests/test_shape.py tests/test_vocabulary.py

bench: setup
	$(PY) -m bench.spine
	$(PY) -m bench.coverage
	$(PY) -m bench.secagg
	$(PY) -m bench.share_noise
	$(PY) -m bench.secagg_graph
	$(PY) -m bench.ledger
	$(PY) -m bench.model
	$(PY) -m bench.privacy_audit
	$(PY) -m bench.fleet_risk --seeds 3

# 10 to 1,000 virtual enterprises through Flower's Simulation Engine: seconds per round,
# peak memory of the process tree, bytes per node, curve error, C; writes
# bench/out/scale.json and scale.png (about 25 minutes on 2 cores).
bench-scale: setup
	$(PY) -m bench.scale

# The written procedure that chose the plan's utility defaults (bench/tuning.py), on the
# real data sets' training splits only; writes bench/out/tuning.json (about 40 minutes).
tune: setup
	$(PY) -m bench.newton_study
	$(PY) -m bench.tuning

clean:
	rm -rf demo-out demo-deploy-out bench/out .fedrisk .pytest_cache .mypy_cache .ruff_cache $(PROTO_STUBS)
