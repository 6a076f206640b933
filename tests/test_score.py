"""course_utils.score and GaussianMixtureOracle's log_prob / score: the score against finite differences of the
exact log density, Tweedie against the exact posterior mean, DDIM as Euler's method on the probability-flow ODE,
an ODE with a known solution, and clear errors."""

import math

import pytest
import torch

from course_utils.data import gaussian_mixture_params
from course_utils.oracle import GaussianMixtureOracle
from course_utils.parameterization import x0_from_epsilon
from course_utils.samplers import DDIMSampler
from course_utils.schedules import get_schedule
from course_utils.score import (alpha_bar_from_sigma, epsilon_from_score, probability_flow_step, reverse_sde_step,
                                score_from_epsilon, sigma_from_alpha_bar, solve_probability_flow, solve_reverse_sde,
                                tweedie_x0)

TIMESTEPS = (0, 50, 300, 600, 900, 999)


@pytest.fixture(scope="module")
def cosine():
    return get_schedule("cosine")


@pytest.fixture(scope="module")
def oracle(cosine):
    return GaussianMixtureOracle(*gaussian_mixture_params(), cosine)


def _points(n=16, seed=0, scale=2.0):
    return scale * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- The oracle's density and score ---------------------------------------------------------------

@pytest.mark.parametrize("t", TIMESTEPS)
def test_oracle_score_is_the_gradient_of_its_log_density(oracle, t):
    # Central differences, h = 1e-5: truncation error ~ h^2 |d^3 log p| and rounding ~ 1e-16 / h, both < 1e-6 here
    # (the steepest density, at t = 0, has component variance 0.04: third derivatives of order 1 / 0.04^1.5 = 125).
    x, h = _points(), 1e-5
    numeric = torch.stack([(oracle.log_prob(x + h * e, t) - oracle.log_prob(x - h * e, t)) / (2 * h)
                           for e in torch.eye(2, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(oracle.score(x, t), numeric, atol=1e-6, rtol=1e-6)


def test_log_prob_of_one_gaussian_is_the_normal_density(cosine):
    # One component: x_t ~ N(sqrt(a) m, (a s^2 + 1 - a) I) exactly.
    m, s, t = torch.tensor([[0.5, -1.0]]), 0.7, 400
    a = cosine.alphas_cumprod[t].item()
    x = _points(5, seed=1)
    normal = torch.distributions.MultivariateNormal(a**0.5 * m.double()[0], (a * s**2 + 1 - a) * torch.eye(2).double())
    torch.testing.assert_close(GaussianMixtureOracle(m, s, cosine).log_prob(x, t), normal.log_prob(x))


def test_log_prob_integrates_to_one(oracle):
    # A Riemann sum on [-6, 6]^2 with spacing 0.02 (the noised blobs at t = 500 have std 0.73: the tails beyond 6
    # hold less than 1e-9 of the mass).
    grid = torch.linspace(-6, 6, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    density = oracle.log_prob(torch.stack([xx.flatten(), yy.flatten()], dim=1), 500).exp()
    assert density.sum().item() * 0.02**2 == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("t", TIMESTEPS)
def test_the_oracle_noise_is_minus_sqrt_one_minus_alpha_bar_times_the_score(oracle, cosine, t):
    x, a = _points(), cosine.alphas_cumprod[t].item()
    torch.testing.assert_close(score_from_epsilon(oracle(x, t), a), oracle.score(x, t), atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(epsilon_from_score(oracle.score(x, t), a), oracle(x, t), atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("t", TIMESTEPS)
def test_tweedie_with_the_exact_score_is_the_exact_posterior_mean(oracle, cosine, t):
    # Two independent routes: the score (responsibility-weighted -diff / var) through Tweedie, and the weighted
    # per-component Wiener filters of posterior_mean.
    x, a = _points(), cosine.alphas_cumprod[t].item()
    torch.testing.assert_close(tweedie_x0(x, oracle.score(x, t), a), oracle.posterior_mean(x, t),
                               atol=1e-8, rtol=1e-8)


def test_oracle_score_keeps_the_dtype_and_takes_a_batch_of_timesteps(oracle):
    x = _points(4).float()
    t = torch.tensor([0, 10, 500, 999])
    s = oracle.score(x, t)
    assert s.dtype == torch.float32 and s.shape == (4, 2)
    torch.testing.assert_close(s[2], oracle.score(x[2:3], 500)[0])
    assert oracle.log_prob(x, t).shape == (4,)


# --- Conversions and round trips -------------------------------------------------------------------

def test_round_trips():
    eps, a = _points(6, seed=2), torch.tensor([0.01, 0.2, 0.5, 0.7, 0.9, 0.999], dtype=torch.float64)
    torch.testing.assert_close(epsilon_from_score(score_from_epsilon(eps, a), a), eps)
    torch.testing.assert_close(alpha_bar_from_sigma(sigma_from_alpha_bar(a)), a)
    assert sigma_from_alpha_bar(1.0).item() == 0.0 and alpha_bar_from_sigma(0.0).item() == 1.0
    # sigma^2 is the inverse signal-to-noise ratio: (1 - a) / a.
    torch.testing.assert_close(sigma_from_alpha_bar(0.2) ** 2, torch.tensor(4.0, dtype=torch.float64))


def test_tweedie_is_x0_from_epsilon_and_the_identity_without_noise():
    x, s = _points(6, seed=3), _points(6, seed=4)
    for a in (0.05, 0.5, 0.95):
        torch.testing.assert_close(tweedie_x0(x, s, a), x0_from_epsilon(x, epsilon_from_score(s, a), a))
    torch.testing.assert_close(tweedie_x0(x, s, 1.0), x)  # a = 1: x_t is x0


def test_score_from_epsilon_worked_example():
    # a = 0.75: sqrt(1 - a) = 0.5, so s = -eps / 0.5 = -2 eps; Tweedie: (x + 0.25 s) / sqrt(0.75).
    eps, x = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(score_from_epsilon(eps, 0.75), torch.tensor([[-1.0, 2.0]]))
    torch.testing.assert_close(tweedie_x0(x, torch.tensor([[-1.0, 2.0]]), 0.75),
                               torch.tensor([[0.75, 2.5]]) / math.sqrt(0.75))


# --- DDIM is Euler's method on the probability-flow ODE -------------------------------------------

@pytest.mark.parametrize("n", [7, 50])
def test_a_ddim_step_is_one_euler_step_of_the_ode(oracle, cosine, n):
    ddim = DDIMSampler(cosine, clip_sample=False)
    ddim.set_timesteps(n)
    x = _points(8, seed=5, scale=1.0)
    for t in ddim.timesteps.tolist():
        t_prev = ddim.previous_timestep(t)
        a, a_prev = ddim.alpha_bar(t), ddim.alpha_bar(t_prev)  # 1 after the last step
        eps = oracle(x, t)
        stepped = ddim.step(eps, t, x).prev_sample
        euler = probability_flow_step(x, score_from_epsilon(eps, a), a, a_prev)
        torch.testing.assert_close(euler, stepped, atol=1e-10, rtol=1e-10)
        # ... and in DDIM's variables the step is y' = y + (sigma' - sigma) eps
        y, y_prev = x / a**0.5, stepped / a_prev**0.5
        torch.testing.assert_close(y_prev, y + (sigma_from_alpha_bar(a_prev) - sigma_from_alpha_bar(a)) * eps)
        x = stepped


def test_solve_probability_flow_is_the_ddim_loop(oracle, cosine):
    ddim = DDIMSampler(cosine, clip_sample=False)
    ddim.set_timesteps(20)
    x = x_T = _points(8, seed=6, scale=1.0)
    for t in ddim.timesteps:
        x = ddim.step(oracle(x, t), t, x).prev_sample
    path = solve_probability_flow(oracle.score, x_T, ddim.timesteps, cosine)
    assert path.shape == (21, 8, 2) and torch.equal(path[0], x_T)
    torch.testing.assert_close(path[-1], x, atol=1e-9, rtol=1e-9)


def _gaussian_flow(m, s, y, sigma, sigma_end):
    # Data N(m, s^2 I): y = x0 + sigma eps ~ N(m, (s^2 + sigma^2) I), so eps_hat = sigma (y - m) / (s^2 + sigma^2) and
    # dy/dsigma = eps_hat has the solution y(sigma') - m = (y - m) sqrt((s^2 + sigma'^2) / (s^2 + sigma^2)).
    return m + (y - m) * math.sqrt((s**2 + sigma_end**2) / (s**2 + sigma**2))


def test_the_ode_of_gaussian_data_has_a_known_solution_heun_is_second_order_euler_first(cosine):
    m, s = torch.tensor([[1.0, -0.5]]), 0.5
    oracle = GaussianMixtureOracle(m, s, cosine)
    x = _points(8, seed=7, scale=1.0)
    t0 = 900
    a0 = cosine.alphas_cumprod[t0].item()
    exact = _gaussian_flow(m.double(), s, x / a0**0.5, sigma_from_alpha_bar(a0).item(), 0.0)  # at sigma = 0, x = y
    errors = {}
    for solver in ("euler", "heun"):
        for stride in (4, 2):
            end = solve_probability_flow(oracle.score, x, range(t0, -1, -stride), cosine, solver=solver)[-1]
            errors[solver, stride] = (end - exact).abs().max().item()
    assert errors["euler", 4] / errors["euler", 2] == pytest.approx(2, rel=0.25)  # halve h: error / 2
    assert errors["heun", 2] < errors["euler", 2] / 20
    assert errors["heun", 2] < 1e-3


def test_the_reverse_sde_carries_the_noised_gaussian_to_the_data(cosine):
    # Start from the exact marginal at t = 900, N(sqrt(a) m, (a s^2 + 1 - a) I), 10,000 points; the end should be
    # N(m, s^2 I): the mean within 0.03 (6 standard errors, s / sqrt(10000) = 0.005, leaving room for the
    # discretisation), the std within 0.02 (4 standard errors, s / sqrt(2 * 10000) = 0.0035, and the same room).
    m, s, t0, n = torch.tensor([[1.0, -0.5]], dtype=torch.float64), 0.5, 900, 10_000
    oracle = GaussianMixtureOracle(m, s, cosine)
    a = cosine.alphas_cumprod[t0].item()
    g = torch.Generator().manual_seed(8)
    x = a**0.5 * m + (a * s**2 + 1 - a) ** 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    path = solve_reverse_sde(oracle.score, x, range(t0, -1, -1), cosine, generator=g)
    assert path.shape == (t0 + 2, n, 2)
    end = path[-1]
    torch.testing.assert_close(end.mean(0), m[0], atol=0.03, rtol=0)
    torch.testing.assert_close(end.std(0), torch.full((2,), s, dtype=torch.float64), atol=0.02, rtol=0)


def test_the_sde_drift_is_twice_the_ode_s_in_the_small_step_limit():
    # In y: the ODE moves (sigma' - sigma) eps, the SDE's drift -(sigma^2 - sigma'^2) / sigma eps; their ratio is
    # (sigma + sigma') / sigma, which tends to 2 as sigma' -> sigma.
    x, s = _points(4, seed=9), _points(4, seed=10)
    a, a_next = 0.3, 0.4
    sigma, sigma_next = sigma_from_alpha_bar(a).item(), sigma_from_alpha_bar(a_next).item()
    y = x / a**0.5
    ode = probability_flow_step(x, s, a, a_next) / a_next**0.5 - y
    sde = reverse_sde_step(x, s, a, a_next, torch.zeros_like(x)) / a_next**0.5 - y
    torch.testing.assert_close(sde, ode * (sigma + sigma_next) / sigma)


def test_the_sde_follows_its_generator(oracle, cosine):
    x = _points(4, seed=11, scale=1.0)

    def run(seed):
        return solve_reverse_sde(oracle.score, x, range(100, -1, -10), cosine, torch.Generator().manual_seed(seed))

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


# --- Clear errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: score_from_epsilon(torch.ones(2, 2), 1.0), ValueError, r"alpha_bar_t must lie in \(0, 1\)"),
    (lambda: epsilon_from_score(torch.ones(2, 2), 0.0), ValueError, r"alpha_bar_t must lie in \(0, 1\)"),
    (lambda: tweedie_x0(torch.ones(2, 2), torch.ones(3, 2), 0.5), ValueError, "Shapes must match"),
    (lambda: tweedie_x0(torch.ones(2, 2), torch.ones(2, 2), 1.5), ValueError, r"\(0, 1\]"),
    (lambda: tweedie_x0(torch.ones(2, 2), torch.ones(2, 2), [0.5] * 3), ValueError, "shape \\(B,\\)"),
    (lambda: score_from_epsilon("noise", 0.5), TypeError, "eps must be"),
    (lambda: sigma_from_alpha_bar(0.0), ValueError, r"alpha_bar must lie in \(0, 1\]"),
    (lambda: alpha_bar_from_sigma(-1.0), ValueError, "sigma must be finite and >= 0"),
    (lambda: sigma_from_alpha_bar("0.5"), TypeError, "alpha_bar must be a number"),
    (lambda: reverse_sde_step(torch.ones(2, 2), torch.ones(2, 2), 0.5, 0.4, torch.ones(2, 2)), ValueError,
     "towards the data"),
    (lambda: reverse_sde_step(torch.ones(2, 2), torch.ones(2, 2), 0.5, 0.6, torch.ones(2, 3)), ValueError,
     "Shapes must match"),
    (lambda: probability_flow_step(torch.ones(2, 2), torch.ones(2, 2), 1.0, 1.0), ValueError,
     r"alpha_bar_t must lie in \(0, 1\)"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(timesteps=[0, 10]), ValueError, "decreasing"),
    (dict(timesteps=[]), ValueError, "non-empty"),
    (dict(timesteps=[1000, 0]), ValueError, r"\[0, 999\]"),
    (dict(timesteps=[10.0, 0.0]), TypeError, "integer timesteps"),
    (dict(solver="rk4"), ValueError, "Accepted: 'euler', 'heun'"),
    (dict(schedule="cosine"), TypeError, "NoiseSchedule"),
])
def test_solver_bad_input(oracle, cosine, kwargs, error, match):
    args = dict(score_fn=oracle.score, x_start=torch.zeros(2, 2), timesteps=[10, 0], schedule=cosine) | kwargs
    with pytest.raises(error, match=match):
        solve_probability_flow(**args)


def test_sde_refuses_a_seed_for_a_generator(oracle, cosine):
    with pytest.raises(TypeError, match="torch.Generator"):
        solve_reverse_sde(oracle.score, torch.zeros(2, 2), [10, 0], cosine, generator=0)


def test_oracle_log_prob_and_score_name_the_expected_shape(oracle):
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        oracle.log_prob(torch.zeros(3, 5), 0)
    with pytest.raises(ValueError, match="out of range"):
        oracle.score(torch.zeros(3, 2), 1000)
