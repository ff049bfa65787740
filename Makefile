# One entry point for the tooling. `make test` and `make demo` bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint format test test-fast smoke bench bench-cluster soak chaos demo migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Real MCP clients for tests/clients, installed here because nothing downloads at test time: the MCP Inspector (and
# oidc-provider, the OpenID provider tests/oidc signs in through) from its lock file (--ignore-scripts: its CLI needs no install script; it asks for Node.js 22 but its CLI runs on the 20
# that Debian ships, as the test shows, so npm's engine warnings are silenced), and the OpenAI Agents SDK in a venv
# of its own, as it caps websockets below the 17.x the gateway runs on. Without npm the Inspector is left out, and
# its test says so.
INSPECTOR := tests/clients/node/node_modules/.installed-stamp
AGENTS := .venv-agents
CLIENTS := $(INSPECTOR) $(AGENTS)/.installed-stamp

$(INSPECTOR): tests/clients/node/package.json tests/clients/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/clients/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "make: npm not found, the MCP Inspector (tests/clients/node) is not installed"; fi

$(AGENTS)/.installed-stamp: tests/clients/agents-requirements.txt
	@test -x $(AGENTS)/bin/python || $(PYTHON) -m venv $(AGENTS)
	$(AGENTS)/bin/python -m pip install --quiet -r tests/clients/agents-requirements.txt
	@touch $@

install: $(STAMP) $(CLIENTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) $(CLIENTS)
	$(BIN)/pytest $(PYTEST_ARGS)

# The tests that start no gateway, replica, demo process or browser (the `e2e` marker, set in tests/conftest.py).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(PEERS) $(AGENTS) tests/clients/node/node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
