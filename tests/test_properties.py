"""Properties that hold for any schedule, shape and timestep (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.forward import q_sample
from course_utils.parameterization import epsilon_from_v, v_from_epsilon_x0, x0_from_epsilon, x0_from_v
from course_utils.reverse import ddpm_mean
from course_utils.samplers import DDIMSampler, DDPMSampler
from course_utils.schedules import NoiseSchedule

betas_st = st.lists(st.floats(1e-5, 0.5), min_size=2, max_size=60).map(lambda b: NoiseSchedule(torch.tensor(b)))
shape_st = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
common = settings(max_examples=60, deadline=None)


@common
@given(schedule=betas_st, seed=st.integers(0, 2**31 - 1), data=st.data())
def test_closed_form_preserves_unit_variance(schedule, seed, data):
    # Var(x_t) = a Var(x0) + (1 - a) Var(eps) = 1 when x0 and eps have unit variance.
    t = data.draw(st.integers(0, schedule.num_timesteps - 1))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(20000, generator=g, dtype=torch.float64)
    x0 = (x0 - x0.mean()) / x0.std()
    eps = torch.randn(20000, generator=g, dtype=torch.float64)
    eps = (eps - eps.mean()) / eps.std()
    xt = q_sample(x0, t, eps, schedule)
    assert abs(xt.var().item() - 1.0) < 0.05  # the cross term 2 sqrt(a(1-a)) Cov(x0, eps) is O(1/sqrt(n))


@common
@given(a=st.floats(1e-4, 1 - 1e-4), shape=shape_st, seed=st.integers(0, 2**31 - 1))
def test_eps_x0_v_round_trips(a, shape, seed):
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    xt = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    tol = {"rtol": 1e-6, "atol": 1e-6 / a**0.5}
    torch.testing.assert_close(x0_from_epsilon(xt, eps, a), x0, **tol)
    v = v_from_epsilon_x0(eps, x0, a)
    torch.testing.assert_close(x0_from_v(xt, v, a), x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(epsilon_from_v(xt, v, a), eps, rtol=1e-9, atol=1e-9)


@common
@given(schedule=betas_st, seed=st.integers(0, 2**31 - 1), data=st.data())
def test_posterior_mean_with_perfect_noise_at_t1_recovers_x0(schedule, seed, data):
    # At the first step (alpha_bar = 1 - beta), the reverse mean with the true noise is x0 exactly.
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    beta = schedule.betas[0].item()
    x1 = q_sample(x0, 0, eps, schedule)
    torch.testing.assert_close(ddpm_mean(x1, eps, beta, 1 - beta), x0)


@common
@given(schedule=betas_st, steps=st.integers(1, 60), seed=st.integers(0, 2**31 - 1))
def test_ddim_eta0_is_invertible_step_by_step(schedule, steps, seed):
    # For a model whose eps does not depend on x, a DDIM step is affine in x_t and can be undone.
    steps = min(steps, schedule.num_timesteps)
    sampler = DDIMSampler(schedule, clip_sample=False)
    sampler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(3, generator=g, dtype=torch.float64)
    x = torch.randn(3, generator=g, dtype=torch.float64)
    for t in sampler.timesteps:
        t = int(t)
        prev = sampler.step(eps, t, x).prev_sample
        t_prev = sampler.previous_timestep(t)
        a, ap = sampler.alpha_bar(t), sampler.alpha_bar(t_prev)
        # invert x_prev = sqrt(ap) (x - sqrt(1-a) eps)/sqrt(a) + sqrt(1-ap) eps
        back = (prev - (1 - ap) ** 0.5 * eps) * (a / ap) ** 0.5 + (1 - a) ** 0.5 * eps
        torch.testing.assert_close(back, x, rtol=1e-6, atol=1e-6)
        x = prev


@common
@given(schedule=betas_st, seed=st.integers(0, 2**31 - 1), pred=st.sampled_from(["epsilon", "sample", "v_prediction"]),
       scale=st.floats(0, 1e3))
def test_samplers_stay_finite_on_finite_input(schedule, seed, pred, scale):
    g = torch.Generator().manual_seed(seed)
    for sampler in (DDPMSampler(schedule, prediction_type=pred), DDIMSampler(schedule, prediction_type=pred)):
        x = torch.randn(4, generator=g)
        for t in sampler.timesteps:
            out = scale * torch.randn(4, generator=g)
            kwargs = {"eta": 1.0} if isinstance(sampler, DDIMSampler) else {}
            x = sampler.step(out, t, x, generator=g, **kwargs).prev_sample
            assert torch.isfinite(x).all()
