# The two set-up commands of the README. Both create the environment on first use.
#   make demo   ingest the bundled sample, then serve the chat UI on http://127.0.0.1:7860
#   make test   run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export ANONYMIZED_TELEMETRY ?= False

.PHONY: demo test env test-env browser

# One stamp per extra: `make demo` needs the UI only, `make test` everything (extras in pyproject.toml).
$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

env: $(VENV)/.installed-test

# Debian's chromium for the browser tests (Playwright drives it; it never downloads its own browser).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: $(VENV)/.installed-ui
	$(VENV)/bin/isnad ingest --sample
	$(VENV)/bin/isnad ui

test: $(VENV)/.installed-test browser
	$(PY) -m pytest $(PYTEST_ARGS)
