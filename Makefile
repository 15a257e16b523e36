# Two entry points: `make demo` (install + dvc repro on the embedded default) and `make test`.
VENV ?= .venv
LOCK ?= requirements/lock-cuda.txt
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install demo test test-slow perf mutation gpu-check verify lock lock-cpu FORCE

# The venv holds exactly the pins of $(LOCK) (no resolving at install time); pip-sync removes anything the lock
# lacks and `pip check` proves the lock complete. .installed names the lock it was installed from.
ifneq ($(file < $(VENV)/.installed),$(LOCK))
$(VENV)/.installed: FORCE
endif
$(VENV)/.installed: $(LOCK) pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep -E '^pip==' $(LOCK))"
	$(PY) -m pip install -q --no-deps -r $(LOCK)
	$(VENV)/bin/pip-sync -q --pip-args=--no-deps $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	echo $(LOCK) > $@

# pyproject.toml -> the lock (Linux x86_64, Python 3.11): existing pins are kept, new requirements resolved;
# `make lock ARGS=--upgrade` re-resolves everything, `ARGS='-P numpy'` one package.
COMPILE := $(VENV)/bin/pip-compile -q --extra test --extra dev --allow-unsafe --strip-extras --no-emit-find-links \
	--no-emit-trusted-host
lock:
	test -x $(VENV)/bin/pip-compile || $(MAKE) install
	CUSTOM_COMPILE_COMMAND="make lock" $(COMPILE) --no-emit-index-url $(ARGS) -o requirements/lock-cuda.txt pyproject.toml

# The same pins with PyTorch's CPU-only torch/torchvision (no nvidia-* wheels); needs download.pytorch.org.
# Install with `make install LOCK=requirements/lock-cpu.txt`.
lock-cpu:
	test -x $(VENV)/bin/pip-compile || $(MAKE) install
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock-cpu" $(COMPILE) --emit-index-url \
	  --extra-index-url https://download.pytorch.org/whl/cpu -c requirements/lock-cuda.txt $(ARGS) \
	  -o requirements/lock-cpu.txt pyproject.toml

install: $(VENV)/.installed

demo: install
	dvc repro

test: install  # two workers, whole files each (the longest start first: tests/conftest.py); not the `slow` ones
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=20

test-slow: install  # the `slow` checks: perf/gpu_check.py --device cpu --tiny, one-node Slurm, learning on SICE
	$(PY) -m pytest -n 2 --dist loadfile -m slow --durations=20

perf: install  # CPU figures into perf/results/ (GPU: python perf/bench_gpu_inference.py)
	for b in cpu_inference scaling training pipeline; do $(PY) perf/bench_$$b.py || exit 1; done

mutation: install  # mutation score of the modules that decide results (mutmut, their fast tests): perf/results/mutation.json
	$(PY) perf/bench_mutation.py $(ARGS)

gpu-check:  # GPU readiness check, 8 minutes on a GPU: perf/results/gpu_check.json ($OUT/ when set); ARGS='--device cpu --tiny' on a CPU
	perf/gpu_check.sh $(ARGS)

verify: install  # rerun the embedded pipeline in a scratch clone; compare with the committed dvc.lock and metrics
	$(VENV)/bin/bench verify
