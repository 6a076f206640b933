# The two commands a learner or CI needs: `make lab` and `make test`.
# Both create .venv when it is missing and (re)install only when pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed before the package so that pip keeps it: the CPU wheel where it lies on disk.
# On a GPU box or a laptop, override it: `make lab TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: lab test setup unit nbval notebooks clean-venv

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
	$(VENV)/bin/ruff check course_utils tests tools benchmarks solutions
	$(PY) -m pytest tests

# Every learner and solution notebook, top to bottom, in fast mode. COURSE_STRICT_CHECKS turns an
# exercise checker's "incorrect" into an error, so a wrong reference answer fails the run.
nbval: setup
	COURSE_MODE=fast COURSE_STRICT_CHECKS=1 MPLBACKEND=agg $(PY) -m pytest --nbval-lax notebooks solutions

test: unit nbval

notebooks: setup
	$(PY) tools/build_notebooks.py

clean-venv:
	rm -rf $(VENV)
