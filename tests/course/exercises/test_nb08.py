"""course_utils.course.exercises.nb08: the flow checkers (path, loss, Euler step, straightness), the build (training
step and Euler sampler) and the questions."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import flow_matching as fm
from course_utils.data import make_toy2d
from course_utils.metrics.distances import sliced_wasserstein, straightness
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
def test_questions(each_option):
    for make, options in ((nb08.one_step_question, nb08.ONE_STEP_OPTIONS),
                          (nb08.reflow_question, nb08.REFLOW_OPTIONS)):
        each_option(make(), options[0], options[1:])


def test_the_fixed_net_depends_on_the_timestep_scale():
    net = nb08._FixedVelocityNet()
    x = torch.randn(3, 2)
    assert not torch.allclose(net(x, torch.full((3,), 500.0)), net(x, torch.full((3,), 0.5)))


# --- The build: a flow from scratch ----------------------------------------------------------------------
# The builds below are written here, independently of the notebook. Outcome runs use 300 training steps
# (the solution reaches a sliced Wasserstein distance of about 0.11 there, as at the notebook's 500).

STEPS = 300


def make_step(draw=None, interp=None, target=None, timestep=None, zero_grad="before", given_t=True):
    """A flow-matching training step, right unless one of its parts is replaced by a slip."""

    def step(model, optimizer, x0, generator):
        sigma, eps = (draw or default_draw)(x0, generator)
        s = sigma.reshape(-1, 1).float()
        x = (interp or (lambda x0, e, s: (1 - s) * x0 + s * e))(x0, eps, s)
        t = (timestep or (lambda sigma: 1000 * sigma))(sigma)
        v = model(x, t) if given_t else model(x)
        loss = F.mse_loss(v, (target or (lambda x0, e: e - x0))(x0, eps))
        if zero_grad == "before":
            optimizer.zero_grad()
        loss.backward()
        if zero_grad == "between":
            optimizer.zero_grad()
        optimizer.step()
        return loss.detach()

    return step


def default_draw(x0, g):
    return torch.rand(len(x0), generator=g), torch.randn(x0.shape, generator=g)


def noise_first(x0, g):
    eps = torch.randn(x0.shape, generator=g)
    return torch.rand(len(x0), generator=g), eps


@torch.no_grad()
def euler(model, noise, steps, grid=None, sign=1.0):
    """Euler from sigma = 1 to 0 on ``grid`` (default the even one); ``sign=-1`` flips dt."""
    sigmas = grid if grid is not None else torch.linspace(1, 0, steps + 1)
    x = noise.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + sign * (s_next - s) * model(x, 1000 * float(s))
    return x


def check(step=None, sampler=euler):
    return nb08.check_flow_build(step or make_step(), sampler, steps=STEPS)


def test_flow_build_accepts_a_correct_build_and_prints_its_figures(stub):
    result = check()
    assert result.correct, result.message
    for words in ("sliced Wasserstein", "threshold 0.2", "the package's training", "the noise itself"):
        assert words in result.message
    assert check(stub, stub).status == "not attempted"
    assert check(make_step(), stub).status == "not attempted"


@pytest.mark.parametrize("step, words", [
    (make_step(target=lambda x0, e: x0 - e), "sign flipped"),
    (make_step(interp=lambda x0, e, s: s * x0 + (1 - s) * e), "wrong end"),
    (make_step(timestep=lambda sigma: 1000 * (1 - sigma)), "wrong end"),
    (make_step(timestep=lambda sigma: sigma), "sigma itself"),
    (make_step(draw=lambda x0, g: (torch.randint(0, 1000, (len(x0),), generator=g) / 1000,
                                   torch.randn(x0.shape, generator=g))), "whole numbers"),
    (make_step(draw=lambda x0, g: (torch.rand(len(x0)), torch.randn(x0.shape, generator=g))), "global"),
    (make_step(draw=noise_first), "Draw sigma first"),
    (make_step(given_t=False), "without its timestep"),
    (make_step(target=lambda x0, e: e), "DDPM"),
])
def test_flow_build_names_each_training_slip(step, words):
    result = check(step)
    assert result.status == "incorrect" and words in result.message, (words, result.message)
    assert "sliced Wasserstein" not in result.message  # caught by a unit stage, before any training


def test_flow_build_names_each_sampler_slip():
    def ascending(model, noise, steps):
        return euler(model, noise, steps, grid=torch.linspace(0, 1, steps + 1))

    def in_place(model, noise, steps):
        x = noise
        for k in range(steps):
            x -= model(x, 1000 * (1 - k / steps)) / steps
        return x

    def package_grid(model, noise, steps):
        return nb08.package_euler_sample(model, noise, steps)

    for sampler, words in ((ascending, "wrong way"), (lambda m, n, k: euler(m, n, k, sign=-1.0), "wrong sign"),
                           (in_place, "in place"), (package_grid, "even grid")):
        result = check(make_step(), sampler)
        assert result.status == "incorrect" and words in result.message, (words, result.message)


@pytest.mark.parametrize("step, words", [(make_step(zero_grad="between"), "never changed"),
                                         (make_step(zero_grad="never"), "earlier steps")])
def test_flow_build_fails_a_step_that_does_not_learn_at_the_outcome(step, words):
    result = check(step)
    assert result.status == "incorrect" and words in result.message, result.message
    assert "did not learn" in result.message and "the noise itself" in result.message  # the outcome stage


def test_package_step_passes_the_build_and_its_sampler_learns():
    assert check(nb08.package_flow_train_step).correct
    model = nb08.train_toy_flow(nb08.package_flow_train_step, make_toy2d("gaussian_mixture", 4000), STEPS)
    samples = nb08.package_euler_sample(model, torch.randn(2000, 2, generator=torch.Generator().manual_seed(2)), 20)
    assert sliced_wasserstein(samples, make_toy2d("gaussian_mixture", 2000, seed=1)) < nb08.BUILD_THRESHOLD


def test_flow_build_is_strict_in_strict_mode(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        check(make_step(target=lambda x0, e: x0 - e))
    assert check(stub, stub).status == "not attempted"
