# lbipam — `make test` runs everything CI runs; `make run` starts the operator locally.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint unit integration faults chaos soak bench run controlplane clean

$(BIN)/lbipam: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/lbipam

lint: install
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	# mypy cannot follow setuptools' editable finder; show it the package under its import name.
	mkdir -p build/typecheck && ln -sfn ../../operator build/typecheck/lbipam
	MYPYPATH=build/typecheck $(BIN)/mypy -p lbipam

controlplane: install
	$(BIN)/python -m tests.controlplane build

# The hang cases spend most of their 12 minutes waiting out their faults: they run beside the
# rest, in a pytest of their own with its own control plane, and `make test` fails if either
# run does. The 25 slowest tests are listed at the end: where CI time goes, in every CI log.
HANGS := tests/faults/test_hangs.py
test: lint controlplane
	mkdir -p build
	$(BIN)/pytest -q -ra -p no:cacheprovider $(HANGS) > build/hangs.log 2>&1 & hangs=$$!; \
	trap 'kill $$hangs 2>/dev/null' INT TERM; \
	$(BIN)/pytest -q -ra --durations=25 --ignore=$(HANGS); rest=$$?; \
	wait $$hangs; hung=$$?; \
	echo "=== $(HANGS), run beside the rest: ==="; cat build/hangs.log; \
	[ $$rest -eq 0 ] && [ $$hung -eq 0 ]

unit: install
	$(BIN)/pytest -q tests/unit

# The fault suite alone (`make test` runs it too, with everything else): while changing the
# operator's handling of failures, its cases without the rest of the suite.
faults: lint controlplane
	$(BIN)/pytest -q -m faults tests/faults

# A long randomized run: STEPS steps from SEED (random when empty; printed at the end), no new
# episode after MINUTES when given.
STEPS ?= 500
SEED ?=
MINUTES ?=
chaos: lint controlplane
	LBIPAM_CHAOS_STEPS=$(STEPS) LBIPAM_CHAOS_SEED=$(SEED) LBIPAM_CHAOS_MINUTES=$(MINUTES) \
		$(BIN)/pytest -q -m chaos tests/faults/test_chaos.py

# MINUTES of churn (default 60) around 5,000 standing Services (300 under 30 minutes; SERVICES=N
# to choose), both replicas' RSS and the leader's table sizes every 10 s; the numbers and a plot
# go to build/soak-<MINUTES>min.json and .png. `make test` runs a 3-minute version.
SERVICES ?=
soak: lint controlplane
	$(BIN)/pip install --quiet -e '.[test,soak]'
	LBIPAM_SOAK_MINUTES=$(or $(MINUTES),60) LBIPAM_SOAK_SERVICES=$(SERVICES) \
		$(BIN)/pytest -q -m soak tests/soak

# Not part of `make test`: prints numbers (bench/README.md). BENCH_ARGS=--large adds N=20,000.
bench: controlplane
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/ipam.py
	$(BIN)/python -m bench.cluster $(BENCH_ARGS)
	$(BIN)/python -m bench.splitbrain
	$(BIN)/python -m bench.guardrails
	$(BIN)/python -m bench.nodes
	$(BIN)/python -m bench.image

# With KUBECONFIG: the operator against that cluster. Without: a local control plane with the
# CRD and deploy/examples/ applied, and the operator in the foreground.
run: install
	@if [ -n "$$KUBECONFIG" ]; then $(BIN)/lbipam run; else $(BIN)/python -m tests.controlplane demo; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
