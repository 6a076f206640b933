"""course_utils.samplers.flow_euler: Euler on the flow ODE, against diffusers' FlowMatchEulerDiscreteScheduler."""

import pytest
import torch

from course_utils.samplers import FlowMatchEulerSampler, sample_loop


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [1, 4, 8, 50])
def test_euler_matches_diffusers_over_whole_loops(steps, shift):
    from diffusers import FlowMatchEulerDiscreteScheduler

    ours, theirs = FlowMatchEulerSampler(shift=shift), FlowMatchEulerDiscreteScheduler(shift=shift)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, atol=0, rtol=0)
    torch.testing.assert_close(ours.sigmas, theirs.sigmas, atol=0, rtol=0)

    def field(x, t):  # a smooth velocity field that depends on x and t
        return torch.sin(x) + (t.float() / 1000) * x

    out = {}
    for name, sampler in (("ours", ours), ("diffusers", theirs)):
        out[name] = sample_loop(field, sampler, (2, 3, 4, 4), steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["ours"], out["diffusers"], atol=1e-6, rtol=1e-6)


def test_euler_integrates_a_straight_flow_exactly_in_one_step():
    # For a single data point c the flow is straight: one Euler step from noise lands on c.
    c = torch.full((1, 1, 2, 2), 0.3)
    sampler = FlowMatchEulerSampler()
    sampler.set_timesteps(1)
    x1 = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    v = (x1 - c) / (sampler.timesteps[0] / 1000)
    out = sampler.step(v, sampler.timesteps[0], x1)
    torch.testing.assert_close(out.prev_sample, c)
    torch.testing.assert_close(out.pred_original_sample, c)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shift must be a positive number"):
        FlowMatchEulerSampler(shift=0)
    s = FlowMatchEulerSampler()
    with pytest.raises(RuntimeError, match="set_timesteps"):
        s.step(torch.zeros(1), 1000.0, torch.zeros(1))
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="not one of this sampler's timesteps"):
        s.step(torch.zeros(1), 123.0, torch.zeros(1))
    with pytest.raises(ValueError, match="Shapes must match"):
        s.step(torch.zeros(2), s.timesteps[0], torch.zeros(1))
