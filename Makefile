# mmperc: the two commands of the README, plus helpers.
VENV ?= .venv
PY := $(VENV)/bin/python
# the scripts set up and test the same environment
export MMPERC_VENV := $(abspath $(VENV))

.PHONY: setup demo test bench clean

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	bash tools/run_tests.sh

bench: setup
	$(PY) benchmarks/bench_loss.py

clean:
	rm -rf work_dirs .pytest_cache
