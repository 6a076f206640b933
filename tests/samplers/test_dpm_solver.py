"""course_utils.samplers.dpm_solver: DPM-Solver++ beyond parity: first order is DDIM, second order is more accurate."""

import pytest
import torch

from course_utils.samplers import DPMSolverSampler
from course_utils.schedules import get_schedule


def test_first_order_step_is_the_ddim_update():
    # DPM-Solver++(1) = DDIM (eta = 0): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, with eps the model's.
    schedule = get_schedule("cosine")
    s = DPMSolverSampler(schedule, solver_order=1)
    s.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    t, t_next = int(s.timesteps[0]), int(s.timesteps[1])
    a, a_next = (schedule.alphas_cumprod[i].item() for i in (t, t_next))
    out = s.step(eps, t, x)
    x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
    torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.prev_sample, a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps, atol=1e-5, rtol=1e-5)


def test_second_order_is_closer_to_the_exact_ode_solution():
    # Data ~ N(0, s^2 I). Then x_t ~ N(0, v_t I) with v_t = a s^2 + 1 - a, the exact noise prediction is
    # eps(x, t) = sqrt(1 - a) x / v_t, and the probability-flow ODE keeps x / sqrt(v_t) constant: from
    # the first timestep T' it ends at x_{T'} * s / sqrt(v_{T'}). Both solvers use that exact model.
    schedule, s = get_schedule("linear"), 0.5
    ab = schedule.alphas_cumprod

    def model(x, t):
        a = ab[int(t)].item()
        return (1 - a) ** 0.5 * x / (a * s**2 + 1 - a)

    def error(order, steps):
        sampler = DPMSolverSampler(schedule, solver_order=order)
        x_start = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
        sampler.set_timesteps(steps)
        x = x_start.clone()
        for t in sampler.timesteps:
            x = sampler.step(model(x, t), t, x).prev_sample
        a = ab[int(sampler.timesteps[0])].item()
        exact = x_start * s / (a * s**2 + 1 - a) ** 0.5
        return (x - exact).abs().max().item()

    # Measured (linear schedule, max error over 512 numbers): first order 0.28 / 0.12 at 20 / 50 steps,
    # second order 0.095 / 0.0009: the first shrinks like 1/N, the second much faster.
    assert error(2, 20) < 0.5 * error(1, 20)
    assert error(2, 50) < 0.1 * error(1, 50)


def test_misuse_is_refused():
    s = DPMSolverSampler(get_schedule("cosine"))
    with pytest.raises(RuntimeError, match="set_timesteps"):
        s.step(torch.zeros(1), 999, torch.zeros(1))
    with pytest.raises(ValueError, match="at most 1000"):
        s.set_timesteps(1001)
    s.set_timesteps(5)
    with pytest.raises(ValueError, match="in order; expected timestep 999, got 799"):
        s.step(torch.zeros(1), 799, torch.zeros(1))
    with pytest.raises(ValueError, match="Accepted: 1, 2"):
        DPMSolverSampler(get_schedule("cosine"), solver_order=3)
    with pytest.raises(ValueError, match="prediction_type"):
        DPMSolverSampler(get_schedule("cosine"), prediction_type="flow")


def test_pipeline_samples_with_dpm_solver_in_batches():
    from course_utils import metrics, pretrained

    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat_interleave(5)  # (50,)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    whole = model.sample(50, steps=10, labels=labels, sampler="dpmsolver++", generator=g())
    batched = model.sample(50, steps=10, labels=labels, sampler="dpmsolver++", generator=g(), batch_size=16)
    # The solver's memory restarts per batch; float32 convolutions round differently at another batch
    # size (measured: up to 4e-4), hence the tolerance.
    torch.testing.assert_close(whole, batched, atol=1e-3, rtol=1e-3)
    assert metrics.class_adherence(whole, labels) >= 0.9
