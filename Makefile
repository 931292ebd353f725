# Thin wrappers: every target creates the virtual environment first if needed.
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
# a pytest marker expression that narrows both passes, e.g. MARKS="not slow"
MARKS ?=

comma := ,
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup test test-fast lint benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

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
	rm -rf $(VENV) .pytest_cache .ruff_cache
