# referral — `make run` starts the service, `make test` runs the whole suite.

PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Tests run in parallel (pytest-xdist); each worker has its own embedded PostgreSQL and
# every test its own database, so workers never see each other's rows. A worker that runs
# out of tests takes some from another's queue (worksteal): the long ones don't make a tail.
TEST_WORKERS ?= 4

.PHONY: run cli test reset lint openapi lock bench-redirect bench-imports clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "referral needs Python 3.11 or newer on PATH (python3.11, python3.12 or python3.13); install one, e.g. 'apt-get install python3.11 python3.11-venv'"; exit 1; }
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); echo "'$(PYTHON) -m venv' does not work: install the venv module, e.g. 'apt-get install python3-venv'"; exit 1; }
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true

$(VENV)/.runtime: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	@$(BIN)/pip install -q --no-deps -e . >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

$(VENV)/.dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	@$(BIN)/pip install -q --no-deps -e . >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@ $(VENV)/.runtime

# PORT=8001 make run serves on another port (HOST, WORKERS likewise).
run: $(VENV)/.runtime
	$(BIN)/referral serve

# The `referral` command without activating the venv: make cli ARGS="merchants list".
# Beside a running `make run` it uses the same database and leaves the server running.
ARGS ?= --help
cli: $(VENV)/.runtime
	@$(BIN)/referral $(ARGS)

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: $(VENV)/.dev
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected"; exit 1; fi; exit $$rc

reset: $(VENV)/.runtime
	$(BIN)/referral dev reset

lint: $(VENV)/.dev
	$(BIN)/ruff check referral tests bench
	$(BIN)/ruff format --check referral tests bench

# Rewrite openapi/openapi.json from the app (a test fails while the two differ).
openapi: $(VENV)/.dev
	$(BIN)/python -m referral.openapi > openapi/openapi.json

# Re-resolve the locked dependencies (after changing pyproject.toml).
lock: | $(BIN)/python
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe --extra dev -o requirements-dev.lock pyproject.toml

bench-redirect: $(VENV)/.dev
	$(BIN)/python bench/redirect.py

bench-checkout: $(VENV)/.dev
	$(BIN)/python bench/checkout.py

bench-analytics: $(VENV)/.dev
	$(BIN)/python bench/analytics.py

# Console page render times at the analytics benchmark's size (BENCH_SCALE as there).
bench-console: $(VENV)/.dev
	$(BIN)/python bench/console.py

bench-payouts: $(VENV)/.dev
	$(BIN)/python bench/payouts.py

bench-fraud: $(VENV)/.dev
	$(BIN)/python bench/fraud.py

# Webhook deliveries/s and commit -> receiver delay, beside the checkout's order load.
# A 1,000,000-line customer file through `referral import`, twice (BENCH_LINES as there).
bench-imports: $(VENV)/.dev
	$(BIN)/python bench/imports.py

bench-webhooks: $(VENV)/.dev
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV)
