# Prompt Tracker: `make run` starts everything, `make test` runs every test. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VENDOR := prompt_tracker/static/vendor
NODE_STAMP := node_modules/.installed

.PHONY: run test lint lock install vendor bench-deps browser-deps redis-deps postgres-deps clean

# requirements*.txt name what we use; requirements.lock pins all of it, hashes included (make lock).
# The venv, with pip pinned. One whose creation failed (Debian without python3-venv: no ensurepip)
# is removed, so the next make starts over, and the missing package is named in one sentence.
PIP_VERSION := 26.3
$(BIN)/pip:
	@$(PYTHON) -m venv $(VENV) >$(VENV).log 2>&1 || { \
		if grep -q ensurepip $(VENV).log; then \
			echo "Install python3-venv (apt-get install $$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')), then run make again." >&2; \
		else cat $(VENV).log >&2; fi; \
		rm -rf $(VENV) $(VENV).log; exit 1; }
	@rm -f $(VENV).log
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)

$(STAMP): $(BIN)/pip requirements.lock requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	touch $(STAMP)

# The browser's Socket.IO client: the version pinned in package-lock.json, from the npm registry,
# served from static/vendor/ (the CSP allows no other host). The copy is committed, so run, install
# and test serve it without Node; only `make vendor` (after changing package.json) needs npm.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

vendor: $(NODE_STAMP)
	mkdir -p $(VENDOR)
	cp node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/socket.io.min.js
	cp node_modules/socket.io-client/LICENSE $(VENDOR)/socket.io-client.LICENSE

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/dev_run.py

# Browser tests drive Debian's Chromium headless shell (Playwright's Python package with executable_path):
# the same Blink as the full browser without its windowing layers, as Playwright itself runs headless tests
# (60% of the full browser's CPU over the suite).
browser-deps:
	@command -v chromium-headless-shell >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium-headless-shell; }

# Integration tests start their own redis-server processes (and redis-cli to form a Cluster).
redis-deps:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools; }

# PostgreSQL integration tests start their own server with Debian's binaries (never the machine's cluster).
postgres-deps:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# Lint, format check and the layers contract (ruff, import-linter), as CI runs them before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# bench/sockets.py's asyncio client (python-socketio's AsyncClient and raw WebSockets need aiohttp). Not in the
# lock: in the test venv every process that imports python-socketio would import it too (0.2 s of CPU each).
AIOHTTP_VERSION := 3.14.5
bench-deps: $(STAMP)
	$(BIN)/pip install --quiet aiohttp==$(AIOHTTP_VERSION)

# Regenerate the lock file (every dependency pinned, with hashes) after editing requirements*.txt.
lock: $(BIN)/pip
	test -x $(BIN)/pip-compile || $(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements.lock requirements-dev.txt

# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE=1 on CI's machine): the
# tests start about 150 Python processes, each compiling the app's modules again without it (0.3 s of CPU),
# and each test process rewrote every test module's asserts again.
test: $(STAMP) browser-deps redis-deps postgres-deps
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 4 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) node_modules .pytest_cache test-artifacts
