# Two commands matter: `make demo` (set up, run the demo) and `make test` (set up, run every check).
# Both need only Python 3.11+ and make: everything else is installed into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint check-python install install-test bench clean

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
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# bench/send.py needs Postfix's smtp-sink (it installs Debian's postfix when run as root): run it on its own.
bench: install
	$(BIN)/python bench/import_contacts.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/enqueue.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis data/demo
