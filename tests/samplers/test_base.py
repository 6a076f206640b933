"""course_utils.samplers.base: the shared timestep bookkeeping and argument checks of every sampler."""

import pytest
import torch

from course_utils.samplers import DDIMSampler, DDPMSampler, SamplerBase, sample_loop
from course_utils.samplers.base import randn_like_diffusers
from course_utils.schedules import get_schedule


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


class Listed(SamplerBase):
    """A sampler skeleton whose ``.timesteps`` are given: only the shared bookkeeping is under test."""

    def __init__(self, timesteps=()):
        super().__init__(1000)
        self.timesteps = torch.as_tensor(timesteps)


def test_index_of_finds_a_listed_timestep_the_first_time_it_is_listed():
    s = Listed([999, 500, 500, 0])  # Heun lists its inner timesteps twice
    assert (s._index_of(999), s._index_of(500), s._index_of(0)) == (0, 1, 3)
    assert s._index_of(torch.tensor(500)) == 1
    floats = Listed([1000.0, 666.6667, 333.3333])  # a flow sampler's sigmas * 1000
    assert floats._index_of(666.667, tolerance=1e-3) == 1


def test_index_of_names_the_timesteps_it_has():
    with pytest.raises(ValueError, match=r"timestep 7 is not one of this sampler's timesteps \(\[999, 500, 0\]\)"):
        Listed([999, 500, 0])._index_of(7)
    with pytest.raises(ValueError, match="20 of them, 999 down to 0"):  # a long list is summarised
        Listed(torch.linspace(999, 0, 20).round().long())._index_of(7)
    with pytest.raises(ValueError, match="not one of this sampler's timesteps"):
        Listed([1000.0, 500.0])._index_of(500.01, tolerance=1e-3)


def test_next_index_follows_the_timesteps_in_order_and_refuses_a_skip():
    s = Listed([999, 500, 0])
    assert [s._next_index(t, 0.0, "Mine") for t in (999, 500)] == [0, 1]
    with pytest.raises(ValueError, match="Mine keeps state between steps.*expected timestep 0, got 999"):
        s._next_index(999, 0.0, "Mine")
    assert s._next_index(0, 0.0, "Mine") == 2
    with pytest.raises(ValueError, match="expected timestep none \\(the loop has ended\\), got 0"):
        s._next_index(0, 0.0, "Mine")


def test_set_timesteps_restarts_the_count_and_step_needs_it_first():
    with pytest.raises(RuntimeError, match=r"call set_timesteps\(num_inference_steps\) before step\(\)"):
        Listed()._index_of(0)
    with pytest.raises(RuntimeError, match="set_timesteps"):
        Listed()._next_index(0, 0.0, "Mine")
    s = Listed([999, 0])
    s._next_index(999, 0.0, "Mine")
    assert s._check_steps(2, 1000, "T") == 2 and s._next_index(999, 0.0, "Mine") == 0  # back at the start
    with pytest.raises(ValueError, match="num_inference_steps must be at most T = 1000, got 1001"):
        s._check_steps(1001, 1000, "T = 1000")


def test_the_noise_is_drawn_as_diffusers_draws_it():
    from diffusers.utils.torch_utils import randn_tensor

    like = torch.zeros(1, dtype=torch.float64)
    ours = randn_like_diffusers((2, 3), torch.Generator().manual_seed(0), like)
    theirs = randn_tensor((2, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ours.dtype == torch.float64 and torch.equal(ours, theirs)


def test_trailing_spacing_gives_exactly_n_timesteps_for_every_n():
    """diffusers' trailing grid has n + 1 points for some n (61 of 1,000: the last is timestep -1)."""
    sampler = DDIMSampler(get_schedule("cosine"), timestep_spacing="trailing")
    for n in range(1, 1001):
        sampler.set_timesteps(n)
        ts = sampler.timesteps.tolist()
        assert len(ts) == n and ts[0] == 999 and ts[-1] >= 0 and ts == sorted(set(ts), reverse=True), n
