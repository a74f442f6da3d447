# Every target bootstraps what it needs: uv (into .tools/ when not on PATH), then the locked environment.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_ARGS ?=
# Parallel workers for the suite's fast part; the real-process fault and e2e tests (marked slow)
# then run on their own, since they measure recovery times that a loaded machine would stretch.
TEST_WORKERS ?= 3

.PHONY: up test faults lint bench asyncapi bootstrap clean

bootstrap:
	@test -x "$(UV)" || { python3 -m venv .tools && .tools/bin/pip install -q uv; }
	@$(UV) sync --frozen --all-packages -q

up: bootstrap
	$(UV) run --frozen bali up $(ARGS)

test: bootstrap
	$(UV) run --frozen pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow" $(PYTEST_ARGS)
	$(UV) run --frozen pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The platform fault suite under its full load, with the recovery times it measures.
faults: bootstrap
	$(UV) run --frozen python bench/recovery.py

lint: bootstrap
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy libs/*/src services/*/src
	$(UV) run --frozen lint-imports

# Each path against its baseline in the same run, 3 runs each, medians and load averages printed
# (see bench/RESULTS.md). About 8-9 minutes; `make bench QUICK=1` takes about 5. Needs wrk.
bench: bootstrap
	$(UV) run --frozen python bench/post.py $(if $(QUICK),--quick)
	$(UV) run --frozen python bench/alert_latency.py $(if $(QUICK),--quick)
	$(UV) run --frozen python bench/backbone.py $(if $(QUICK),--quick)
	$(UV) run --frozen python bench/idle.py $(if $(QUICK),--quick)
	$(UV) run --frozen python bench/outbox_retention.py --kept $(if $(QUICK),50000,200000)

asyncapi: bootstrap
	$(UV) run --frozen bali asyncapi

clean:
	rm -rf .venv .tools .bali
