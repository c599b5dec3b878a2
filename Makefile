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

.PHONY: setup run test bench browser
setup: $(STAMP)

# The dashboard is tested in a real headless Chromium (Debian's chromium + chromium-driver).
# Installed here when missing and we are root (as on CI); otherwise that one test is skipped
# and says why.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver for the dashboard test"; \
	    (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium: the browser test will be skipped"; \
	  else echo "chromium not installed and not root: the browser test will be skipped"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/reglament run $(ARGS)

test: $(STAMP) browser
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/ingress.py
