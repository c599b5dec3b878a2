# Two entry points for a fresh clone: `make run` and `make test`.
# Both create .venv with the machine's python3 (3.11+) and install the project into it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: setup run test bench
setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/reglament run $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/ingress.py
