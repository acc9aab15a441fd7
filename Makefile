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

.PHONY: demo test test-latest lint lock check-python install install-test bench clean vendor-js screenshots

demo: install
	$(BIN)/campaign demo

# The suite in TEST_JOBS processes (pytest-xdist; each takes its own SQLite files, PostgreSQL database, servers
# on port 0 and browser). Many tests wait on servers and subprocesses, so more processes than cores pay off:
# TEST_JOBS=0 runs it in this one process.
TEST_JOBS ?= 4

test: install-test lint
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist worksteal

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

# The README's screenshots: the staff journey's browser test (Debian's chromium and chromium-driver; it fails
# without them), then the steps named here copied from the git-ignored tests/artifacts/journey/ (NN-step.png) to
# docs/screenshots/step.png, as they are (a 1000x800 window keeps each small). Commit the ones that changed.
SCREENSHOTS := contacts-imported contacts-rejected event-form campaign-draft subject-edited preview-manila preview-kiritimati \
	launch-confirmation report

screenshots: install-test
	CAMPAIGN_TEST_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_web_journey.py
	mkdir -p docs/screenshots
	for step in $(SCREENSHOTS); do cp tests/artifacts/journey/[0-9][0-9]-$$step.png docs/screenshots/$$step.png || exit 1; done
	@du -ch docs/screenshots/*.png | tail -n 1

# bench/send.py needs Postfix's smtp-sink (it installs Debian's postfix when run as root): run it on its own.
bench: install
	$(BIN)/python bench/import_contacts.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/enqueue.py
	$(BIN)/python bench/waves.py

# The chart library the HTML report inlines and the staff pages serve, fetched again from npm at the pinned version
# and checked against the integrity npm published for it: a maintainer's refresh, never run by demo or test (they
# use the copy in the package). To upgrade, change both lines (`npm view uplot@VERSION dist.integrity`).
UPLOT_VERSION := 1.6.32
UPLOT_INTEGRITY := sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
UPLOT_DIR := campaign/render/vendor/uplot
UPLOT_FILES := dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE
# htmx, the staff pages' progressive enhancement (the template editor's live preview), the same way: copied
# unchanged into campaign/web/static/ (htmx.min.js, its LICENSE as htmx.LICENSE), recorded in VENDORED.md.
HTMX_VERSION := 2.0.11
HTMX_INTEGRITY := sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==
HTMX_DIR := campaign/web/static

vendor-js: | check-python
	@command -v npm >/dev/null || { echo "make vendor-js needs npm (Node.js)"; exit 1; }
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	npm pack --silent --pack-destination "$$scratch" "uplot@$(UPLOT_VERSION)" >/dev/null && \
	tarball="$$scratch/uplot-$(UPLOT_VERSION).tgz" && \
	$(PYTHON) -c 'import base64, hashlib, sys; \
	got = "sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode(); \
	sys.exit(None if got == sys.argv[2] else f"uplot tarball integrity {got} is not the pinned {sys.argv[2]}")' \
	"$$tarball" "$(UPLOT_INTEGRITY)" && \
	tar -xzf "$$tarball" -C "$$scratch" && mkdir -p $(UPLOT_DIR) && \
	for f in $(UPLOT_FILES); do cp "$$scratch/package/$$f" $(UPLOT_DIR)/; done && \
	{ echo "uPlot $(UPLOT_VERSION) (MIT), from the npm registry: npm pack uplot@$(UPLOT_VERSION)"; \
	  echo "integrity $(UPLOT_INTEGRITY)"; \
	  echo "Copied unchanged: $(UPLOT_FILES). Refresh with make vendor-js (the version is pinned in the Makefile)."; \
	  cd $(UPLOT_DIR) && $(PYTHON) -c 'import hashlib, sys; \
	[print("sha256", hashlib.sha256(open(n, "rb").read()).hexdigest(), "", n) for n in sys.argv[1:]]' \
	$(notdir $(UPLOT_FILES)); } > $(UPLOT_DIR)/VERSION
	@echo "uPlot $(UPLOT_VERSION) verified and copied to $(UPLOT_DIR)"
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	npm pack --silent --pack-destination "$$scratch" "htmx.org@$(HTMX_VERSION)" >/dev/null && \
	tarball="$$scratch/htmx.org-$(HTMX_VERSION).tgz" && \
	$(PYTHON) -c 'import base64, hashlib, sys; \
	got = "sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode(); \
	sys.exit(None if got == sys.argv[2] else f"htmx tarball integrity {got} is not the pinned {sys.argv[2]}")' \
	"$$tarball" "$(HTMX_INTEGRITY)" && \
	tar -xzf "$$tarball" -C "$$scratch" && \
	cp "$$scratch/package/dist/htmx.min.js" $(HTMX_DIR)/htmx.min.js && \
	cp "$$scratch/package/LICENSE" $(HTMX_DIR)/htmx.LICENSE && \
	{ echo "# Vendored files"; echo; \
	  echo "htmx $(HTMX_VERSION) (0BSD), from the npm registry: npm pack htmx.org@$(HTMX_VERSION)"; echo; \
	  echo "integrity $(HTMX_INTEGRITY)"; echo; \
	  echo "Copied unchanged: dist/htmx.min.js as htmx.min.js, LICENSE as htmx.LICENSE. To update, change"; \
	  echo "HTMX_VERSION and HTMX_INTEGRITY in the Makefile (npm view htmx.org@VERSION dist.integrity), then run"; \
	  echo "make vendor-js; tests/test_web_templates.py checks the sha256 below against the file served."; echo; \
	  cd $(HTMX_DIR) && $(PYTHON) -c 'import hashlib, sys; \
	[print("sha256", hashlib.sha256(open(n, "rb").read()).hexdigest(), "", n) for n in sys.argv[1:]]' \
	htmx.min.js htmx.LICENSE; } > $(HTMX_DIR)/VENDORED.md
	@echo "htmx $(HTMX_VERSION) verified and copied to $(HTMX_DIR)"

clean:
	rm -rf $(VENV) $(LATEST_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis data/demo
