"""The project's own files agree with each other: pyproject, environment.yml, Makefile, CI, README."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_the_package_and_nothing_else():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    pip_entries = [d for d in deps if isinstance(d, dict)]
    conda_entries = [d for d in deps if isinstance(d, str)]
    assert pip_entries == [{"pip": ['-e ".[dev]"']}] or pip_entries == [{"pip": ["-e .[dev]"]}]
    assert sorted(re.split(r"[=<> ]", d)[0] for d in conda_entries) == ["pip", "python"]
    python = next(d for d in conda_entries if d.startswith("python"))
    wanted = tuple(int(p) for p in python.split("=")[1].split("."))
    minimum = tuple(int(p) for p in pyproject()["project"]["requires-python"].lstrip(">=").split("."))
    assert wanted >= minimum


def test_pyproject_lists_the_chosen_packages():
    proj = pyproject()["project"]
    names = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in proj["dependencies"]}
    assert {"torch", "diffusers", "matplotlib", "ipywidgets", "numpy", "safetensors", "scikit-learn"} <= names
    dev = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in proj["optional-dependencies"]["dev"]}
    assert {"jupyterlab", "nbval", "jupytext", "pytest", "hypothesis"} <= dev
    assert any(d.startswith("ipywidgets>=7.7") for d in proj["dependencies"])  # Colab ships 7.x


def test_ci_calls_make_test_and_readme_names_both_commands():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^lab:", makefile, re.M)


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for src in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py")):
        assert f"notebooks/{src.stem}.ipynb" in readme, src.stem
