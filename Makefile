# The two commands a learner or CI needs: `make lab` and `make test`.
# Both create .venv when it is missing and (re)install only when pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed before the package so that pip keeps it: the CPU wheel where it lies on disk.
# On a GPU box or a laptop, override it: `make lab TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
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

.PHONY: lab test setup unit nbval graded widgets7 book browser notebooks clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
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
