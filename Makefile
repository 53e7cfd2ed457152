# The two set-up commands of the README: `make dev` (the main job) and `make test` (the suite).
# Each creates .venv when missing and installs the project with its dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/talix dev

lint: $(STAMP)
	$(BIN)/ruff check .

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
