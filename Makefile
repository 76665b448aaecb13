# The commands a new user needs. Each creates .venv if missing and installs what it needs:
# `make app` the run-time set (requirements.txt), `make check`/`make test` also the development
# set (requirements-dev.txt: pytest, pytest-xdist, playwright, ruff, tensorboard).
PY ?= python3.11
VENV = .venv
BIN = $(VENV)/bin
# Tests run in pytest-xdist processes, a test file per process at a time so that a file's shared
# fixtures are made once: JOBS for `make test`, CHECK_JOBS for `make check`; 0 runs them in this one
# process. On a 2-core machine `make test` runs 3: with 2, a core idles while a test waits on a
# browser, a server or torchrun, and a third process fills those waits. `make check` waits on
# nothing (it is all computing), so it runs one process per core.
JOBS ?= 3
CHECK_JOBS ?= 2
PYTEST = $(BIN)/python -m pytest -q --dist loadfile

.PHONY: app check test venv dev-venv bench clean-venv

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(BIN)/.installed-dev: requirements-dev.txt $(BIN)/.installed
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.installed

dev-venv: $(BIN)/.installed-dev

app: venv
	$(BIN)/streamlit run app.py

# the inner loop: every test that trains in no subprocess and needs no browser or torchrun
check: dev-venv
	$(PYTEST) -n $(CHECK_JOBS) -m "not slow"

# the whole suite (what CI runs)
test: dev-venv
	$(PYTEST) -n $(JOBS)

bench: venv
	$(BIN)/python scripts/bench.py

clean-venv:
	rm -rf $(VENV)
