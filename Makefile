# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test install install-test flags compare bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: setup.py | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## The main job: train SupCon on the embedded digits data, linear-evaluate, export, then the
## corruption / calibration report of eval.py.
run: install
	$(PY) train.py
	$(PY) eval.py --model_dir=runs/digits_supcon

## The whole test suite (offline), in TEST_WORKERS processes (pytest-xdist): most of its time is
## train.py / eval.py subprocesses and single-threaded tiny steps. The 10 slowest tests are listed.
TEST_WORKERS ?= 2
test: install-test
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10 tests

## Regenerate flags.md from the flag definitions.
flags: install
	$(PY) -m supcon.flags --markdown > flags.md

## SupCon vs cross-entropy on digits, same encoder and budget, full corruption sweep
## (`make compare SEED=1` for another seed; each seed has its own folder).
SEED ?= 0
COMPARE_DIR := runs/compare/seed$(SEED)
compare: install
	$(PY) train.py --method=supcon --seed=$(SEED) --model_dir=$(COMPARE_DIR)/supcon
	$(PY) train.py --method=ce --seed=$(SEED) --model_dir=$(COMPARE_DIR)/ce
	$(PY) eval.py --seed=$(SEED) --model_dir=$(COMPARE_DIR)/supcon
	$(PY) eval.py --seed=$(SEED) --model_dir=$(COMPARE_DIR)/ce
	$(PY) eval.py --compare $(COMPARE_DIR)/supcon $(COMPARE_DIR)/ce --output_dir=$(COMPARE_DIR)/report

bench: install
	$(PY) benchmarks/loss_bench.py
	$(PY) benchmarks/input_bench.py
	$(PY) benchmarks/queue_bench.py

clean:
	rm -rf $(VENV) *.egg-info build dist

## The numeric tests (losses, models, training math, kNN) a second time with oneDNN off and one
## thread per TensorFlow pool: float results must not depend on how TensorFlow schedules math
## (kernel choice, summation order). End-to-end and non-numeric tests (notebook, SavedModel
## subprocesses, run directory, train.py) already ran in `make test`; they are left out here.
NUMERICS_ENV := TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
NUMERICS_TESTS := tests/losses tests/models tests/training tests/evaluation/test_knn.py \
	--ignore=tests/models/test_notebook.py --ignore=tests/models/test_export.py \
	--ignore=tests/training/test_run_dir.py --ignore=tests/training/test_run_options.py \
	--ignore=tests/models/test_resnet_encoder.py --ignore=tests/models/test_keras_encoders.py \
	--ignore=tests/models/test_docstrings.py --ignore=tests/training/test_docstrings.py

.PHONY: test-numerics
test-numerics: install-test
	$(NUMERICS_ENV) $(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" $(NUMERICS_TESTS)
