"""course_utils.distillation: the teacher's ODE step, and a consistency loss zero only for a consistent student."""

import copy

import pytest
import torch

from course_utils.distillation import (consistency_distillation_loss, consistency_function, ddim_teacher_step,
                                       pseudo_huber)
from course_utils.models import build_denoiser
from course_utils.samplers import ConsistencySampler
from course_utils.samplers.consistency import solver_timesteps
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train

SCHEDULE = get_schedule("cosine")
AB = SCHEDULE.alphas_cumprod.float()


def point_mass_oracle(x_star: torch.Tensor):
    """The exact noise prediction when all the data is the one image ``x_star``: every ODE trajectory
    ends there, so the exact consistency function is ``x_star`` everywhere."""

    def model(x, t, **_):
        a = AB[t].view(-1, *([1] * (x.ndim - 1)))
        return (x - a.sqrt() * x_star) / (1 - a).sqrt()

    return model


def test_consistency_function_is_the_identity_at_zero_and_matches_the_sampler():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 4, 4, generator=g)
    net = lambda x, t: torch.tanh(x) * 0.3 + 0.001 * t.view(-1, 1, 1, 1)  # noqa: E731
    torch.testing.assert_close(consistency_function(net, x, torch.zeros(4, dtype=torch.long), AB), x)
    sampler = ConsistencySampler(SCHEDULE, min_alpha_bar=0.005)
    for t in (19, 499, 999):
        tt = torch.full((4,), t)
        torch.testing.assert_close(consistency_function(net, x, tt, AB, min_alpha_bar=0.005),
                                   sampler.denoise(net(x, tt), t, x), atol=1e-5, rtol=1e-5)


def test_the_teacher_step_stays_on_the_exact_trajectory():
    # With the exact model of a point mass, DDIM keeps eps fixed: x_s = sqrt(a_s) x* + sqrt(1 - a_s) eps.
    g = torch.Generator().manual_seed(1)
    x_star, eps = torch.rand(1, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    t, s = torch.tensor([999, 519, 19]), torch.tensor([979, 499, 0])
    a_t, a_s = AB[t].view(-1, 1, 1, 1), AB[s].view(-1, 1, 1, 1)
    x_t = a_t.sqrt() * x_star + (1 - a_t).sqrt() * eps
    x_s = ddim_teacher_step(point_mass_oracle(x_star), x_t, t, s, AB)
    torch.testing.assert_close(x_s, a_s.sqrt() * x_star + (1 - a_s).sqrt() * eps, atol=2e-4, rtol=1e-4)


def test_the_loss_is_zero_for_an_exactly_consistent_student_and_not_otherwise():
    g = torch.Generator().manual_seed(2)
    x_star = torch.rand(1, 1, 4, 4, generator=g) * 1.6 - 0.8
    exact = point_mass_oracle(x_star)
    data = x_star.expand(16, -1, -1, -1)
    zero = consistency_distillation_loss(exact, exact, exact, data, AB, torch.Generator().manual_seed(0),
                                         min_alpha_bar=0.0)
    assert zero.item() < 1e-3  # pseudo-Huber of float32 rounding at t = 999 (1 / sqrt(a) = 2e4)
    wrong = lambda x, t, **_: 0.9 * exact(x, t)  # noqa: E731
    bad = consistency_distillation_loss(wrong, exact, exact, data, AB, torch.Generator().manual_seed(0),
                                        min_alpha_bar=0.0)
    assert bad.item() > 100 * max(zero.item(), 1e-6)


def test_pseudo_huber_is_l2_like_for_large_and_l1_like_for_small_errors():
    a = torch.zeros(1)
    assert pseudo_huber(a, torch.tensor([1e-3]), c=1e-2).item() == pytest.approx(0.5 * 1e-6 / 1e-2, rel=1e-2)
    assert pseudo_huber(a, torch.tensor([10.0]), c=1e-3).item() == pytest.approx(10.0 - 1e-3, rel=1e-6)


def test_distillation_trains_only_the_student_and_moves_the_target():
    torch.manual_seed(0)
    net = build_denoiser("digits-tiny")
    teacher = copy.deepcopy(net)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    images = torch.rand(32, 1, 16, 16) * 2 - 1
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=1, ema_decay=0.5, objective="consistency",
                      log_every=1)
    result = train(net, images, SCHEDULE, cfg, device="cpu", progress=False, teacher=teacher)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the teacher is frozen
    moved = [not torch.equal(a, b) for a, b in zip(result.ema_model.parameters(), teacher.parameters())]
    assert any(moved) and len(result.losses) == 3


def test_misuse_is_refused():
    net = build_denoiser("digits-tiny")
    images = torch.zeros(4, 1, 16, 16)
    with pytest.raises(ValueError, match="needs a teacher"):
        train(net, images, SCHEDULE, TrainConfig(steps=1, batch_size=2, objective="consistency"), device="cpu",
              progress=False)
    with pytest.raises(ValueError, match="needs a teacher"):
        train(net, images, SCHEDULE, TrainConfig(steps=1, batch_size=2), device="cpu", progress=False, teacher=net)
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="consistancy")
    s = ConsistencySampler(SCHEDULE)
    with pytest.raises(ValueError, match="at most original_inference_steps = 50"):
        s.set_timesteps(51)
    with pytest.raises(ValueError, match="min_alpha_bar must lie in"):
        ConsistencySampler(SCHEDULE, min_alpha_bar=1.0)


def test_the_loss_draws_the_student_timesteps_on_the_solver_grid_and_the_teacher_one_step_below():
    """The grid is built on the data's device (no host copy, so a CUDA graph can record the loss);
    it must still be ``solver_timesteps``: student at t_{n+1}, target at t_n = t_{n+1} - k (or 0)."""
    seen = {"student": [], "target": []}

    def recorder(name):
        def model(x, t, **_):
            seen[name].append(t.clone())
            return torch.zeros_like(x)
        return model

    data = torch.zeros(256, 1, 4, 4)
    consistency_distillation_loss(recorder("student"), recorder("target"), lambda x, t, **_: torch.zeros_like(x),
                                  data, AB, torch.Generator().manual_seed(0), original_inference_steps=20)
    grid = set(solver_timesteps(1000, 20).tolist())
    t, s = seen["student"][0], seen["target"][0]
    assert set(t.tolist()) <= grid and len(set(t.tolist())) > 10
    assert torch.equal(s, (t - 50).clamp_min(0))
