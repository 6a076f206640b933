"""course_utils.course.stored: the benchmark runs notebooks show, found from the working directory upwards."""

import json

import pytest

from course_utils.course.stored import stored_run


def test_stored_runs_are_found_upwards_and_missing_ones_said(tmp_path, capsys):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "training_recipes.json").write_text(json.dumps({"min-snr": {"arms": []}}))
    deep = tmp_path / "notebooks" / "runs"
    deep.mkdir(parents=True)
    assert stored_run("training_recipes", start=deep) == {"min-snr": {"arms": []}}
    assert stored_run("guidance_apg", start=deep) is None and "ships with the course's repository" in capsys.readouterr().out
    with pytest.raises(ValueError, match="stored run"):
        stored_run("speed_table")


def test_the_repository_holds_every_stored_run_the_notebooks_read():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert set(stored_run("training_recipes", start=root)) == {"min-snr", "flow-times", "zero-snr"}
    assert "methods" in stored_run("guidance_apg", start=root)
