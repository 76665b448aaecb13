# The commands a new user needs. Each creates .venv if missing and installs what it needs:
# `make app` the run-time set (requirements.txt), `make check`/`make test` also the development
# set (requirements-dev.txt: pytest, pytest-xdist, playwright, ruff, tensorboard).
PY ?= python3.11
VENV = .venv
BIN = $(VENV)/bin
# Tests run in JOBS processes (pytest-xdist), a test file per process at a time so that a file's
# shared fixtures are made once; `make test JOBS=0` runs them in this one process.
JOBS ?= 2
PYTEST = $(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile

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
	$(PYTEST) -m "not slow"

# the whole suite (what CI runs)
test: dev-venv
	$(PYTEST)

bench: venv
	$(BIN)/python scripts/bench.py

clean-venv:
	rm -rf $(VENV)
