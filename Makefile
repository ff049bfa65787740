# One entry point for the tooling. `make test` and `make demo` bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint format test smoke bench bench-cluster soak chaos demo migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# The wheel built from this checkout, installed in a fresh venv in a temporary folder and run from there: the demo,
# one allowed call, one held call approved through REST, the banner's stdio config (tests/install/wheel_smoke.py).
smoke: $(STAMP)
	$(BIN)/python -m tests.install.wheel_smoke

bench: $(STAMP)
	$(BIN)/python -m bench

# 1 and 2 replicas on PostgreSQL and Redis next to two peers. fastmcp is a peer here, not a dependency: it gets a
# venv of its own, made once.
PEERS := .venv-peers
$(PEERS)/.installed-stamp:
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet 'fastmcp==4.2.3'
	@touch $@

bench-cluster: $(STAMP) $(PEERS)/.installed-stamp
	$(BIN)/python -m bench.cluster_bench $(BENCH_ARGS)

# Two replicas under a mixed load for 30 minutes (SOAK_ARGS="MINUTES RATE" to change), and the fault tests with
# PostgreSQL stopped for 20 s under load.
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

chaos: $(STAMP)
	AIRLOCK_CHAOS_OUTAGE_SECONDS=20 $(BIN)/pytest tests/cluster -q

demo: $(STAMP)
	$(BIN)/airlock demo $(DEMO_ARGS)

migrate: $(STAMP)
	$(BIN)/airlock db upgrade

clean:
	rm -rf $(VENV) $(PEERS) .mypy_cache .ruff_cache .pytest_cache .hypothesis
