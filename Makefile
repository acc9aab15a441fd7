# Two commands matter: `make demo` (set up, run the demo) and `make test` (set up, run every check).
# Both need only Python 3.11+ and make. They install the exact versions, with hashes, recorded in
# requirements/*.txt (the lock), then the project itself without dependencies: a new release upstream can
# not change what a fresh machine runs. `make lock` refreshes the lock; `make test-latest` tries the newest
# releases in a separate environment, so drift is seen before a user meets it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LATEST_VENV ?= .venv-latest
# The tool that writes the lock (only `make lock` needs it).
UV_VERSION ?= 0.13.9
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: demo test test-latest lint lock check-python install install-test bench clean

demo: install
	$(BIN)/campaign demo

test: install-test lint
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "campaign needs Python 3.11 or newer; try: make PYTHON=python3.12")'

$(VENV)/bin/python: | check-python
	$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: install your system's venv package (Debian: python3-venv)"; exit 1; }

# The lock's packages (hash-checked), then the project itself, built with the locked setuptools.
$(VENV)/.installed: requirements/runtime.txt pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: requirements/test.txt pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.installed

# Refresh the lock from pyproject.toml's ranges (newest compatible releases), for every Python from 3.11 on.
lock: | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile $(LOCK_FLAGS) pyproject.toml requirements/build.in -o requirements/runtime.txt
	$(BIN)/uv pip compile $(LOCK_FLAGS) --extra test pyproject.toml requirements/build.in -o requirements/test.txt

# The suite against the newest releases pyproject.toml allows, in its own environment (the lock is untouched).
test-latest: | check-python
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST_VENV)/bin/python -m pytest -p no:cacheprovider

# bench/send.py needs Postfix's smtp-sink (it installs Debian's postfix when run as root): run it on its own.
bench: install
	$(BIN)/python bench/import_contacts.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/enqueue.py
	$(BIN)/python bench/waves.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis data/demo
