# denoiselab: `make demo` sets up and trains the default model; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of PyTorch; an unpinned torch may pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
# make test's worker processes (pytest-xdist), each test file on one of them: one per core of
# the 2-core machines the suite is sized for.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast bench clean chromium

$(BIN)/denoiselab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

setup: $(BIN)/denoiselab

demo: setup
	$(BIN)/denoiselab train

# Browser tests drive the system Chromium (Debian's package, installed when missing).
chromium:
	@scripts/ensure-chromium

test: setup chromium
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python benchmarks/spiral_vs_seed001.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache
