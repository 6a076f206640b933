"""course_utils.samplers.loop: the one sampling loop reproduces a known distribution, seeds and trajectories."""

import pytest
import torch

from course_utils.data import gaussian_mixture_params
from course_utils.oracle import GaussianMixtureOracle
from course_utils.samplers import DDIMSampler, DDPMSampler, sample_loop
from course_utils.schedules import get_schedule


@pytest.mark.parametrize("sampler_cls, steps", [(DDPMSampler, 1000), (DDIMSampler, 50)])
def test_samplers_reproduce_a_gaussian_mixture(sampler_cls, steps):
    # Mean distance from a sample of N(mu, s^2 I) in 2-D to mu is s * sqrt(pi / 2) = 0.25 for s = 0.2.
    s = get_schedule("cosine")
    means, std = gaussian_mixture_params()
    oracle = GaussianMixtureOracle(means, std, s)
    x = sample_loop(oracle, sampler_cls(s, clip_sample=False), (3000, 2), steps, generator=torch.Generator().manual_seed(1))
    d = torch.cdist(x.double(), means).min(1).values.mean().item()
    assert d == pytest.approx(0.2 * (torch.pi / 2) ** 0.5, abs=0.03)
    counts = torch.bincount(torch.cdist(x.double(), means).argmin(1), minlength=8)
    assert counts.min() > 3000 / 8 * 0.75  # every mode is visited


def test_same_generator_same_samples_and_ddim_is_deterministic_given_noise():
    s = get_schedule("linear")
    model = lambda x, t: 0.1 * x  # noqa: E731
    a = sample_loop(model, DDPMSampler(s), (2, 1, 4, 4), 30, generator=torch.Generator().manual_seed(5))
    b = sample_loop(model, DDPMSampler(s), (2, 1, 4, 4), 30, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    ddim = DDIMSampler(s)
    ddim.set_timesteps(10)
    x = torch.randn(2, 3)
    outs = []
    for seed in (0, 1):  # eta = 0: the generator is never used
        y = x.clone()
        for t in ddim.timesteps:
            y = ddim.step(model(y, t), t, y, generator=torch.Generator().manual_seed(seed)).prev_sample
        outs.append(y)
    assert torch.equal(outs[0], outs[1])


def test_trajectory_and_timesteps():
    s = get_schedule("linear")
    sampler = DDIMSampler(s)
    x, path = sample_loop(lambda x, t: torch.zeros_like(x), sampler, (3, 2), 25, return_trajectory=True)
    assert path.shape == (26, 3, 2) and torch.equal(path[-1], x)
    assert sampler.timesteps.tolist()[:3] == [960, 920, 880] and sampler.timesteps[-1] == 0
    assert sampler.previous_timestep(40) == 0 and sampler.previous_timestep(0) == -1


def test_given_latents_stand_in_for_the_first_draw():
    # With eta = 0 DDIM draws nothing after the initial noise, so handing the loop that noise changes nothing.
    s = get_schedule("linear")
    model = lambda x, t: 0.1 * x  # noqa: E731
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(2))
    drawn = sample_loop(model, DDIMSampler(s), (2, 3), 5, generator=torch.Generator().manual_seed(2))
    given = sample_loop(model, DDIMSampler(s), (2, 3), 5, latents=noise)
    assert torch.equal(drawn, given)
    with pytest.raises(ValueError, match=r"latents must have the sample shape \(2, 3\), got \(3, 2\)"):
        sample_loop(model, DDIMSampler(s), (2, 3), 5, latents=torch.zeros(3, 2))


def test_extra_step_options_reach_the_sampler():
    s = get_schedule("linear")
    model = lambda x, t: 0.1 * x  # noqa: E731

    def run(eta):
        return sample_loop(model, DDIMSampler(s), (2, 3), 5, generator=torch.Generator().manual_seed(0), eta=eta)

    assert torch.equal(run(0.0), run(0.0)) and not torch.equal(run(0.0), run(1.0))  # eta = 1 adds noise
