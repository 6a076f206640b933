"""Shared by the checker tests: lenient checks by default, the learner's stub, and answering a question widget."""

import pytest


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    """Checkers report, not raise, unless a test sets COURSE_STRICT_CHECKS itself (`make test` sets it)."""
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)


def _stub(*args, **kwargs):
    raise NotImplementedError("Replace this line with your code, then rerun the cell.")


@pytest.fixture
def stub():
    """The function a learner's notebook ships with: any arguments, it raises NotImplementedError."""
    return _stub


def _answer(box, value):
    box.field.value = value
    box.check()
    return box.result


@pytest.fixture
def answer():
    """``answer(box, value)``: pick or type ``value`` in a question widget, check it, return the result."""
    return _answer


def _each_option(box, right, wrongs):
    """The widget starts unanswered, takes ``right`` as correct, and gives each of ``wrongs`` its own hint."""
    assert box.result.status == "not attempted"
    assert _answer(box, right).status == "correct"
    for wrong in wrongs:
        result = _answer(box, wrong)
        assert result.status == "incorrect" and "think again" not in result.message  # a hint of its own


@pytest.fixture
def each_option():
    """``each_option(box, right, wrongs)``: check a choice widget's right answer and every wrong one's hint."""
    return _each_option
