"""course_utils.course.exercises.core: the checker machinery: three states, strict mode, build exercises,
widget questions."""

import numpy as np
import pytest
import torch

from course_utils.course.exercises import (NOT_ATTEMPTED, BuildExercise, ExerciseFailed, Miss, ask_choice, ask_number,
                                           check_cases, check_values, grade_build, run_check, use_build)
from course_utils.course.exercises.core import call_learner, expect_close, expect_seeded


def test_three_states(stub):
    assert run_check("E", stub, 1.0).status == NOT_ATTEMPTED
    assert run_check("E", lambda: [1.0, 2.0], [1.0, 2.0]).correct
    wrong = run_check("E", lambda: [1.0, 2.5], [1.0, 2.0], hint="Check the sign.")
    assert wrong.status == "incorrect" and "0.5" in wrong.message and "Check the sign." in wrong.message


def test_wrong_shape_nan_and_exceptions_are_reported_not_raised():
    assert "shape" in run_check("E", lambda: [1.0], [1.0, 2.0]).message
    assert "NaN" in run_check("E", lambda: [float("nan")], [1.0]).message
    res = run_check("E", lambda: 1 / 0, 1.0)
    assert res.status == "incorrect" and "ZeroDivisionError" in res.message
    assert check_values("E", "abc", 1.0).status == "incorrect"


def test_rendering():
    res = run_check("Exercise 1", lambda: 3, 3)
    assert "Exercise 1" in res._repr_html_() and "correct" in str(res)


def test_strict_mode_raises_only_for_incorrect(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert run_check("E", stub, 1.0).status == NOT_ATTEMPTED
    assert run_check("E", lambda: 1.0, 1.0).correct
    with pytest.raises(ExerciseFailed, match="incorrect"):
        run_check("E", lambda: 2.0, 1.0)


@pytest.mark.widgets
def test_question_widgets():
    q = ask_choice("Q1", "Pick", ["a", "b", "c"], "b", explanation="Because.")
    assert q.result.status == NOT_ATTEMPTED
    q.check()
    assert q.result.status == NOT_ATTEMPTED  # nothing picked yet
    field = q.field
    field.value = "a"
    q.check()
    assert q.result.status == "incorrect"
    field.value = "b"
    q.check()
    assert q.result.correct and q.result.message == "Because."
    n = ask_number("Q2", "How many?", 673, atol=0.5)
    n.field.value = "673"
    n.check()
    assert n.result.correct
    with pytest.raises(ValueError, match="must be one of the options"):
        ask_choice("Q", "?", ["a"], "z")


@pytest.mark.widgets
def test_number_question_states_and_choice_hints():
    n = ask_number("Q", "How many?", 2.5, atol=0.1)
    field = n.field
    n.check()
    assert n.result.status == NOT_ATTEMPTED  # an untouched field is not an answer of 0
    field.value = "two"
    n.check()
    assert n.result.status == "incorrect" and "not a number" in n.result.message
    field.value = " 2.45 "
    n.check()
    assert n.result.correct
    q = ask_choice("Q", "Pick", ["a", "b"], "b", hints={"a": "a is the slow one"})
    q.field.value = "a"
    q.check()
    assert q.result.message == "a is the slow one"
    with pytest.raises(ValueError, match="do not exist"):
        ask_choice("Q", "Pick", ["a", "b"], "b", hints={"c": "?"})


def test_choice_options_fit_on_one_line():
    # JupyterLab draws radio-button labels at a fixed height: a label that wraps overlaps the next
    # option (seen in notebook 07's screenshot). Keep every option of every question short.
    import importlib
    import pkgutil

    import course_utils.course.exercises as ex

    for info in pkgutil.iter_modules(ex.__path__):
        module = importlib.import_module(f"course_utils.course.exercises.{info.name}")
        for name, value in vars(module).items():
            if name.endswith("OPTIONS"):
                long = [o for o in value if len(o) > 100]
                assert not long, f"{info.name}.{name}: options over 100 characters: {long}"


def test_a_learner_function_that_never_returns_is_stopped_with_a_message(monkeypatch):
    monkeypatch.setenv("COURSE_CHECK_TIMEOUT", "0.5")

    def forever():
        while True:
            pass

    result = run_check("Exercise X", forever, 1.0)
    assert result.status == "incorrect" and "did not return within 0.5 s" in result.message
    slow_case = check_cases("Exercise Y", lambda x: forever(), [((1.0,), 1.0, [])], hint="")
    assert slow_case.status == "incorrect" and "loop that never ends" in slow_case.message


def test_a_timeout_swallowed_inside_the_learner_code_still_stops_the_check(monkeypatch):
    # A bare `except` in the learner's loop (or a garbage-collector callback) can catch the timer's
    # exception; the check must still end as a timeout, not as a slow but "finished" answer.
    import time

    monkeypatch.setenv("COURSE_CHECK_TIMEOUT", "0.2")

    def swallows():
        try:
            while True:
                time.sleep(0.01)
        except Exception:
            return 1.0

    result = run_check("Exercise X", swallows, 1.0)
    assert result.status == "incorrect" and "did not return within 0.2 s" in result.message


def test_none_complex_nan_and_shape_each_get_their_own_hint():
    expected = np.ones(3)
    assert "forget `return`" in run_check("E", lambda: None, expected).message
    assert "complex numbers" in run_check("E", lambda: torch.ones(3, dtype=torch.complex64), expected).message
    assert "complex numbers" in run_check("E", lambda: np.ones(3) * 1j, expected).message
    assert "NaN or inf" in run_check("E", lambda: np.array([1.0, np.nan, 1.0]), expected).message
    assert "Expected shape (3,), got (2,)" in run_check("E", lambda: np.ones(2), expected).message
    assert run_check("E", lambda: np.ones(3), expected).correct  # and a right answer still passes


# --- build exercises ---------------------------------------------------------------------------

BUILD = BuildExercise("Build 0 (a doubler)", "write double(x).", ("twice x on three cases", "a random batch"))


def _grade(fn):
    def cases():
        expect_close(call_learner(fn, torch.arange(3.0)), torch.arange(3.0) * 2, "double([0, 1, 2])", "Return 2 * x.")
        return "3 cases right"

    def outcome():
        return f"mean {float(call_learner(fn, torch.ones(4)).mean()):.1f}"

    return grade_build(BUILD, cases, outcome)


def test_a_build_states_its_grading_and_its_stages_decide_in_order(stub, monkeypatch):
    assert "Graded on:" in str(BUILD) and "2. a random batch" in str(BUILD) and "<ol" in BUILD._repr_html_()
    right = _grade(lambda x: 2 * x)
    assert right.correct and right.message == "Well done. 3 cases right; mean 2.0."
    assert _grade(stub).status == NOT_ATTEMPTED
    assert "forget `return`" in _grade(lambda x: None).message
    assert "off by up to 2" in _grade(lambda x: x).message and "Return 2 * x." in _grade(lambda x: x).message
    assert "shape (3,), got (1, 3)" in _grade(lambda x: (2 * x)[None]).message
    assert "raised ZeroDivisionError" in _grade(lambda x: 1 / 0).message
    assert "NaN or inf" in _grade(lambda x: x * float("nan")).message
    monkeypatch.setenv("COURSE_CHECK_TIMEOUT", "0.3")

    def forever(x):
        while True:
            pass

    assert "did not return within 0.3 s" in _grade(forever).message
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        _grade(lambda x: x)
    assert _grade(stub).status == NOT_ATTEMPTED  # never raises for the stub


def test_use_build_takes_the_learners_piece_only_when_it_is_correct(capsys, stub):
    mine, package = object(), object()
    assert use_build(_grade(lambda x: 2 * x), mine, package, "doubler") is mine
    assert "Using your doubler" in capsys.readouterr().out
    assert use_build(_grade(stub), mine, package, "doubler") is package
    out = capsys.readouterr().out
    assert "Using the package's doubler" in out and "is not attempted" in out
    with pytest.raises(TypeError, match="CheckResult"):
        use_build(True, mine, package, "doubler")


def test_randomness_must_follow_the_generator_it_is_given():
    expect_seeded(lambda g: torch.randn(3, generator=g), "noise")  # passes
    with pytest.raises(Miss, match="global one"):
        expect_seeded(lambda g: torch.randn(3), "noise")
    with pytest.raises(Miss, match="ignored"):
        expect_seeded(lambda g: torch.randn(3, generator=torch.Generator().manual_seed(7)), "noise")
