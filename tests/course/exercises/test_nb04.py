"""course_utils.course.exercises.nb04: right answers pass, known slips get their hints, stubs are 'not attempted'."""

import copy
from functools import partial

import pytest
import torch

from course_utils.course.exercises.core import LearnerTimeout
from course_utils.course.exercises import ExerciseFailed, nb04
from course_utils.models import timestep_embedding


def right_bottleneck(size, base, mults):
    side = size // 2 ** (len(mults) - 1)
    return (base * mults[-1], side, side)


def test_bottleneck_shape(stub):
    # digits-small: 16 px, 3 levels -> two halvings -> 4x4, channels 32 * 2 = 64.
    assert nb04.reference_bottleneck_shape(16, 32, (1, 2, 2)) == (64, 4, 4)
    assert nb04.check_bottleneck_shape(right_bottleneck).correct
    wrong = nb04.check_bottleneck_shape(lambda s, b, m: (b * m[-1], s // 2 ** len(m), s // 2 ** len(m)))
    assert wrong.status == "incorrect" and "halving" in wrong.message
    summed = nb04.check_bottleneck_shape(lambda s, b, m: (b * sum(m), s // 2 ** (len(m) - 1), s // 2 ** (len(m) - 1)))
    assert "LAST" in summed.message
    assert nb04.check_bottleneck_shape(stub).status == "not attempted"


def test_timestep_embedding(stub):
    assert nb04.check_timestep_embedding(timestep_embedding).correct
    def sin_first(t, d):
        e = timestep_embedding(t, d)
        return torch.cat([e[:, d // 2:], e[:, : d // 2]], 1)
    res = nb04.check_timestep_embedding(sin_first)
    assert res.status == "incorrect" and "cosines come first" in res.message
    assert nb04.check_timestep_embedding(stub).status == "not attempted"


def test_sample_timesteps(stub):
    right = lambda b, T, g: torch.randint(0, T, (b,), generator=g)  # noqa: E731
    assert nb04.check_sample_timesteps(right).correct
    one_indexed = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(1, T + 1, (b,), generator=g))
    assert one_indexed.status == "incorrect" and "1-indexed" in one_indexed.message
    floats = nb04.check_sample_timesteps(lambda b, T, g: torch.rand(b, generator=g) * T)
    assert "integers" in floats.message
    skewed = nb04.check_sample_timesteps(
        lambda b, T, g: (torch.rand(b, generator=g) ** 2 * T).long().clamp(max=T - 1).index_put_(
            (torch.tensor([0, 1]),), torch.tensor([0, T - 1])))
    assert "uniform" in skewed.message
    narrow = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T - 1, (b,), generator=g))
    assert "must be possible" in narrow.message
    assert nb04.check_sample_timesteps(stub).status == "not attempted"


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb04.check_sample_timesteps(lambda b, T, g: torch.randint(1, T + 1, (b,), generator=g))
    with pytest.raises(ExerciseFailed):
        nb04.check_bottleneck_shape(lambda s, b, m: (1, 1, 1))


@pytest.mark.widgets
def test_skip_question():
    box = nb04.skip_question()
    field = box.field
    field.value = "The timestep information"
    box.check()
    assert "timestep embedding directly" in box.result.message
    field.value = "The fine spatial detail that the 4x4 bottleneck cannot hold"
    box.check()
    assert box.result.correct


def test_timestep_draws_that_ignore_the_generator_are_caught():
    """A fixed internal seed passes every statistical test; only another generator reveals it."""
    fixed = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T, (b,), generator=torch.Generator().manual_seed(0)))
    assert fixed.status == "incorrect" and "ignored" in fixed.message
    global_rng = nb04.check_sample_timesteps(lambda b, T, g: torch.randint(0, T, (b,)))
    assert global_rng.status == "incorrect" and "global" in global_rng.message


# --- The build: training step, EMA and loop ----------------------------------------------------
# A correct build written here, apart from the notebook's; each wrong build changes one thing.

def right_step(model, optimizer, x0, alphas_cumprod, generator, target="eps", zero_grad=True, step=True, low=0,
               noise_generator="given"):
    t = torch.randint(low, len(alphas_cumprod) + low, (x0.shape[0],), generator=generator, device=x0.device)
    g = generator if noise_generator == "given" else None
    eps = torch.randn(x0.shape, generator=g, device=x0.device)
    abar = alphas_cumprod[t][:, None, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    goal = {"eps": eps, "x0": x0, "x_t": x_t}[target]
    loss = ((model(x_t, t) - goal) ** 2).mean()
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    if step:
        optimizer.step()
    return loss.detach()


def right_ema(ema_model, model, decay, swap=False, from_grad=False):
    with torch.no_grad():
        for e, p in zip(ema_model.parameters(), model.parameters()):
            new = p.grad if from_grad else p
            e.lerp_(new, decay if swap else 1 - decay)


def make_loop(step=right_step, ema=right_ema, optimizer="adamw", ema_each_step=True):
    def loop(model, images, schedule, steps, batch_size, lr, ema_decay, generator):
        ema_model = copy.deepcopy(model)
        opt = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD)(model.parameters(), lr=lr)
        alphas = schedule.alphas_cumprod.float().to(images.device)
        losses = []
        for _ in range(steps):
            idx = torch.randint(0, len(images), (batch_size,), generator=generator, device=images.device)
            losses.append(float(step(model, opt, images[idx], alphas, generator)))
            if ema_each_step:
                ema(ema_model, model, ema_decay)
        if not ema_each_step:
            ema(ema_model, model, ema_decay)
        return ema_model, losses
    return loop


def check(step=right_step, ema=right_ema, loop=None, **kwargs):
    return nb04.check_training_loop(step, ema, loop or make_loop(step, ema), **kwargs)


def test_training_build_accepts_a_right_build(stub):
    loop = make_loop()
    res = nb04.check_training_loop(right_step, right_ema, loop, steps=60, compare=False)
    assert res.correct, res.message
    assert "digits-FID" in res.message and "bar" in res.message
    run = nb04.training_run(loop, 60)  # the checker's run, kept for the notebook's next cell
    assert run.steps == 60 and run.samples.shape == (nb04.SCORE_SAMPLES, 1, 16, 16)
    assert run.last_loss <= nb04.MAX_LAST_LOSS and run.fid <= nb04.MAX_FID and run.ema_moved > 0.5
    assert nb04.check_training_loop(stub, stub, stub).status == "not attempted"


def test_the_package_loop_runs_without_the_learner_time_limit(monkeypatch):
    # the notebook's fallback while the build is unsolved: on a busy machine it may take longer than the limit
    # a learner's code gets, and it is not the learner's code (a CI run under load once died of LearnerTimeout)
    monkeypatch.setenv("COURSE_CHECK_TIMEOUT", "0.001")
    run = nb04.training_run(nb04.package_train_loop, 3)
    assert run.steps == 3
    with pytest.raises(LearnerTimeout):
        nb04.training_run(make_loop(), 3)  # a learner's loop still runs under the limit


@pytest.mark.parametrize("step, ema, word", [
    (partial(right_step, zero_grad=False), right_ema, "zero_grad"),
    (partial(right_step, step=False), right_ema, "optimizer.step()"),
    (partial(right_step, noise_generator="global"), right_ema, "global"),
    (partial(right_step, low=1), right_ema, "0-indexed"),
    (partial(right_step, target="x0"), right_ema, "predicts the noise"),
    (partial(right_step, target="x_t"), right_ema, "noise that was added"),
    (right_step, partial(right_ema, swap=True), "swapped"),
    (right_step, partial(right_ema, from_grad=True), "gradients"),
])
def test_training_build_unit_slips(step, ema, word):
    res = check(step, ema)
    assert res.status == "incorrect" and word in res.message, res.message


def test_ema_outside_no_grad_is_caught():
    def tracked(ema_model, model, decay):
        for e, p in zip(ema_model.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    res = check(ema=tracked)
    assert res.status == "incorrect" and "no_grad" in res.message


def test_loop_without_ema_updates_is_caught():
    res = check(loop=make_loop(ema=lambda e, m, d: None))
    assert res.status == "incorrect" and "initial weights" in res.message


def test_sgd_fails_at_the_outcome():
    res = check(loop=make_loop(optimizer="sgd"), steps=40, compare=False)
    assert res.status == "incorrect" and "AdamW" in res.message and "barely learning" in res.message


def test_ema_once_after_the_loop_fails_at_the_outcome():
    """Unit cases cannot see it (decay 0 and 1 give the right EMA), the samples can."""
    res = check(loop=make_loop(ema_each_step=False), steps=60, compare=False)
    assert res.status == "incorrect" and "digits-FID" in res.message and "every training_step" in res.message


def test_training_build_raises_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed, match="swapped"):
        check(ema=partial(right_ema, swap=True))


def test_training_build_times_out_a_step_that_never_returns(monkeypatch):
    monkeypatch.setenv("COURSE_CHECK_TIMEOUT", "0.5")

    def endless(model, optimizer, x0, alphas_cumprod, generator):
        while True:
            pass
    res = check(step=endless)
    assert res.status == "incorrect" and "did not return" in res.message
