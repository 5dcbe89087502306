# gait_jax: `make demo` trains and evaluates GaitSet on the built-in synthetic
# dataset; `make test` runs the test suite. Both create or refresh a virtualenv
# in .venv from requirements*.txt, so a machine with Python 3.11 needs nothing
# else.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/synthetic_demo
WILD_WORKDIR ?= workdirs/synthetic_wild
PYTEST_ARGS ?=
# cpu (requirements.txt only), cuda or tpu: `make demo ACCEL=cuda` also
# installs requirements-$(ACCEL).txt (jax's CUDA 13 plugin or libtpu).
ACCEL ?= cpu
ifeq ($(ACCEL),cpu)
ACCEL_STAMP :=
else ifneq ($(filter $(ACCEL),cuda tpu),)
ACCEL_STAMP := $(VENV)/.stamp-$(ACCEL)
else
$(error ACCEL=$(ACCEL); valid: cpu, cuda, tpu)
endif

.PHONY: demo demo-wild test test-all venv venv-dev bench clean

# The stamp files make the install step re-run only when requirements change.
$(VENV)/.stamp-runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.stamp-dev: requirements-dev.txt requirements.txt \
		$(VENV)/.stamp-runtime $(ACCEL_STAMP)
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

# The accelerator's jax extra, after the runtime requirements.
$(VENV)/.stamp-cuda: requirements-cuda.txt $(VENV)/.stamp-runtime
	$(PY) -m pip install -q -r requirements-cuda.txt
	@touch $@

$(VENV)/.stamp-tpu: requirements-tpu.txt $(VENV)/.stamp-runtime
	$(PY) -m pip install -q -r requirements-tpu.txt
	@touch $@

venv: $(VENV)/.stamp-runtime $(ACCEL_STAMP)
venv-dev: $(VENV)/.stamp-dev

# The demo's output is kept in $(WORKDIR)/demo.log and its table compared
# with the README's example (scripts/readme_demo.py says if they differ).
demo: venv
	@mkdir -p $(WORKDIR)
	set -o pipefail; $(PY) launch.py --config=configs/synthetic_demo.py \
		--workdir=$(WORKDIR) | tee $(WORKDIR)/demo.log
	@$(PY) scripts/readme_demo.py $(WORKDIR)/demo.log

# DeepGaitV2-tiny on the in-the-wild synthetic set (Gait3D protocol), then a
# PNG strip of its test sequences in $(WILD_WORKDIR)/preview.png.
demo-wild: venv
	@mkdir -p $(WILD_WORKDIR)
	set -o pipefail; $(PY) launch.py --config=configs/synthetic_wild.py \
		--workdir=$(WILD_WORKDIR) | tee $(WILD_WORKDIR)/demo.log
	$(PY) -m data_prep.synthetic.preview \
		--dataset_dir=data/synthetic_gait3d/1.0.0 --out=$(WILD_WORKDIR)/preview.png

test: venv-dev
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests $(PYTEST_ARGS)

# Every test, the slow ones included.
test-all: venv-dev
	$(PY) -m pytest -q -n 2 --dist loadfile tests $(PYTEST_ARGS)

# CPU-sized runs of every benchmark; results are recorded in docs/benchmarks.md.
bench: venv-dev
	$(PY) benchmarks/loss_bench.py
	$(PY) benchmarks/train_bench.py
	cd benchmarks && ../$(PY) eval_bench.py --data_dir=../data
	cd benchmarks && ../$(PY) input_bench.py --config=../configs/synthetic_demo.py --data_dir=../data
	$(PY) benchmarks/convert_bench.py

clean:
	rm -rf $(VENV) workdirs
