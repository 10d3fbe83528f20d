# The README's commands. `make demo` and `make test` work on a fresh machine:
# they install what is missing (system servers, the virtualenv) first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps demo test lint lab bench sandbox-down clean

setup: system-deps $(STAMP)

# PostgreSQL server binaries and redis-server are real parts of the sandbox and the tests;
# Chromium opens the auditor's report in the report test; cron's crontab is what `schedule --install` writes.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
	   || ! command -v redis-server >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
	   || ! command -v crontab >/dev/null 2>&1; then \
	  echo "installing postgresql, redis-server, chromium and cron (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql redis-server chromium cron >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,lab,drivers,s3]'
	@touch $(STAMP)

demo: setup
	$(BIN)/vextrus-nb sandbox up
	$(BIN)/vextrus-nb run verify/smoke --env sandbox
	@echo "open it with: make lab   (the sandbox keeps running; stop it with: $(BIN)/vextrus-nb sandbox down)"

test: setup lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check vextrus_nb tests bench
	$(BIN)/ruff format --check vextrus_nb tests bench

lab: setup
	$(BIN)/jupyter lab notebooks/

bench: setup
	$(BIN)/python -m bench

sandbox-down: $(STAMP)
	$(BIN)/vextrus-nb sandbox down

clean: sandbox-down
	rm -rf $(VENV) .pytest_cache .ruff_cache
