# Thin wrappers: every target creates the virtual environment first if needed.
#   make book    execute every chapter and build the HTML book (prints where index.html is)
#   make reproduce   the full linear-4 experiment through papermill (a GPU job; resumable)
#   make test    the test suite on TensorFlow, then the backend tests on JAX (what CI runs)
#   make test-fast   the same without the tests marked slow (a few minutes)
#   make lint    ruff
#   make setup   .venv with the package and every extra, exactly as uv.lock pins them
#   make lock    update uv.lock (and environment-lock.txt) after a change to pyproject.toml
PYTHON ?= python3
VENV ?= .venv
# tensorflow-cpu is the small CPU wheel; use EXTRAS=tensorflow,jax,book,dev on a GPU machine
# (uv.lock pins both: every extra is locked)
EXTRAS ?= tensorflow-cpu,jax,book,dev
# the uv that installs from and updates uv.lock; pip puts it in the virtual environment
UV_VERSION ?= 0.13.9
# more `uv lock` options for `make lock`: --upgrade (every pin to its newest release) or
# "--upgrade-package keras"; without them, pins that still satisfy pyproject.toml stay
LOCK_ARGS ?=
# backends, besides the default TensorFlow, that rerun the tests marked keras_backend
TEST_BACKENDS ?= jax
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (auto: one per core); each test file runs whole on one
# worker, so a file's module and session fixtures (the built book, a trained run) are made once
TEST_WORKERS ?= auto
# the preset the book's experiment chapter runs: smoke (digits, offline) or cifar10-smoke (needs DPE_DATA)
BOOK_PRESET ?= smoke
# the book goes to $(BOOK_DIR)/_build/html, the runs of its experiment chapter to $(BOOK_DIR)/_build/runs
BOOK_DIR ?= .
# where `make reproduce` writes the executed notebook and the results folders
REPRODUCE_DIR ?= runs
# more papermill parameters for the reproduction, e.g. REPRODUCE_ARGS="-p trials 3"
REPRODUCE_ARGS ?=
# a pytest marker expression that narrows both passes, e.g. MARKS="not slow"
MARKS ?=

comma := ,
XDIST := $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# uv works on $(VENV) and never downloads a Python of its own
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv
# the extras environment.yml installs, which environment-lock.txt pins for conda
CONDA_EXTRAS := tensorflow jax book dev

.PHONY: setup lock book reproduce test test-fast lint benchmark clean

setup: $(STAMP)

# only python3 is needed beforehand: the virtual environment's pip brings the pinned uv
define bootstrap_uv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/uv --version 2>/dev/null | grep -q "^uv $(UV_VERSION) " || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
endef

# `uv sync --locked` installs exactly what uv.lock pins (hash-checked; the package itself
# editable) and removes anything else; it stops if uv.lock is out of step with pyproject.toml
$(STAMP): pyproject.toml uv.lock
	$(bootstrap_uv)
	$(UV) sync --locked --quiet $(addprefix --extra ,$(subst $(comma), ,$(EXTRAS)))
	rm -f $(VENV)/.installed-* && touch $@

# re-resolve uv.lock (keeping every pin that still satisfies pyproject.toml, unless LOCK_ARGS
# says otherwise), then pin environment.yml's extras in environment-lock.txt for conda
lock:
	$(bootstrap_uv)
	$(UV) lock $(LOCK_ARGS)
	$(UV) export --frozen --quiet --no-hashes --no-emit-project \
		$(addprefix --extra ,$(CONDA_EXTRAS)) --output-file environment-lock.txt

book: setup
	$(BIN)/python scripts/build_book.py --out $(BOOK_DIR) --preset $(BOOK_PRESET)

# papermill runs the experiment chapter with the linear-4 preset; rerunning resumes. It runs in
# book/, so a relative DPE_DATA is made absolute here, from the folder make was started in
reproduce: setup
	mkdir -p $(REPRODUCE_DIR)/linear-4
	$(if $(DPE_DATA),DPE_DATA="$(abspath $(DPE_DATA))") \
	$(BIN)/papermill book/06_linear4_experiment.ipynb $(REPRODUCE_DIR)/linear-4/notebook.ipynb \
		--cwd book -p preset linear-4 -p out_dir $(abspath $(REPRODUCE_DIR)) -p quiet False \
		$(REPRODUCE_ARGS)

test: setup
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest $(XDIST) $(if $(MARKS),-m "$(MARKS)") $(PYTEST_ARGS)
	for backend in $(TEST_BACKENDS); do \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest $(XDIST) \
			-m "keras_backend$(if $(MARKS), and ($(MARKS)))" $(PYTEST_ARGS) || exit 1; \
	done

test-fast:
	$(MAKE) test MARKS="not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmark: setup
	$(BIN)/python benchmarks/bench_acquisition.py

clean:
	rm -rf $(VENV) _build .pytest_cache .ruff_cache
