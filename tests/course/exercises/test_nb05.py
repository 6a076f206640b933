"""course_utils.course.exercises.nb05: the guidance checkers (the CFG formula, label dropout) and the questions."""

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed, nb05


def reference_drop(labels, p, null_label, generator):
    drop = torch.rand(labels.shape, generator=generator) < p
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def test_cfg_checker(stub):
    assert nb05.check_cfg(lambda u, c, w: u + w * (c - u)).status == "correct"
    assert nb05.check_cfg(stub).status == "not attempted"
    wrong = nb05.check_cfg(lambda u, c, w: c + w * (c - u))
    assert wrong.status == "incorrect" and "UNconditional" in wrong.message
    assert "difference points" in nb05.check_cfg(lambda u, c, w: u + w * (u - c)).message


def test_label_dropout_checker(stub):
    assert nb05.check_label_dropout(reference_drop).status == "correct"
    assert nb05.check_label_dropout(stub).status == "not attempted"
    inverted = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l, 1 - p, n, g))
    assert "DROPPING" in inverted.message
    unseeded = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l, p, n, None))
    assert "generator" in unseeded.message
    scrambled = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l.flip(0), p, n, g))
    assert "stay as they were" in scrambled.message
    assert nb05.check_label_dropout(lambda l, p, n, g: l.float()).status == "incorrect"


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb05.check_cfg(lambda u, c, w: c)


@pytest.mark.widgets
def test_questions():
    for make, right in ((nb05.w_question, nb05.W_OPTIONS[0]), (nb05.cost_question, nb05.COST_OPTIONS[0])):
        box = make()
        box.field.value = right
        box.check()
        assert box.result.status == "correct"
        box.field.value = [o for o in box.field.options if o != right][0]
        box.check()
        assert box.result.status == "incorrect"


def test_label_dropout_that_is_not_random_is_caught():
    every_tenth = nb05.check_label_dropout(lambda y, p, null, g: torch.where(torch.arange(len(y)) % 10 == 0, null, y))
    assert every_tenth.status == "incorrect" and "not spread at random" in every_tenth.message

    def fixed_seed(y, p, null, g):
        drop = torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < p
        return torch.where(drop, torch.full_like(y, null), y)

    ignored = nb05.check_label_dropout(fixed_seed)
    assert ignored.status == "incorrect" and "ignored" in ignored.message
