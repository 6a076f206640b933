# The two commands a learner or CI needs: `make lab` and `make test`.
# Both create .venv when it is missing and (re)install only when pyproject.toml or the lock changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Exact versions of everything CI tested (docs/DEPENDENCIES.md); `make lock` refreshes it.
LOCK := requirements/cpu.lock
# Installed first, and the lock's own torch line skipped, so pip keeps it: by default the lock's
# version, which here resolves to the CPU wheel on disk (/opt/wheels, pip's find-links).
# On a GPU box or a laptop, override it: `make lab TORCH_SPEC=torch`.
TORCH_SPEC ?= $(shell sed -n 's/^torch==\([^+ ]*\).*/torch==\1/p' $(LOCK))
STAMP := $(VENV)/.installed

# ipywidgets 7.7, as Colab ships it, installed beside .venv (not into it) for `make widgets7`.
WIDGETS7 := .cache/ipywidgets7
# Every test command runs with no network: tools/offline puts it in a namespace with only loopback.
OFFLINE := tools/offline
# `make test` executes JOBS notebooks at once (nbval through pytest-xdist, the book through a process
# pool), and each kernel's torch gets its share of the CPUs: on 2 cores, 2 kernels of 1 thread each
# finish the series about 1.5x sooner than 1 kernel of 2 threads. The unit tests run the same way, a
# test file per worker (its module fixtures built once). `make test JOBS=1` runs everything in turn.
JOBS ?= 2
THREADS := $(shell n=$$(nproc 2>/dev/null || echo 2); t=$$((n / $(JOBS))); [ $$t -ge 1 ] && echo $$t || echo 1)

.PHONY: lab test setup unit nbval graded widgets7 book browser notebooks clean-venv lock canary canary-envs

$(PY):
	$(PYTHON) -m venv $(VENV)

# The package last and without dependencies: what it needs is all in the lock, at the tested versions.
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	grep -v '^torch==' $(LOCK) > $(VENV)/lock-without-torch.txt
	$(PY) -m pip install -q -r $(VENV)/lock-without-torch.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab notebooks

unit: setup
	$(VENV)/bin/ruff check course_utils tests tools benchmarks solutions conftest.py
	OMP_NUM_THREADS=$(THREADS) $(OFFLINE) $(PY) -m pytest -n $(JOBS) --dist loadfile -m "not browser and not series" tests

# Every learner and solution notebook, top to bottom, in fast mode. COURSE_STRICT_CHECKS turns an
# exercise checker's "incorrect" into an error, so a wrong reference answer fails the run.
# A worker takes a whole notebook at a time, the next in line when it is free. xdist would line them
# up by cell count, which put the longest (04) last; longest first (benchmark 1's fast-mode times in
# docs/BENCHMARKS.md) lets the workers finish together. Notebooks not named here run after these.
NBVAL_ORDER := 04 10 09 08 05 06 07 11 01 03 02
NBVAL_FILES := $(foreach n,$(NBVAL_ORDER),$(wildcard notebooks/$(n)_*.ipynb solutions/$(n)_*.ipynb))
NBVAL_FILES += $(filter-out $(NBVAL_FILES),$(sort $(wildcard notebooks/*.ipynb solutions/*.ipynb)))
nbval: setup
	COURSE_MODE=fast COURSE_STRICT_CHECKS=1 MPLBACKEND=agg OMP_NUM_THREADS=$(THREADS) $(OFFLINE) $(PY) -m pytest \
	  -n $(JOBS) --dist loadscope --no-loadscope-reorder --nbval-lax --nbval-cell-timeout=600 $(NBVAL_FILES)

# The teacher's grader over the whole series: every solution exercise correct, no learner one.
# One notebook pair per test, handed to whichever worker is free (longest first).
graded: setup
	OMP_NUM_THREADS=$(THREADS) $(OFFLINE) $(PY) -m pytest -n $(JOBS) --dist load -m series tests/test_grade_series.py

# The widget tests again, against ipywidgets 7.7 (Colab) instead of .venv's 8.x (JupyterLab 4).
$(WIDGETS7)/.installed: | $(STAMP)
	$(PY) -m pip install -q --no-deps --target $(WIDGETS7) "ipywidgets==7.7.5" "ipython_genutils==0.2.0"
	touch $@

widgets7: setup $(WIDGETS7)/.installed
	PYTHONPATH=$(WIDGETS7) COURSE_EXPECT_IPYWIDGETS=7.7 $(OFFLINE) $(PY) -m pytest -m widgets tests

# The series executed (fast mode unless COURSE_MODE says otherwise) and rendered to build/book/.
book: setup
	$(OFFLINE) $(PY) tools/build_book.py --jobs $(JOBS)

# JupyterLab in Chromium, and the rendered book. Skipped, with the reason, when Chromium is absent.
browser: setup book
	$(OFFLINE) $(PY) -m pytest -m browser tests

test: unit nbval graded widgets7 browser

notebooks: setup
	$(PY) tools/build_notebooks.py

clean-venv:
	rm -rf $(VENV)

# uv resolves the lock and builds the canary's venvs; pinned, so a refresh changes only what moved.
UV_VERSION := 0.13.9
UV := .cache/uv/bin/uv
$(UV):
	$(PYTHON) -m venv .cache/uv
	.cache/uv/bin/pip install -q "uv==$(UV_VERSION)"

# The lock, for Python 3.11 (environment.yml's) on x86-64 Linux (CI). torch comes from an override file, the
# CPU wheel in /opt/wheels: PyPI's Linux torch would pull the multi-GB nvidia-* and triton packages.
# Needs PyPI. Pins that still fit the bounds are kept; `make lock UPGRADE=1` takes the newest of all.
LOCK_ARGS := pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--find-links /opt/wheels --override requirements/torch-cpu.txt
lock: | $(UV)
	$(UV) pip compile -q $(LOCK_ARGS) $(if $(UPGRADE),--upgrade) -o $(LOCK) \
	  --custom-compile-command "make lock, which runs: uv pip compile $(LOCK_ARGS) -o $(LOCK)"

# Not part of `make test`: fresh venvs at the newest and at the lowest versions the bounds allow
# (uv's highest and lowest-direct resolutions), each running the unit tests and two short notebooks.
# Run it before raising a bound, monthly, and when a dependency releases a minor (docs/DEPENDENCIES.md).
# torch stays at the CPU wheel in both, the only CPU build within reach here: point CANARY_TORCH at
# another override file to try another torch. Both venvs run even when the first fails.
CANARY := .cache/canary
CANARY_TORCH ?= requirements/torch-cpu.txt
CANARY_NOTEBOOKS := $(wildcard notebooks/01_*.ipynb notebooks/03_*.ipynb)
canary-envs: | $(UV)
	for env in newest:highest lowest:lowest-direct; do venv=$(CANARY)/$${env%%:*}; \
	  rm -rf $$venv && $(UV) venv -q --seed --python $(PYTHON) $$venv && \
	  $(UV) pip install -q --python $$venv/bin/python --resolution $${env#*:} --find-links /opt/wheels \
	    --override $(CANARY_TORCH) -r pyproject.toml --extra dev && \
	  $(UV) pip install -q --python $$venv/bin/python --no-deps -e . && \
	  $(UV) pip freeze -q --python $$venv/bin/python > $$venv/versions.txt || exit 1; \
	done

canary: canary-envs
	failed=""; for env in newest lowest; do venv=$(CANARY)/$$env; echo "canary: $$env ($$venv/versions.txt)"; \
	  $$venv/bin/ruff check course_utils tests tools benchmarks solutions conftest.py || failed="$$failed $$env:ruff"; \
	  OMP_NUM_THREADS=$(THREADS) $(OFFLINE) $$venv/bin/python -m pytest -n $(JOBS) --dist loadfile \
	    -m "not browser and not series" tests || failed="$$failed $$env:unit"; \
	  COURSE_MODE=fast COURSE_STRICT_CHECKS=1 MPLBACKEND=agg OMP_NUM_THREADS=$(THREADS) $(OFFLINE) $$venv/bin/python \
	    -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-cell-timeout=600 $(CANARY_NOTEBOOKS) \
	    || failed="$$failed $$env:notebooks"; \
	done; \
	if [ -n "$$failed" ]; then echo "canary failed:$$failed"; exit 1; else echo "canary passed: newest and lowest"; fi
