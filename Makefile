# The two commands a new user needs. Each creates .venv if missing and installs requirements.
PY ?= python3.11
VENV = .venv
BIN = $(VENV)/bin

.PHONY: app test venv bench clean-venv

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

venv: $(BIN)/.installed

app: venv
	$(BIN)/streamlit run app.py

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python scripts/bench.py

clean-venv:
	rm -rf $(VENV)
