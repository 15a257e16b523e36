# Two entry points: `make demo` (install + dvc repro on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install demo test benchmarks verify

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	dvc repro

test: install
	$(PY) -m pytest

benchmarks: install  # CPU figures into benchmarks/results/ (GPU: python benchmarks/bench_gpu_inference.py)
	for b in cpu_inference scaling training pipeline; do $(PY) benchmarks/bench_$$b.py || exit 1; done

verify: install  # rerun the embedded pipeline in a scratch clone; compare with the committed dvc.lock and metrics
	$(VENV)/bin/bench verify
