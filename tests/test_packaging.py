"""The project's own files agree with each other: pyproject, environment.yml, Makefile, CI, README."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


# The lock (requirements/cpu.lock, `make lock`) against pyproject's bounds; docs/DEPENDENCIES.md.
LOCK = ROOT / "requirements" / "cpu.lock"


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith((" ", "#", "-")):
            name, sep, version = line.partition("==")
            assert sep and " " not in version.strip(), f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def requirements(group: str = "dev") -> list[Requirement]:
    proj = pyproject()["project"]
    return [Requirement(d) for d in proj["dependencies"] + proj["optional-dependencies"][group]]


@pytest.mark.parametrize("req", requirements(), ids=lambda r: r.name)
def test_lock_pins_every_dependency_within_its_bounds(req):
    pins = locked()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is in pyproject.toml but not in the lock: run `make lock`"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"the lock has {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run `make lock`")


def test_fast_movers_have_ceilings_and_colab_keeps_its_torch_and_numpy():
    specs = {canonicalize_name(r.name): r.specifier for r in requirements()}
    for name in ("torch", "numpy", "diffusers", "transformers"):
        assert any(s.operator in ("<", "<=") for s in specs[name]), f"{name} has no upper bound"
    pins = locked()
    for name in ("diffusers", "transformers"):  # capped at the next minor after the version tested
        tested = pins[name]
        assert not specs[name].contains(f"{tested.major}.{tested.minor + 1}"), (name, specs[name])
    # Colab's setup cell pins Colab's own torch and numpy: a minor ceiling would make pip refuse to
    # install the course as soon as Colab moved past it, so these two are capped at a major only.
    for name in ("torch", "numpy"):
        tested = pins[name]
        assert specs[name].contains(f"{tested.major}.{tested.minor + 5}"), (name, specs[name])
    for group in ("online",):  # the extras name transformers with the same bounds
        online = {canonicalize_name(r.name): r.specifier for r in requirements(group)}
        assert online["transformers"] == specs["transformers"]


def test_lock_is_the_cpu_install():
    pins = locked()
    cuda = sorted(n for n in pins if n.startswith(("nvidia-", "triton", "cuda-")))
    assert cuda == [], f"the lock pulls CUDA packages: {cuda}"
    assert pins["torch"].local == "cpu"
    override = (ROOT / "requirements" / "torch-cpu.txt").read_text()
    assert f"torch=={pins['torch']}" in override.split(), "the lock's torch is not the override's: `make lock`"
    header = LOCK.read_text().split("\n", 3)[:3]
    assert any("make lock" in line and "uv pip compile" in line for line in header), header


def test_makefile_installs_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\): (.*)$", makefile, re.M)
    assert stamp and "$(LOCK)" in stamp[1] and "pyproject.toml" in stamp[1]
    assert re.search(r"^LOCK := requirements/cpu\.lock$", makefile, re.M)
    assert "pip install -q --no-deps -e ." in makefile
    for target in ("lock", "canary"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert not re.search(r"^test:.*canary", makefile, re.M)  # the canary is not part of `make test`
