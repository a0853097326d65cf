# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A second environment with every dependency at the lower bound pyproject.toml declares.
LOWEST_VENV ?= .venv-lowest

.PHONY: setup demo test test-lowest lint bench clean docs

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

# The same suite against the oldest releases pyproject.toml allows: each dependency pinned to its
# lower bound (packages the project does not name resolve to their newest allowed release).
# Left out there, because they cannot apply to those releases:
# - the deepagents extra and what needs it (tests/deep_agents, the deep-agent example and how-to
#   snippets): deepagents 0.7 needs
#   langchain-core >= 1.5 and Python >= 3.11, so it cannot be installed beside the oldest
#   langchain-core the rest supports;
# - the two tests of Commands.stream_input, which the e2b SDK has only from 2.58.0;
# - the caller-memory test: only e2b >= 2.63.0 can stop keeping a command's whole output
#   (retain_output=False); older releases keep it in the caller, as the README says.
LOWEST_SKIP := --ignore=tests/deep_agents -k 'not deepagents and not deep_agent' \
	--deselect tests/local_runtime/test_envd_sdk.py::test_stream_input \
	--deselect tests/local_runtime/test_envd_sdk.py::test_async_stdin_stream \
	--deselect tests/reliability/test_caller_memory.py::test_long_output_grows_the_caller_by_a_bounded_amount

test-lowest: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/python -m pytest $(LOWEST_SKIP)

$(LOWEST_VENV)/.installed: pyproject.toml .ci/lowest_constraints.py
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST_VENV)/bin/python .ci/lowest_constraints.py constraints --skip-extra deepagents --skip-extra bench \
		> $(LOWEST_VENV)/constraints.txt
	$(LOWEST_VENV)/bin/python .ci/lowest_constraints.py requirements dev > $(LOWEST_VENV)/dev.txt
	$(LOWEST_VENV)/bin/python -m pip install --quiet -c $(LOWEST_VENV)/constraints.txt \
		-e '.[local,agents]' -r $(LOWEST_VENV)/dev.txt
	touch $@

lint: setup
	$(BIN)/ruff check langchain_e2b tests benchmarks examples
	$(BIN)/ruff format --check langchain_e2b tests benchmarks examples
	$(BIN)/mypy

# Not part of `make test`: takes several minutes and wants a quiet machine.
bench: setup $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run_all.py

$(VENV)/.bench-installed: pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The documentation site (mkdocs.yml, pages in docs/) into build/site; --strict turns a broken
# link or API reference into a failure.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(LOWEST_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
