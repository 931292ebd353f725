# Thin wrappers: every target creates the virtual environment first if needed.
#   make book    execute every chapter and build the HTML book (prints where index.html is)
#   make reproduce   the full linear-4 experiment through papermill (a GPU job; resumable)
#   make test    the test suite on TensorFlow, then the backend tests on JAX (what CI runs)
#   make test-fast   the same without the tests marked slow (a few minutes)
#   make lint    ruff
#   make setup   .venv with the package and every extra
PYTHON ?= python3
VENV ?= .venv
# tensorflow-cpu is the small CPU wheel; use EXTRAS=tensorflow,jax,book,dev on a GPU machine
EXTRAS ?= tensorflow-cpu,jax,book,dev
# backends, besides the default TensorFlow, that rerun the tests marked keras_backend
TEST_BACKENDS ?= jax
PYTEST_ARGS ?=
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
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup book reproduce test test-fast lint benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

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
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest $(if $(MARKS),-m "$(MARKS)") $(PYTEST_ARGS)
	for backend in $(TEST_BACKENDS); do \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest \
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
