# kdlab — the two commands a newcomer needs are `make demo` and `make test` (see README.md).
# Each first sets up .venv (tools/bootstrap.sh: seconds when done before, ~15 min on a fresh machine).
PY := .venv/bin/python
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core; each test file runs in one process (--dist loadfile), so a
# module's shared fixtures (e.g. the smoke runs test_end_to_end trains once) are built once.
TEST_WORKERS ?= auto
# One intra-op thread per process: on a 2-core machine with other work running, torch's default thread
# pool oversubscribes the cores and a smoke training step was measured ~100x slower (10.4 s vs 0.1 s).
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test test-full-dry bench doctor mini-tables lab
setup:
	@bash tools/bootstrap.sh

demo: setup  ## the main job: teacher / baseline / PKD student on the embedded synthetic data
	$(PY) -m kdlab.cli demo

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not full_dry" $(PYTEST_ARGS)

test-full-dry: setup  ## every method's and detector family's full-scale config, 2 iterations + 1 evaluation at 1333x800
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load tests/test_full_dry_run.py $(PYTEST_ARGS)

bench: setup  ## every benchmark (one: .venv/bin/python -m benchmarks NAME)
	$(PY) -m benchmarks feature_losses
	$(PY) -m benchmarks train_step
	$(PY) -m benchmarks registry_runs
	$(PY) -m benchmarks mmcv_ops
	$(PY) -m benchmarks smoke_runs
	$(PY) -m benchmarks mini_width
	$(PY) -m benchmarks step_format

doctor: setup
	$(PY) -m kdlab.cli doctor

lab: setup  ## JupyterLab from the project's environment, on the notebooks (kernel "Python (kdlab)")
	.venv/bin/jupyter lab --notebook-dir=notebooks

# One table per seed paper at mini scale (README, "One table per paper"): `make mini-tables` runs the tables one
# after another, each with MINI_WORKERS runs training at once (one process each, cores / MINI_WORKERS threads);
# a run two tables share is trained once; an interrupted run resumes.
MINI_TABLES := pkd/abstract dcsf_kd/table2 dsamkd/abstract icd/readme dfmsd/table4
MINI_WORKERS ?= 2
mini-tables: $(addprefix mini/,$(MINI_TABLES))
mini/%: setup
	$(PY) -m kdlab.cli reproduce $(firstword $(subst /, ,$*)) --tables $(lastword $(subst /, ,$*)) --scale mini \
	  --workers $(MINI_WORKERS)
