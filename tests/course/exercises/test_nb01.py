"""course_utils.course.exercises.nb01: right answers pass, known slips get their hints, stubs are 'not attempted'."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.course.exercises import ExerciseFailed, nb01


# --- Exercise 1 ---------------------------------------------------------------------------------

def ascent(scorer, prompt, x, lr, sign=1.0, clamp=True, reduce="sum"):
    x = x.detach().requires_grad_(True)
    scores = scorer.score(x, prompt)
    (grad,) = torch.autograd.grad(scores.sum() if reduce == "sum" else scores.mean(), x)
    y = x + sign * lr * grad
    return y.clamp(-1, 1) if clamp else y


def test_ascent_step(stub):
    assert nb01.check_ascent_step(ascent).correct
    descent = nb01.check_ascent_step(lambda s, p, x, lr: ascent(s, p, x, lr, sign=-1.0))
    assert descent.status == "incorrect" and "descent" in descent.message
    unclamped = nb01.check_ascent_step(lambda s, p, x, lr: ascent(s, p, x, lr, clamp=False))
    assert unclamped.status == "incorrect" and "clamp" in unclamped.message
    averaged = nb01.check_ascent_step(lambda s, p, x, lr: ascent(s, p, x, lr, reduce="mean"))
    assert averaged.status == "incorrect" and "scores.sum()" in averaged.message
    assert nb01.check_ascent_step(stub).status == "not attempted"


def test_ascent_step_in_place_edit_does_not_leak():
    def in_place(scorer, prompt, x, lr):  # a learner who edits the checker's tensor: must not change the reference
        y = ascent(scorer, prompt, x, lr)
        x.zero_()
        return y
    assert nb01.check_ascent_step(in_place).correct


# --- Exercise 2 ---------------------------------------------------------------------------------

def sq(images, data):
    return ((images[:, None] - data[None]) ** 2).flatten(2)  # (B, N, D)


def test_nearest_distance(stub):
    assert nb01.check_nearest_distance(lambda a, d: sq(a, d).mean(2).min(1).values.sqrt()).correct
    cdist = lambda a, d: torch.cdist(a.flatten(1), d.flatten(1)).min(1).values / a[0].numel() ** 0.5  # noqa: E731
    assert nb01.check_nearest_distance(cdist).correct
    mse = nb01.check_nearest_distance(lambda a, d: sq(a, d).mean(2).min(1).values)
    assert mse.status == "incorrect" and "square root" in mse.message
    norm = nb01.check_nearest_distance(lambda a, d: sq(a, d).sum(2).min(1).values.sqrt())
    assert "Euclidean norm" in norm.message
    averaged = nb01.check_nearest_distance(lambda a, d: sq(a, d).mean(2).sqrt().mean(1))
    assert "NEAREST" in averaged.message
    assert nb01.check_nearest_distance(stub).status == "not attempted"


# --- Exercise 3 ---------------------------------------------------------------------------------

def test_lowres_image(stub):
    right = lambda w: F.interpolate(torch.tanh(w), size=(32, 32), mode="bilinear", align_corners=False)  # noqa: E731
    assert nb01.check_lowres_image(right).correct
    nearest = nb01.check_lowres_image(lambda w: F.interpolate(torch.tanh(w), scale_factor=4, mode="nearest"))
    assert nearest.status == "incorrect" and "bilinear" in nearest.message
    raw = nb01.check_lowres_image(lambda w: F.interpolate(w, size=(32, 32), mode="bilinear"))
    assert "tanh" in raw.message
    late = nb01.check_lowres_image(lambda w: torch.tanh(F.interpolate(w, size=(32, 32), mode="bilinear")))
    assert "Squash first" in late.message
    corners = nb01.check_lowres_image(
        lambda w: F.interpolate(torch.tanh(w), size=(32, 32), mode="bilinear", align_corners=True))
    assert "align_corners" in corners.message
    small = nb01.check_lowres_image(torch.tanh)
    assert small.status == "incorrect" and "shape" in small.message
    assert nb01.check_lowres_image(stub).status == "not attempted"


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb01.check_lowres_image(torch.tanh)
    with pytest.raises(ExerciseFailed):
        nb01.check_nearest_distance(lambda a, d: sq(a, d).mean(2).min(1).values)


# --- Questions ----------------------------------------------------------------------------------

@pytest.mark.widgets
def test_questions():
    box = nb01.prior_question()
    box.field.value = "More steps would turn the blobs into circles"
    box.check()
    assert box.result.status == "incorrect" and "ceiling" in box.result.message
    box.field.value = next(o for o in box.field.options if o.startswith("It removes some wrong images"))
    box.check()
    assert box.result.correct
    box = nb01.fooled_question()
    assert box.result.status == "not attempted"
    box.field.value = next(o for o in box.field.options if o.startswith("The optimizer found"))
    box.check()
    assert box.result.correct and "adversarial" in box.result.message
