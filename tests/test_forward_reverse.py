"""Forward process, reverse mean and prediction conversions: the seed's numbers and the maths."""

import pytest
import torch

from course_utils.forward import forward_step, q_sample
from course_utils.parameterization import (
    PREDICTION_TYPES,
    clamp_x0_prediction,
    convert_prediction,
    epsilon_from_v,
    epsilon_from_x0,
    predict_x0_and_epsilon,
    v_from_epsilon_x0,
    x0_from_epsilon,
    x0_from_v,
)
from course_utils.reverse import ddpm_mean, posterior_variance
from course_utils.schedules import get_schedule


def test_seed_forward_step():
    # Seed, chapter 2: sqrt(0.98) * [0.8, -0.3] + sqrt(0.02) * [0.5, -0.7] = [0.792, -0.297] + [0.071, -0.099].
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    torch.testing.assert_close(x1, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3, rtol=0)


def test_seed_reverse_step_recovers_x0():
    # Seed, chapter 3: with alpha_bar_1 = 0.98 = 1 - beta_1 and the true noise, the mean is x0 exactly.
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    exact = ddpm_mean(x1, [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(exact, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-12, rtol=0)
    rounded = ddpm_mean([0.863, -0.396], [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(rounded, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-3, rtol=0)


def test_closed_form_matches_the_chain_exactly_with_one_step():
    s = get_schedule("linear")
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(q_sample(x0, 0, eps, s), forward_step(x0, s.betas[0].item(), eps))


def test_closed_form_matches_the_chain_in_distribution():
    # Running t+1 chain steps from x0 = 1 gives mean sqrt(alpha_bar_t), variance 1 - alpha_bar_t.
    s, t, n = get_schedule("linear", 200), 149, 40000
    g = torch.Generator().manual_seed(0)
    x = torch.ones(n, dtype=torch.float64)
    for k in range(t + 1):
        x = forward_step(x, s.betas[k].item(), torch.randn(n, generator=g, dtype=torch.float64))
    a = s.alphas_cumprod[t].item()
    assert x.mean().item() == pytest.approx(a**0.5, abs=0.02)
    assert x.var().item() == pytest.approx(1 - a, abs=0.02)


def test_batched_timesteps_and_variance_preservation():
    s = get_schedule("cosine")
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 20000, generator=g)
    t = torch.tensor([0, 500, 999])
    xt = q_sample(x0, t, torch.randn(3, 20000, generator=g), s)
    assert xt.shape == x0.shape
    torch.testing.assert_close(xt.var(dim=1), torch.ones(3), atol=0.05, rtol=0)


@pytest.mark.parametrize("a", [0.999, 0.5, 0.01])
def test_prediction_round_trips(a):
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    xt = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    torch.testing.assert_close(x0_from_epsilon(xt, eps, a), x0)
    torch.testing.assert_close(epsilon_from_x0(xt, x0, a), eps)
    v = v_from_epsilon_x0(eps, x0, a)
    torch.testing.assert_close(x0_from_v(xt, v, a), x0)
    torch.testing.assert_close(epsilon_from_v(xt, v, a), eps)
    outputs = {"epsilon": eps, "sample": x0, "v_prediction": v}
    for src in PREDICTION_TYPES:
        for dst in PREDICTION_TYPES:
            torch.testing.assert_close(convert_prediction(outputs[src], xt, a, src, dst), outputs[dst])


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
        (lambda: q_sample(torch.zeros(2, 3), 1000, torch.zeros(2, 3), get_schedule("linear")), ValueError, r"\[0, 999\]"),
        (lambda: q_sample(torch.zeros(2, 3), -1, torch.zeros(2, 3), get_schedule("linear")), ValueError, "0-indexed"),
        (lambda: q_sample(torch.zeros(2, 3), 0.5, torch.zeros(2, 3), get_schedule("linear")), TypeError, "int"),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([1.0]), torch.zeros(2, 3), get_schedule("linear")),
         TypeError, "integer"),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([1, 2, 3]), torch.zeros(2, 3), get_schedule("linear")),
         ValueError, r"shape \(B,\)"),
        (lambda: q_sample(torch.zeros(2, 3), 5, torch.zeros(2, 4), get_schedule("linear")), ValueError, "Shapes must match"),
        (lambda: q_sample(torch.zeros(2, 3), 5, torch.zeros(2, 3), "linear"), TypeError, "NoiseSchedule"),
        (lambda: forward_step([1.0, 2.0], 0.0, [0.0, 0.0]), ValueError, r"beta_t must lie in \(0, 1\]"),
        (lambda: forward_step([1.0, 2.0], 1.5, [0.0, 0.0]), ValueError, r"beta_t must lie"),
        (lambda: forward_step([1.0, 2.0], 0.1, [0.0]), ValueError, "Shapes must match"),
        (lambda: forward_step("abc", 0.1, [0.0]), TypeError, "number"),
        (lambda: ddpm_mean([1.0], [0.0], 0.02, 1.0), ValueError, r"alpha_bar_t must lie in \(0, 1\)"),
        (lambda: ddpm_mean([1.0], [0.0], float("nan"), 0.5), ValueError, "beta_t"),
        (lambda: epsilon_from_x0([1.0], [1.0], 1.0), ValueError, r"\(0, 1\)"),
        (lambda: convert_prediction([1.0], [1.0], 0.5, "noise", "sample"), ValueError, "'epsilon', 'sample', 'v_prediction'"),
        (lambda: convert_prediction([1.0], [1.0], 0.5, "epsilon", "x0"), ValueError, "Accepted"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_clamp_x0_prediction_clamps_x0_and_keeps_the_pair_consistent(prediction_type):
    g = torch.Generator().manual_seed(0)
    x_t, out, a = 2 * torch.randn(8, 1, 4, 4, generator=g), 3 * torch.randn(8, 1, 4, 4, generator=g), 0.3
    clamped = clamp_x0_prediction(out, x_t, a, prediction_type)
    x0, eps = predict_x0_and_epsilon(clamped, x_t, a, prediction_type)
    x0_raw, _ = predict_x0_and_epsilon(out, x_t, a, prediction_type)
    assert x0_raw.abs().max() > 1 and x0.abs().max() <= 1 + 1e-6
    torch.testing.assert_close(x0, x0_raw.clamp(-1, 1))
    torch.testing.assert_close(a**0.5 * x0 + (1 - a) ** 0.5 * eps, x_t)  # both describe the same x_t
    inside = x0_raw.abs() < 1  # where nothing was clamped, the prediction is unchanged
    torch.testing.assert_close(clamped[inside], out[inside], atol=1e-5, rtol=1e-5)
