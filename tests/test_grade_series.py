"""The teacher's grader on the whole series: every exercise of every solution notebook is graded
``correct``, and every exercise of every unsolved learner notebook is graded, none ``correct``.

Each notebook runs twice (solution and learner), so these run in their own step, ``make graded``
(part of ``make test``), one notebook pair per test so that the workers share them out.
"""

import pytest

from course_utils import grade
from tests.helpers import ROOT

pytestmark = pytest.mark.series

# Longest first, as in the Makefile's NBVAL_ORDER, so the workers finish together.
ORDER = ["04", "10", "09", "08", "05", "06", "07", "11", "01", "03", "02"]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"),
                   key=lambda p: ORDER.index(p.name[:2]) if p.name[:2] in ORDER else len(ORDER))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_all_correct_and_learner_none(solution):
    solved = grade.grade(solution, timeout=600)
    unsolved = grade.grade(ROOT / "notebooks" / solution.name, timeout=600)
    assert solved, f"{solution.name}: no checker printed a verdict"
    wrong = [(r.exercise, r.verdict, r.hint) for r in solved if r.verdict != "correct"]
    assert not wrong, f"solution {solution.name}: {wrong}"
    assert [r.exercise for r in unsolved] == [r.exercise for r in solved], "the two versions grade different exercises"
    assert all(r.verdict == "not attempted" for r in unsolved), \
        f"learner {solution.name}: {[(r.exercise, r.verdict, r.hint) for r in unsolved if r.verdict != 'not attempted']}"
