# The two set-up commands of the README: `make dev` (the main job) and `make test` (the suite).
# Each creates .venv when missing and installs the project with its dev extra, every package
# at the version requirements/constraints.txt pins (`make lock` refreshes it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: dev test lint bench clean lock

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

# Resolve every dependency again (newest versions within pyproject.toml's ranges, for every
# platform, Python 3.11+) into the constraints file; then `make test` and commit both.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--upgrade --annotation-style line --custom-compile-command "make lock" \
		-o $(CONSTRAINTS)

dev: $(STAMP)
	$(BIN)/talix dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) lint
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/core.py --quick
	$(BIN)/python bench/journal.py --quick
	$(BIN)/python bench/ray_entities.py --quick
	$(BIN)/python bench/views.py --quick
	$(BIN)/python bench/http.py --quick
	$(BIN)/python bench/actions.py --quick
	$(BIN)/python bench/ocr.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
