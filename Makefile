# nncli — two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NNCLI  := $(VENV)/bin/nncli
DEMO   := runs/digits

.PHONY: demo test lint bench bench-dask clean

# the environment with an up-to-date pip (`python -m venv` leaves an existing one as it is)
define new_venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
endef

$(VENV)/.base: pyproject.toml
	$(new_venv)
	$(PY) -m pip install --quiet -e .
	touch $@

# nncli with the test tools and the Dask extra in one install (a second would build nncli again); it
# holds everything .base does, so it counts as .base too
$(VENV)/.dev: pyproject.toml
	$(new_venv)
	$(PY) -m pip install --quiet -e '.[dev,dask]'
	touch $@ $(VENV)/.base

## demo: train on the 8x8 digits, predict the held-out test split, plot the cost
demo: $(VENV)/.base
	$(NNCLI) train configs/digits.yaml --overwrite
	$(NNCLI) predict $(DEMO)/model.npz datasets/digits_test.csv -o $(DEMO)/predictions.csv
	$(NNCLI) plot-cost $(DEMO) -o $(DEMO)/cost.png
	@echo "demo: predictions in $(DEMO)/predictions.csv, cost plot in $(DEMO)/cost.png"

## test: lint and run the whole suite, shared between TEST_PROCESSES processes (pytest-xdist; each
## compiles the numba kernels it meets, so two halve a fresh checkout's time on two cores)
TEST_PROCESSES ?= 2
test: $(VENV)/.dev
	$(VENV)/bin/ruff check nncli tests benchmarks
	$(VENV)/bin/pytest -n $(TEST_PROCESSES)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check nncli tests benchmarks
	$(VENV)/bin/ruff format --check nncli tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis

## bench: nncli against scikit-learn and PyTorch (CPU) on W1-W4, `nncli train` end to end, and the
## convolutional workloads W5-W6 against PyTorch and a plain NumPy im2col loop
$(VENV)/.bench: $(VENV)/.base
	$(PY) -m pip install --quiet -e '.[bench]'
	-$(PY) -m pip install --quiet torch==2.13.0 || echo "bench: PyTorch could not be installed; it is left out"
	touch $@

bench: $(VENV)/.bench
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/convolution.py

## bench-dask: the dask backend's per-step overhead, W2-sized batch mode against local, and CSVs of one and
## three times a worker's memory (benchmarks/scale_out.py; writes about 4 GB to benchmarks/.cache)
bench-dask: $(VENV)/.dev
	$(PY) benchmarks/scale_out.py
