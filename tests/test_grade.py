"""course_utils.grade: a teacher's grader runs notebooks headless and reads every checker's verdict."""

import csv

import nbformat
import pytest

from course_utils import grade
from tests.helpers import ROOT

NB = "02_forward_process.ipynb"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The solution, the learner's version, and the solution with one answer made wrong, graded once."""
    folder = tmp_path_factory.mktemp("class")
    (folder / "solution.ipynb").write_text((ROOT / "solutions" / NB).read_text())
    (folder / "learner.ipynb").write_text((ROOT / "notebooks" / NB).read_text())
    nb = nbformat.read(ROOT / "solutions" / NB, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def first_step_below" in c.source)
    head = "def first_step_below(alphas_cumprod, threshold):"
    cell.source = cell.source.replace(head, head + "\n    return 0  # a wrong answer\n\n\ndef _unused(alphas_cumprod, threshold):", 1)
    nbformat.write(nb, folder / "one_wrong.ipynb")
    csv_path = folder / "grades.csv"
    assert grade.main([str(folder), "--csv", str(csv_path), "--timeout", "300"]) == 0
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: [r for r in rows if r["notebook"].endswith(name)] for name in
            ("solution.ipynb", "learner.ipynb", "one_wrong.ipynb")}


def test_the_solution_is_correct_everywhere(graded):
    rows = graded["solution.ipynb"]
    assert len(rows) >= 3 and {r["verdict"] for r in rows} == {"correct"}


def test_the_unsolved_learner_version_is_correct_nowhere(graded):
    rows = graded["learner.ipynb"]
    assert len(rows) == len(graded["solution.ipynb"])
    assert all(r["verdict"] == "not attempted" for r in rows)


def test_one_wrong_answer_is_the_one_exercise_not_correct(graded):
    wrong = [r for r in graded["one_wrong.ipynb"] if r["verdict"] != "correct"]
    assert len(wrong) == 1 and wrong[0]["verdict"] == "incorrect" and wrong[0]["hint"]
    assert set(graded["one_wrong.ipynb"][0]) == {"notebook", "exercise", "verdict", "hint"}


def test_a_notebook_that_raises_or_hangs_is_a_row_not_a_crash(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("1 / 0"), nbformat.v4.new_code_cell("import time\ntime.sleep(60)")]
    nbformat.write(nb, tmp_path / "broken.ipynb")
    rows = grade.grade(tmp_path / "broken.ipynb", timeout=3)
    assert [r.verdict for r in rows] == ["error", "error"]
    assert "ZeroDivisionError" in rows[0].hint and "ran past 3 s" in rows[1].hint
    (tmp_path / "junk.ipynb").write_text("not json")
    assert grade.grade(tmp_path / "junk.ipynb")[0].verdict == "error"
    with pytest.raises(FileNotFoundError, match="neither a notebook"):
        grade.notebooks([tmp_path / "missing.txt"])
