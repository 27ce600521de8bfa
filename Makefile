# Two commands do all the set-up on a fresh clone:
#   make quickstart   # create .venv, install, fetch ML-100k, train + evaluate + recommend
#   make test         # create .venv, install with test extras, fetch ML-100k, run the suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: quickstart test lint data clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	# Baselines (optional extra). lightfm 1.17 builds only without build isolation, with
	# `wheel` present and pip < 25.3 (its setup.py pokes __builtins__); implicit ships wheels.
	$(BIN)/python -m pip install -q wheel "pip<25.3" "implicit>=0.7"
	$(BIN)/python -m pip install -q --no-build-isolation lightfm==1.17
	# The explorer-page browser test: Debian's Chromium, driven by Playwright's bundled driver
	# (browsers cannot be downloaded here, so never `playwright install`). apt only when missing.
	$(MAKE) chromium
	# Compile the training step's numba kernels once now (cached on disk), not in the first fit.
	$(BIN)/python -c "import ncf.kernels as k; k.warmup()"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: /usr/bin/chromium missing (apt-get install chromium as root); the browser test will skip"; fi; }

data: $(STAMP)
	$(BIN)/ncf data fetch ml-100k

quickstart: data
	$(BIN)/ncf quickstart

test: data
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
