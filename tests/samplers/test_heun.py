"""course_utils.samplers.heun: Heun on the flow ODE: diffusers' numbers, second order, its step bookkeeping."""

import pytest
import torch

from course_utils.samplers import FlowMatchEulerSampler, FlowMatchHeunSampler, sample_loop


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [1, 2, 5, 20])
def test_heun_matches_diffusers_over_whole_loops(steps, shift):
    from diffusers import FlowMatchHeunDiscreteScheduler

    ours, theirs = FlowMatchHeunSampler(shift=shift), FlowMatchHeunDiscreteScheduler(shift=shift)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, atol=0, rtol=0)

    def field(x, t):
        return torch.sin(x) + (t.float() / 1000) * x

    out = {name: sample_loop(field, s, (2, 3, 4, 4), None, generator=torch.Generator().manual_seed(0))
           for name, s in (("ours", ours), ("diffusers", theirs))}
    # diffusers recovers v as (x - (x - sigma v)) / sigma, which loses float32 digits when sigma is
    # small (its last corrector runs at sigma = 1/T): measured up to 1.4e-5 here.
    torch.testing.assert_close(out["ours"], out["diffusers"], atol=1e-4, rtol=1e-4)


def test_heun_is_second_order():
    # dx/dsigma = x has the solution x(0) = x(1) * e^{-1}. Halving the step divides Euler's error by
    # about 2 and Heun's by about 4 (its one Euler step at the end adds only a local, O(h^2), error).
    x1 = torch.ones(1, 1)
    exact = x1 * torch.exp(torch.tensor(-1.0))

    def err(sampler, n):
        sampler.set_timesteps(n)
        x = x1.clone()
        for t in sampler.timesteps:
            x = sampler.step(x, t, x).prev_sample
        return (x - exact).abs().item()

    # Measured: Euler 0.0214 / 0.0099 at 10 / 20 steps (ratio 2.2), Heun 0.00082 / 0.00018 (ratio 4.7).
    euler = [err(FlowMatchEulerSampler(), n) for n in (10, 20)]
    heun = [err(FlowMatchHeunSampler(), n) for n in (10, 20)]
    assert 1.8 < euler[0] / euler[1] < 2.5 and heun[0] / heun[1] > 3.5 and heun[1] < 0.1 * euler[1]


def test_the_timesteps_list_every_inner_timestep_twice():
    heun, euler = FlowMatchHeunSampler(), FlowMatchEulerSampler()
    heun.set_timesteps(4)
    euler.set_timesteps(4)
    # Predictor and corrector at each of sigma_1 .. sigma_3; the last step, to sigma = 0, is Euler's: 2N - 1.
    e = euler.timesteps.tolist()
    assert heun.order == 2 and heun.timesteps.tolist() == [e[0], e[1], e[1], e[2], e[2], e[3], e[3]]


def test_steps_must_follow_the_timesteps_in_order():
    sampler = FlowMatchHeunSampler()
    sampler.set_timesteps(3)
    x = torch.zeros(1, 2)
    sampler.step(x, sampler.timesteps[0], x)
    with pytest.raises(ValueError, match=r"Heun \(predictor, then corrector\) keeps state between steps"):
        sampler.step(x, sampler.timesteps[3], x)  # skips the corrector at timesteps[1]


def test_a_straight_flow_is_followed_exactly():
    # All data at one point c: the velocity field v(x, sigma) = (x - c) / sigma is constant along each straight
    # path, so the predictor, the corrector's average and the last Euler step are all exact: x ends at c.
    c = torch.tensor([[0.5, -1.0]])
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    out = sample_loop(lambda x, t: (x - c) / (t / 1000), FlowMatchHeunSampler(), (4, 2), 3, latents=noise)
    torch.testing.assert_close(out, c.expand(4, 2))
