# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean docs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/langchain-e2b demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check langchain_e2b tests benchmarks examples
	$(BIN)/ruff format --check langchain_e2b tests benchmarks examples
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/run_all.py

# The documentation site (mkdocs.yml, pages in docs/) into build/site; --strict turns a broken
# link or API reference into a failure.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
