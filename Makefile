# Two commands do all the set-up on a fresh clone:
#   make quickstart   # .venv with the core install only; fetch ML-100k; train + evaluate + recommend
#   make test         # adds the test tools and optional extras to .venv; fetch ML-100k; run the suite
# Each install step leaves a stamp in .venv (named after pyproject.toml's checksum, so editing
# pyproject reinstalls): `make test` after `make quickstart` adds only what is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
CORE   := $(VENV)/.core-$(SUM)
FULL   := $(VENV)/.full-$(SUM)

.PHONY: quickstart test lint data clean chromium

# The main job: the CPU torch wheel and the package with its core dependencies, nothing else.
$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# The build (setup.py) compiles the training step's numba kernels into src/ncf/train/_numba_cache,
	# so the first fit compiles nothing. The warm-up loads them; it compiles (into __pycache__) only
	# what the build could not provide, e.g. when pip's isolated build got another numba than .venv.
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -c "import ncf.train.kernels as k; k.warmup()"
	rm -f $(VENV)/.core-* $(VENV)/.installed-* && touch $@

# Everything the test suite touches: dev tools, the serve/tensorboard/bench extras, the baselines.
$(FULL): $(CORE)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	# Baselines extra. lightfm 1.17 builds only without build isolation, with `wheel` present
	# and pip < 25.3 (its setup.py pokes __builtins__); implicit ships wheels. Then the extra
	# itself, which finds both installed.
	$(BIN)/python -m pip install -q wheel "pip<25.3" "implicit>=0.7"
	$(BIN)/python -m pip install -q --no-build-isolation lightfm==1.17
	$(BIN)/python -m pip install -q -e ".[baselines]"
	# The explorer-page browser test: Debian's Chromium, driven by Playwright's bundled driver
	# (browsers cannot be downloaded here, so never `playwright install`). apt only when missing.
	$(MAKE) chromium
	rm -f $(VENV)/.full-* && touch $@

chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: /usr/bin/chromium missing (apt-get install chromium as root); the browser test will skip"; fi; }

data: $(CORE)
	$(BIN)/ncf data fetch ml-100k

quickstart: data
	$(BIN)/ncf quickstart

test: $(FULL) data
	$(BIN)/python -m pytest -q

lint: $(CORE)
	test -x $(BIN)/ruff || $(BIN)/python -m pip install -q "ruff>=0.5"
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

clean:
	rm -rf $(VENV) runs .pytest_cache
