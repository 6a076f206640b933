"""course_utils.flow_matching: the straight path, its velocity, the loss, and a flow trained on toy data."""

import pytest
import torch

from course_utils.flow_matching import flow_matching_loss, interpolate, velocity_target, velocity_to_x0
from course_utils.samplers import FlowMatchEulerSampler, sample_loop


def test_path_ends_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    torch.testing.assert_close(interpolate(x0, eps, 0.0), x0)  # sigma = 0 is data
    torch.testing.assert_close(interpolate(x0, eps, 1.0), eps)  # sigma = 1 is noise
    sigma = torch.tensor([0.1, 0.5, 0.9])
    x = interpolate(x0, eps, sigma)
    # The velocity is the derivative along the path: a finite difference in sigma recovers it.
    h = 1e-3
    fd = (interpolate(x0, eps, sigma + h) - interpolate(x0, eps, sigma - h)) / (2 * h)
    torch.testing.assert_close(fd, velocity_target(x0, eps), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(velocity_to_x0(velocity_target(x0, eps), x, sigma), x0, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate(x0, eps, 1.5)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        interpolate(x0, eps, torch.tensor([0.1, 0.2]))


def test_loss_is_zero_for_the_exact_velocity_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 1, 4, 4, generator=g)
    # With every x0 equal to one point c, the exact velocity field is v(x, s) = (x - c) / s.
    c = x0[:1].expand_as(x0)

    def exact(x, timestep):
        s = (timestep / 1000).view(-1, 1, 1, 1)
        return (x - c) / s

    assert flow_matching_loss(exact, c, torch.Generator().manual_seed(2)).item() < 1e-8
    assert flow_matching_loss(lambda x, t: torch.zeros_like(x), c, torch.Generator().manual_seed(2)).item() > 0.5


def test_the_shared_loop_trains_a_flow_on_toy_data():
    # Eight Gaussians (std 0.2) on a circle of radius 2 (real points: median 0.24 from their mode).
    # After 1,500 steps Euler-16 samples sit at a median 0.31 from a mode (Euler-1: 1.89, near the
    # centre; one step is not enough without reflow or distillation); noise sits at about 1.
    from course_utils.data import make_toy2d
    from course_utils.data.toy2d import gaussian_mixture_params
    from course_utils.models.mlp import ToyMLP
    from course_utils.training import TrainConfig, train

    torch.manual_seed(0)
    data = make_toy2d("gaussian_mixture", 4000, seed=0).float()
    cfg = TrainConfig(steps=1500, batch_size=256, lr=2e-3, warmup_steps=20, ema_decay=0.99,
                      objective="flow_matching", log_every=100)
    result = train(ToyMLP(), data, None, cfg, device="cpu", progress=False, value_range=None)
    assert result.losses[-1][1] < 0.85 * result.losses[0][1]  # the loss has a high floor: v is random given x
    means, _ = gaussian_mixture_params()

    def mode_distance(x):  # (B,) distance to the nearest mode
        return torch.cdist(x.double(), means).min(1).values

    sampler = FlowMatchEulerSampler()
    samples = sample_loop(lambda x, t: result.ema_model(x, t), sampler, (1000, 2), 16,
                          generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    assert mode_distance(samples).median() < 0.4 < mode_distance(noise).median()
