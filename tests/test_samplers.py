"""Samplers: behaviour with an exact denoiser, determinism and bad input."""

import pytest
import torch

from course_utils.data import gaussian_mixture_params
from course_utils.oracle import GaussianMixtureOracle
from course_utils.samplers import DDIMSampler, DDPMSampler, sample_loop
from course_utils.schedules import get_schedule


def test_ddim_eta0_with_exact_single_point_oracle_lands_on_the_point():
    # Data = one point at (1, -1): the ideal denoiser always predicts x0 = (1, -1), so DDIM lands there.
    s = get_schedule("cosine")
    oracle = GaussianMixtureOracle([[1.0, -1.0]], 0.0, s)
    x = sample_loop(oracle, DDIMSampler(s, clip_sample=False), (16, 2), 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, torch.tensor([[1.0, -1.0]]).expand(16, 2), atol=1e-4, rtol=0)


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


def test_add_noise_is_the_closed_form():
    s = get_schedule("linear")
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    out = DDPMSampler(s).add_noise(x0, eps, torch.tensor([10, 900]))
    a = s.alphas_cumprod[[10, 900]].float()[:, None]
    torch.testing.assert_close(out, a.sqrt() * x0 + (1 - a).sqrt() * eps)


def _sampler():
    return DDPMSampler(get_schedule("linear"))


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: DDPMSampler("linear"), TypeError, "NoiseSchedule"),
        (lambda: DDPMSampler(get_schedule("linear"), prediction_type="eps"), ValueError, "'epsilon', 'sample', 'v_prediction'"),
        (lambda: DDPMSampler(get_schedule("linear"), variance_type="learned"), ValueError, "fixed_small"),
        (lambda: DDIMSampler(get_schedule("linear"), timestep_spacing="even"), ValueError, "leading"),
        (lambda: DDIMSampler(get_schedule("linear"), clip_sample_range=0), ValueError, "positive"),
        (lambda: _sampler().set_timesteps(0), ValueError, "positive integer"),
        (lambda: _sampler().set_timesteps(-3), ValueError, "positive integer"),
        (lambda: _sampler().set_timesteps(2.5), TypeError, "positive integer"),
        (lambda: _sampler().set_timesteps(1001), ValueError, "at most num_train_timesteps = 1000"),
        (lambda: _sampler().step(torch.zeros(2, 3), 5, torch.zeros(2, 4)), ValueError, "Shapes must match"),
        (lambda: _sampler().step(torch.zeros(2, 3), 1000, torch.zeros(2, 3)), ValueError, r"\[0, 999\]"),
        (lambda: _sampler().step(torch.zeros(2), torch.tensor([3, 4]), torch.zeros(2)), ValueError, "one timestep"),
        (lambda: _sampler().step([0.0], 5, torch.zeros(1)), TypeError, "tensors"),
        (lambda: DDIMSampler(get_schedule("linear")).step(torch.zeros(2), 999, torch.zeros(2), eta=1.5), ValueError,
         r"eta must lie in \[0, 1\]"),
        (lambda: sample_loop(lambda x, t: x, _sampler(), (2,), 0), ValueError, "positive integer"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_step_rejects_a_timestep_not_in_the_schedule():
    sampler = _sampler()
    sampler.set_timesteps(10)
    with pytest.raises(ValueError, match="not one of this sampler's timesteps"):
        sampler.step(torch.zeros(2), 5, torch.zeros(2))
