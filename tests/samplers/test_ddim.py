"""course_utils.samplers.ddim: DDIM lands on the data with an exact denoiser and is deterministic at eta = 0."""

import pytest
import torch

from course_utils.oracle import GaussianMixtureOracle
from course_utils.samplers import DDIMSampler, sample_loop
from course_utils.schedules import get_schedule


def test_ddim_eta0_with_exact_single_point_oracle_lands_on_the_point():
    # Data = one point at (1, -1): the ideal denoiser always predicts x0 = (1, -1), so DDIM lands there.
    s = get_schedule("cosine")
    oracle = GaussianMixtureOracle([[1.0, -1.0]], 0.0, s)
    x = sample_loop(oracle, DDIMSampler(s, clip_sample=False), (16, 2), 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, torch.tensor([[1.0, -1.0]]).expand(16, 2), atol=1e-4, rtol=0)


def test_a_deterministic_step_keeps_the_noise_estimate_and_moves_along_eq_12():
    # eta = 0: x_t' = sqrt(a_t') x0 + sqrt(1 - a_t') eps with x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t).
    schedule = get_schedule("cosine")
    sampler = DDIMSampler(schedule, clip_sample=False)
    sampler.set_timesteps(10)  # leading spacing: 900, 800, ..., 0
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)
    a_t, a_prev = schedule.alphas_cumprod[900].item(), schedule.alphas_cumprod[800].item()
    x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    out = sampler.step(eps, 900, x_t)
    torch.testing.assert_close(out.pred_original_sample, x0)
    torch.testing.assert_close(out.prev_sample, a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps)


def test_eta_one_adds_the_ddpm_posterior_noise():
    # Eq. (16) at eta = 1: sigma^2 = (1 - a_t') / (1 - a_t) (1 - a_t / a_t'), DDPM's posterior variance.
    schedule = get_schedule("cosine")
    sampler = DDIMSampler(schedule, clip_sample=False)
    sampler.set_timesteps(10)
    a_t, a_prev = schedule.alphas_cumprod[900].item(), schedule.alphas_cumprod[800].item()
    var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    assert sampler.variance(900, 800) == pytest.approx(var, rel=1e-12)
    x_t, eps = torch.zeros(1, 4), torch.zeros(1, 4)  # x0 = 0 and eps = 0: only the added noise is left
    out = sampler.step(eps, 900, x_t, eta=1.0, generator=torch.Generator().manual_seed(3)).prev_sample
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, var**0.5 * z)
    assert sampler.alpha_bar(-1) == 1.0  # the clean end, after the last step (diffusers' set_alpha_to_one)
    assert DDIMSampler(schedule, set_alpha_to_one=False).alpha_bar(-1) == schedule.alphas_cumprod[0].item()
