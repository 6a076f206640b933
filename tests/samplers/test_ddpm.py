"""course_utils.samplers.ddpm: an ancestral step is the posterior mean plus the posterior's noise (Ho et al. 2020)."""

import pytest
import torch

from course_utils.reverse import ddpm_mean, posterior_variance
from course_utils.samplers import DDPMSampler
from course_utils.schedules import get_schedule

SCHEDULE = get_schedule("linear")


def test_a_step_with_the_true_noise_is_eq_11_plus_the_posterior_noise():
    # With all T steps, t' = t - 1 and the mean is Eq. (11), ddpm_mean; the added noise has the posterior
    # variance beta_tilde_t = (1 - a_{t-1}) / (1 - a_t) beta_t and is drawn from the caller's generator.
    sampler, t = DDPMSampler(SCHEDULE, clip_sample=False), 400
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    out = sampler.step(eps, t, x_t, generator=torch.Generator().manual_seed(1)).prev_sample
    a_t, a_prev, beta = (SCHEDULE.alphas_cumprod[t].item(), SCHEDULE.alphas_cumprod[t - 1].item(),
                         SCHEDULE.betas[t].item())
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    expected = ddpm_mean(x_t, eps, beta, a_t) + posterior_variance(beta, a_t, a_prev) ** 0.5 * z
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=1e-5)


def test_the_last_step_returns_the_clean_estimate_without_noise():
    # At t = 0, alpha_bar_{-1} = 1 and a_0 = 1 - beta_0, so the posterior mean's weights are
    # beta_0 / (1 - a_0) = 1 on x0 and 0 on x_t: the step lands on the predicted x0, and adds no noise.
    sampler = DDPMSampler(SCHEDULE, prediction_type="sample", clip_sample=False)
    x0, x_t = torch.randn(2, 3), torch.randn(2, 3)
    out = sampler.step(x0, 0, x_t, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.prev_sample, x0)
    assert torch.equal(out.pred_original_sample, x0)


@pytest.mark.parametrize("steps", [1000, 10])
def test_the_two_variances_of_a_jump(steps):
    # A jump t -> t' has the effective beta 1 - a_t / a_t'; "fixed_large" adds that, "fixed_small" the
    # posterior's (1 - a_t') / (1 - a_t) times it.
    small, large = DDPMSampler(SCHEDULE), DDPMSampler(SCHEDULE, variance_type="fixed_large")
    small.set_timesteps(steps)
    large.set_timesteps(steps)
    t = int(small.timesteps[1])
    t_prev = small.previous_timestep(t)
    a_t, a_prev = SCHEDULE.alphas_cumprod[t].item(), SCHEDULE.alphas_cumprod[t_prev].item()
    beta = 1 - a_t / a_prev
    assert large.variance(t) == pytest.approx(beta, rel=1e-12)
    assert small.variance(t) == pytest.approx((1 - a_prev) / (1 - a_t) * beta, rel=1e-12)
    assert small.variance(t) < large.variance(t)


def test_clip_sample_clamps_the_predicted_x0():
    x_t, x0 = torch.zeros(1, 4), torch.tensor([[-3.0, -0.5, 0.5, 3.0]])
    clipped = DDPMSampler(SCHEDULE, prediction_type="sample").step(x0, 500, x_t, torch.Generator().manual_seed(0))
    assert clipped.pred_original_sample.tolist() == [[-1.0, -0.5, 0.5, 1.0]]
