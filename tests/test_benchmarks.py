"""The benchmark scripts run and print well-formed rows (small settings; the figures are not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="agg", COURSE_DEVICE="cpu")
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=900, cwd=BENCH.parent)


def _rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| what")]


def test_training_throughput_prints_every_cell_and_the_ratios():
    run = _run("benchmarks/training_throughput.py", "--device", "cpu", "--steps", "5", "--batch", "8",
               "--settings", "fp32", "bf16")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _rows(run.stdout)
    cells = [r for r in rows if r[0].startswith("training, our UNet") or r[0].startswith("training, diffusers")]
    assert len(cells) == 4  # 2 networks x 2 settings
    assert all("1,112,801 parameters" in r[0] and "images/s" in r[1] and r[2] == "2 timed steps" for r in cells)
    assert any("our best" in r[0] and "diffusers' best" in r[0] and r[1].endswith("x") for r in rows)
    assert all(len(r) == 6 for r in rows)  # what | value | samples | device | torch | date


def test_rows_name_the_cpu_by_model_and_bf16_support():
    import report

    zen4 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    older = zen4.replace("25", "23").replace("17", "49").replace(" avx512f avx512_bf16", "")
    cores = f"{os.cpu_count()}-core"
    assert report.cpu_name(zen4) == f"{cores} AMD EPYC (family 25 model 17), AVX-512 bf16"
    assert report.cpu_name(older) == f"{cores} AMD EPYC (family 23 model 49), AVX2, no bf16"
    assert report.cpu_name("").startswith(cores)  # no /proc/cpuinfo (macOS, Windows): still a label
    assert report.device_name(torch.device("cpu")).startswith(cores)


def test_profile_counts_each_step_once():
    import training_throughput as tt

    cfg = tt.preset_config("digits-tiny")
    p = tt.profile_cell("ours", cfg, "fp32", tt.training_data(cfg), torch.device("cpu"), 8, steps=4)
    # Four steps after the untimed ones; on the CPU no GPU kernels, so nothing is busy.
    assert p["steps"] == 4 and p["kernels"] == 0 and p["busy_ms"] == 0 and p["wall_ms"] > 0
    run = _run("benchmarks/training_throughput.py", "--device", "cpu", "--profile")
    assert run.returncode != 0 and "needs --device cuda" in run.stderr


def test_training_throughput_refuses_bad_settings():
    run = _run("benchmarks/training_throughput.py", "--steps", "3")
    assert run.returncode != 0 and "--steps must be more than 3" in run.stderr
    run = _run("benchmarks/training_throughput.py", "--presets", "digits-huge", "--steps", "5")
    assert run.returncode != 0 and "digits-small" in run.stderr  # the error lists the accepted presets
    run = _run("benchmarks/training_throughput.py", "--device", "cpu", "--settings", "fp32", "bf16+graph")
    assert run.returncode != 0 and "['bf16+graph'] record CUDA graphs: they need --device cuda" in run.stderr


def test_full_mode_runs_a_notebook():
    run = _run("benchmarks/full_mode.py", "--mode", "fast", "--only", "02")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _rows(run.stdout)
    assert rows[0][0] == "02_forward_process, fast mode, whole notebook" and "slowest cell #" in rows[0][1]


def test_a_notebook_run_reports_progress_and_names_a_failure(tmp_path, capfd):
    import nbformat
    from notebook_runtime import run_one

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('trained: 3 steps')"),
                                         nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")])
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError, match="99_broken.ipynb failed in fast mode"):
        run_one(path, "fast")
    err = capfd.readouterr().err
    assert "cell 0 done at" in err and "trained: 3 steps" in err  # what a cut-off run still shows
    assert "broken on purpose" in err
    assert run_one(path, "fast", stop_after=r"print\(")["metric_lines"] == ["trained: 3 steps"]  # stops before the error


def test_full_mode_reports_what_notebook_04_reached(monkeypatch, capsys):
    import full_mode

    printed = ["trained my digits: 4000 steps in 1.2 min (14000 images/s)",
               "digits-FID (DDIM-50, N = 898): 0.400   real-vs-real floor: 0.179   ratio 2.2x   (9 s)"]
    monkeypatch.setattr(full_mode, "run_one", lambda path, mode, stop_after="": {
        "wall_s": 95.0, "peak_mib": 2000.0, "slowest_cell_s": 70.0, "slowest_cell": 12, "metric_lines": printed})
    full_mode.main(["--mode", "fast", "--only", "04"])
    rows = _rows(capsys.readouterr().out)
    assert [r[1] for r in rows[1:3]] == printed
    assert "quality target" in rows[3][0] and rows[3][1] == "met: 2.2x in 95 s (whole notebook)"


def test_full_mode_to_target_stops_after_notebook_04s_score():
    run = _run("benchmarks/full_mode.py", "--mode", "fast", "--to-target")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _rows(run.stdout)
    assert rows[0][0] == "04_unet_training, fast mode, up to its digits-FID cell"
    printed = [r[1] for r in rows if r[0].endswith("printed")]
    assert any(p.startswith("digits-FID") for p in printed)
    assert not any("final loss" in p for p in printed)  # the comparison after the score did not run
    assert rows[-1][1].startswith(("met: ", "missed: ")) and rows[-1][1].endswith("(up to its digits-FID cell)")


def test_full_mode_needs_a_gpu_or_permission(monkeypatch):
    import full_mode

    monkeypatch.setattr(full_mode.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        full_mode.main(["--only", "04"])
    assert full_mode.fid_ratio(["digits-FID (DDIM-50, N = 898): 0.400   real-vs-real floor: 0.179   ratio 2.2x"]) == 2.2
    assert full_mode.fid_ratio(["no figure here"]) is None


def test_the_gpu_check_fetches_what_the_machine_lacks_and_parses():
    sys.path.insert(0, str(BENCH.parent / "tools"))
    import gpu_wheels

    wants = gpu_wheels.needed(("nbclient", "diffusers"))
    assert {"nbclient", "jupyter-client", "nbformat", "traitlets", "diffusers"} <= wants.keys()
    assert not wants.keys() & {"torch", "numpy", "packaging", "safetensors"}  # the machine has these
    assert all(v[0].isdigit() for v in wants.values())  # pinned to what is installed here
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")]).returncode == 0


def test_training_throughput_trains_the_digits_presets_on_the_digits():
    import training_throughput

    from course_utils.data import load_digits

    digits = training_throughput.training_data(training_throughput.preset_config("digits-small"))
    assert torch.equal(digits, load_digits()[0])
    other = training_throughput.training_data(training_throughput.preset_config("bench-32"), n=4)
    assert other.shape == (4, 3, 32, 32) and other.abs().max() <= 1


def test_full_mode_reports_a_failed_notebook_and_runs_the_next(monkeypatch, capsys):
    import full_mode

    def run_one(path, mode, stop_after=""):
        if path.name.startswith("05"):
            raise RuntimeError("05_guidance.ipynb failed in cell 7: CUDA error | out of memory")
        return {"wall_s": 30.0, "peak_mib": 900.0, "slowest_cell_s": 20.0, "slowest_cell": 3, "metric_lines": []}

    monkeypatch.setattr(full_mode, "run_one", run_one)
    with pytest.raises(SystemExit, match="failed: 05_guidance"):
        full_mode.main(["--mode", "fast", "--only", "05", "08"])
    rows = _rows(capsys.readouterr().out)
    assert rows[0][1] == "failed: 05_guidance.ipynb failed in cell 7: CUDA error / out of memory"
    assert rows[1][0] == "08_flow_matching, fast mode, whole notebook" and rows[1][1].startswith("30 s")
    with pytest.raises(SystemExit):  # in the order asked for
        full_mode.main(["--mode", "fast", "--only", "08", "05"])
    assert [r[0][:2] for r in _rows(capsys.readouterr().out)] == ["08", "05"]


def test_the_figures_are_drawn_from_the_stored_results(tmp_path):
    """Each --plot figure draws from what its benchmark stored: the committed records, into tmp_path."""
    import json

    import figures
    from course_utils.course import speed

    runs = {m: json.loads((BENCH / "results" / f"runtime_{m}.json").read_text()) for m in ("fast", "cpu")}
    assert all(r["notebooks"] and r["device"] and r["date"] for r in runs.values())
    sweep = {"device": "cpu", "torch": "2", "date": "today", "samples": "20 digits",
             "digits": {"w": [0.0, 3.0], "adherence": [0.1, 1.0], "diversity": [4.5, 1.3], "saturation": [0.0, 0.01],
                        "real_diversity": 1.77}}
    for path in (figures.speed_quality(speed.reference_table(), tmp_path / "a.png"),
                 figures.guidance(sweep, tmp_path / "b.png"), figures.runtimes(runs, tmp_path / "c.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_guidance_apg_compares_the_methods_on_the_same_noise_and_draws_the_stored_run(tmp_path):
    """benchmarks/guidance_apg.py at a tiny size: every method at every scale, one shared w = 1 point,
    well-formed rows; and its figure drawn from the committed record."""
    import json

    import figures
    import guidance_apg

    curves = guidance_apg.run(per_class=2, steps=2)
    assert list(curves) == list(guidance_apg.METHODS)
    assert all(c["w"] == list(guidance_apg.SCALES) and all(len(c[k]) == len(c["w"]) for k in guidance_apg.KEYS)
               for c in curves.values())
    assert len({c["fid"][0] for c in curves.values()}) == 1  # w = 1 is the conditional model for all four
    assert curves["CFG"]["white"][-1] != curves["APG"]["white"][-1]
    record = {"n": 20, "samples": "20 digits", "methods": curves, "real": guidance_apg.real_reference(20)}
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in guidance_apg.rows(record)]
    assert len(rows) == 1 + 4 * len(guidance_apg.SCALES) and all(len(r) == 6 for r in rows)
    stored = json.loads(guidance_apg.STORED.read_text())
    assert stored["wall_s"] > 0 and stored["real"]["fid"] > 0 and set(stored["methods"]) == set(guidance_apg.METHODS)
    path = figures.guidance_apg(stored, tmp_path / "apg.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_training_recipes_rows_and_figure_come_from_the_stored_runs(tmp_path):
    """benchmarks/training_recipes.py: every stored experiment has its arms, its rows and its panel."""
    import json

    import figures
    import training_recipes

    stored = json.loads(training_recipes.RESULTS.read_text())
    assert set(stored) == set(training_recipes.EXPERIMENTS)
    for name, entry in stored.items():
        assert [a["label"] for a in entry["arms"]] == list(training_recipes.EXPERIMENTS[name])
        rows = training_recipes.markdown(name, entry)
        assert rows and all(r.startswith("| ") and r.count("|") == 7 for r in rows)
    curve = stored["min-snr"]["arms"][0]["curve"]
    assert training_recipes.steps_to(curve, curve[-1]["fid"]) <= curve[-1]["step"]
    assert training_recipes.steps_to(curve, 0.0) is None
    path = figures.training_recipes(stored, tmp_path / "recipes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
