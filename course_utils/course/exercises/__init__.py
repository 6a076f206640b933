"""Automatic checkers for the notebooks' exercises.

Every checker returns a ``CheckResult`` whose status is one of:

- ``"not attempted"``: the learner's function still raises ``NotImplementedError`` (the stub the
  learner's notebook ships with), or a question widget has no answer yet;
- ``"correct"``;
- ``"incorrect"``: with a hint that says what to look at.

A checker never raises for a wrong answer, so Run All reaches the end of a learner's notebook.
With ``COURSE_STRICT_CHECKS=1`` (set by ``make test``) an incorrect result raises instead, so a
wrong reference answer in a solution notebook fails CI. (Question widgets are exempt: nobody
answers them during a CI run, so they stay "not attempted" there.)

A build exercise (``BuildExercise``, graded by ``grade_build``) is a whole piece the notebook then
uses: ``use_build`` gives the later cells the learner's piece once it is correct, the package's until then.

One module per notebook: ``nb02``, ``nb03``, ...
"""

from .core import (NOT_ATTEMPTED, BuildExercise, CheckResult, ExerciseFailed, Miss, ask_choice, ask_number, check_cases,
                   check_values, grade_build, run_check, use_build)

__all__ = ["NOT_ATTEMPTED", "BuildExercise", "CheckResult", "ExerciseFailed", "Miss", "ask_choice", "ask_number",
           "check_cases", "check_values", "grade_build", "run_check", "use_build"]
