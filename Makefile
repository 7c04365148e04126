# make demo: set up if needed, then run the main job on the embedded default (no network, no GPU).
# make test: set up if needed, then run the whole test suite.
VENV := .venv
PY := $(VENV)/bin/python
# Tests and the demo talk over loopback only, on a domain of their own.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m spotvlm_ros.cli doctor
	$(PY) -m spotvlm_ros.cli demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache build install log

# make soak: SOAK_MINUTES (default 30) of `spotvlm run` on a looping bag with a fluctuating cloud.
SOAK_MINUTES ?= 30
.PHONY: soak
soak: setup
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) benchmarks/soak.py
