"""Colab: the badges, and the setup cell that installs course_utils there and nowhere else.

The setup cell is executed here as it is in the notebooks, once as-is (not Colab: it must do
nothing) and once with a stand-in ``google.colab`` module and a recording ``subprocess.run``.
The install it would run is then resolved by pip for real (offline, dry run) with Colab's torch
and numpy pinned the way the cell pins them, to show that pip would install course-utils alone.
"""

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_notebooks as bn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")) + sorted(ROOT.glob("solutions/[0-9][0-9]_*.ipynb"))
REAL_RUN = subprocess.run  # the tests below replace subprocess.run while the cell runs
TRACKED = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())


def cell_source(path: Path, index: int) -> str:
    return "".join(json.loads(path.read_text())["cells"][index]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_badge_opens_this_very_file_on_the_default_branch(path):
    rel = path.relative_to(ROOT).as_posix()
    url = f"https://colab.research.google.com/github/{bn.repository()}/blob/{bn.BRANCH}/{rel}"
    assert f"]({url})" in cell_source(path, 0)
    assert rel in TRACKED or not TRACKED, f"{rel} is not committed, so the badge would open nothing"


def test_repository_comes_from_pyproject_and_is_checked(tmp_path):
    assert bn.repository().count("/") == 1
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project.urls]\nRepository = "https://gitlab.com/x/y"\n')
    with pytest.raises(bn.AuthoringError, match="https://github.com/OWNER/NAME"):
        bn.repository(bad)


@pytest.fixture
def setup_code():
    code = cell_source(ROOT / "notebooks" / "02_forward_process.ipynb", 1)
    assert code == bn.setup_cell(bn.repository())  # every notebook carries the same cell
    for path in NOTEBOOKS:
        assert cell_source(path, 1) == code, path
    return code


def test_setup_cell_does_nothing_outside_colab(setup_code, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(setup_code, {})
    assert calls == [] and capsys.readouterr().out == ""


def run_in_fake_colab(setup_code, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append((cmd, k)))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    exec(setup_code, {})
    assert len(calls) == 1
    return calls[0]


def test_setup_cell_in_colab_installs_from_the_repo_and_pins_torch_and_numpy(setup_code, monkeypatch, tmp_path,
                                                                              capsys):
    cmd, kwargs = run_in_fake_colab(setup_code, monkeypatch, tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and kwargs.get("check") is True
    assert not {"-U", "--upgrade", "--force-reinstall", "--no-deps"} & set(cmd)
    assert cmd[-1] == f"course-utils @ git+https://github.com/{bn.repository()}@{bn.BRANCH}"
    constraints = Path(cmd[cmd.index("-c") + 1]).read_text().split()
    assert constraints == [f"torch=={torch.__version__}", f"numpy=={numpy.__version__}"]
    assert "No GPU attached" in capsys.readouterr().out  # this machine has no GPU


def test_setup_cell_in_colab_reports_the_gpu_runtime(setup_code, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    monkeypatch.delenv("COURSE_MODE", raising=False)
    run_in_fake_colab(setup_code, monkeypatch, tmp_path)
    assert "GPU runtime (Tesla T4): the notebooks run in full mode." in capsys.readouterr().out
    from course_utils import config

    assert config.get_mode() == "full"  # what the message promises: a GPU runtime means full mode


def test_pinned_install_resolves_to_course_utils_alone(setup_code, monkeypatch, tmp_path):
    """pip, offline, given the cell's constraints: nothing but course-utils would be installed."""
    cmd, _ = run_in_fake_colab(setup_code, monkeypatch, tmp_path)
    constraints = cmd[cmd.index("-c") + 1]
    report = tmp_path / "report.json"
    result = REAL_RUN(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation", "-q",
         "-c", constraints, "--report", str(report), f"course-utils @ {ROOT.as_uri()}"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    installed = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installed == ["course-utils"]


def test_readme_documents_a_pinned_install_for_teachers():
    readme = (ROOT / "README.md").read_text()
    assert "COURSE_REF" in readme
    assert f"git+https://github.com/{bn.repository()}@v" in readme
