"""course_utils.course.exercises.nb08: the flow checkers (path, loss, Euler step, straightness) and the questions."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import flow_matching as fm
from course_utils.metrics.distances import straightness
from course_utils.course.exercises import ExerciseFailed, nb08


def col(sigma, x):
    return sigma.view(-1, *[1] * (x.ndim - 1))


def test_interpolate_checker(stub):
    assert nb08.check_interpolate(fm.interpolate).correct
    assert nb08.check_interpolate(lambda x0, e, s: x0 + col(s, x0) * (e - x0)).correct  # the same line
    assert nb08.check_interpolate(stub).status == "not attempted"
    for fn, words in ((lambda x0, e, s: (1 - col(s, x0)) * e + col(s, x0) * x0, "reversed"),
                      (lambda x0, e, s: (1 - col(s, x0)).sqrt() * x0 + col(s, x0).sqrt() * e, "square roots"),
                      (lambda x0, e, s: x0 + col(s, x0) * e, "fade out"),
                      (lambda x0, e, s: (1 - s) * x0 + s * e, "sample's other axes")):
        result = nb08.check_interpolate(fn)
        assert result.status == "incorrect" and words in result.message, (words, result.message)


def loss(model, x0, eps, sigma):
    return F.mse_loss(model(fm.interpolate(x0, eps, sigma), sigma * 1000), eps - x0)


def test_flow_loss_checker(stub):
    assert nb08.check_flow_loss(loss).correct
    assert nb08.check_flow_loss(stub).status == "not attempted"

    def x(x0, e, s):
        return (1 - col(s, x0)) * x0 + col(s, x0) * e

    for fn, words in (
        (lambda m, x0, e, s: F.mse_loss(m(x(x0, e, s), s * 1000), x0 - e), "you used x0 - eps"),
        (lambda m, x0, e, s: F.mse_loss(m(x(x0, e, s), s), e - x0), "sigma * 1000"),
        (lambda m, x0, e, s: F.mse_loss(m(x(x0, e, s), (1 - s) * 1000), e - x0), "not (1 - sigma) * 1000"),
        (lambda m, x0, e, s: F.mse_loss(m(x(e, x0, s), s * 1000), e - x0), "reversed"),
        (lambda m, x0, e, s: F.mse_loss(m(x(x0, e, s), s * 1000), e), "DDPM's target"),
        (lambda m, x0, e, s: ((m(x(x0, e, s), s * 1000) - (e - x0)) ** 2).sum(), "not the sum"),
        (lambda m, x0, e, s: F.mse_loss(m((1 - s) * x0 + s * e, s * 1000), e - x0), "sample's other axes"),
    ):
        result = nb08.check_flow_loss(fn)
        assert result.status == "incorrect" and words in result.message, (words, result.message)


def test_euler_step_checker(stub):
    assert nb08.check_euler_step(lambda x, v, s, sn: x + (sn - s) * v).correct
    assert nb08.check_euler_step(lambda x, v, s, sn: x - (s - sn) * v).correct
    assert nb08.check_euler_step(stub).status == "not attempted"
    for fn, words in ((lambda x, v, s, sn: x + (s - sn) * v, "Wrong sign"),
                      (lambda x, v, s, sn: x - s * v, "all the way to sigma = 0"),
                      (lambda x, v, s, sn: x - sn * v, "change in sigma")):
        result = nb08.check_euler_step(fn)
        assert result.status == "incorrect" and words in result.message, (words, result.message)
    assert nb08.check_euler_step(lambda x, v, s, sn: x).status == "incorrect"


def test_straightness_checker(stub):
    assert nb08.check_straightness(straightness).correct
    assert nb08.check_straightness(stub).status == "not attempted"

    def parts(traj):
        flat = traj.flatten(2)
        return (flat[-1] - flat[0]).norm(dim=-1), (flat[1:] - flat[:-1]).norm(dim=-1), flat

    def inverted(traj):
        chord, seg, _ = parts(traj)
        return seg.sum(0) / chord

    def from_start(traj):
        chord, _, flat = parts(traj)
        return chord / (flat[1:] - flat[0]).norm(dim=-1).sum(0)

    def squares(traj):
        chord, seg, _ = parts(traj)
        return chord / seg.pow(2).sum(0)

    def batch_mean(traj):
        chord, seg, _ = parts(traj)
        return chord / seg.sum(0).mean()

    for fn, words in ((inverted, "Upside down"), (from_start, "sum of the steps"), (squares, "not their squares"),
                      (batch_mean, "its own length")):
        result = nb08.check_straightness(fn)
        assert result.status == "incorrect" and words in result.message, (fn.__name__, result.message)
    # Forgetting to flatten an image's axes gives the wrong shape, a plain "incorrect".
    assert nb08.check_straightness(lambda t: (t[-1] - t[0]).norm(dim=-1)).status == "incorrect"


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb08.check_euler_step(lambda x, v, s, sn: x + (s - sn) * v)
    assert nb08.check_interpolate(stub).status == "not attempted"  # a stub is never an error


def test_options_are_short():
    for option in nb08.ONE_STEP_OPTIONS + nb08.REFLOW_OPTIONS:
        assert len(option) <= 100, option


@pytest.mark.widgets
def test_questions():
    for make, options in ((nb08.one_step_question, nb08.ONE_STEP_OPTIONS),
                          (nb08.reflow_question, nb08.REFLOW_OPTIONS)):
        box = make()
        assert box.result.status == "not attempted"
        box.field.value = options[0]
        box.check()
        assert box.result.status == "correct"
        for wrong in options[1:]:
            box.field.value = wrong
            box.check()
            assert box.result.status == "incorrect" and "think again" not in box.result.message  # each has a hint


def test_the_fixed_net_depends_on_the_timestep_scale():
    net = nb08._FixedVelocityNet()
    x = torch.randn(3, 2)
    assert not torch.allclose(net(x, torch.full((3,), 500.0)), net(x, torch.full((3,), 0.5)))
