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
