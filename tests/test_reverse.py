"""course_utils.reverse: DDPM's reverse-step mean and the posterior variance."""

import pytest
import torch

from course_utils.forward import forward_step
from course_utils.reverse import ddpm_mean, posterior_variance
from course_utils.schedules import get_schedule


def test_seed_reverse_step_recovers_x0():
    # Seed, chapter 3: with alpha_bar_1 = 0.98 = 1 - beta_1 and the true noise, the mean is x0 exactly.
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    exact = ddpm_mean(x1, [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(exact, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-12, rtol=0)
    rounded = ddpm_mean([0.863, -0.396], [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(rounded, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-3, rtol=0)


def test_ddpm_mean_equals_posterior_mean_with_perfect_noise():
    # With the true eps, Eq. (11) equals the posterior mean of q(x_{t-1} | x_t, x0), Eq. (7).
    s, t = get_schedule("linear"), 400
    a_t, a_prev, beta = (s.alphas_cumprod[t].item(), s.alphas_cumprod[t - 1].item(), s.betas[t].item())
    x0, eps = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    xt = a_t**0.5 * x0 + (1 - a_t) ** 0.5 * eps
    posterior = a_prev**0.5 * beta / (1 - a_t) * x0 + (1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t) * xt
    torch.testing.assert_close(ddpm_mean(xt, eps, beta, a_t), posterior)
    assert posterior_variance(beta, a_t, a_prev).item() == pytest.approx((1 - a_prev) / (1 - a_t) * beta)


def test_batched_coefficients():
    x = torch.ones(2, 3)
    out = ddpm_mean(x, torch.zeros(2, 3), torch.tensor([0.02, 0.5]), torch.tensor([0.5, 0.9]))
    torch.testing.assert_close(out[:, 0], 1 / torch.tensor([0.98, 0.5]).sqrt())


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: ddpm_mean([1.0], [0.0], 0.02, 1.0), ValueError, r"alpha_bar_t must lie in \(0, 1\)"),
        (lambda: ddpm_mean([1.0], [0.0], float("nan"), 0.5), ValueError, "beta_t"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
