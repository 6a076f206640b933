"""course_utils.schedules: noise schedules: definitions, derived quantities and bad input."""

import math

import pytest
import torch

from course_utils.schedules import SCHEDULE_NAMES, NoiseSchedule, get_schedule


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_shapes_dtypes_and_monotone_decay(name):
    s = get_schedule(name)
    for arr in (s.betas, s.alphas, s.alphas_cumprod):
        assert arr.shape == (1000,) and arr.dtype == torch.float64
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    assert s.alphas_cumprod[0] == 1 - s.betas[0]  # 0-indexed: one step of noise at t = 0
    torch.testing.assert_close(s.alphas, 1 - s.betas)


def test_linear_endpoints():
    # Ho et al. 2020: beta_0 = 1e-4, beta_{T-1} = 0.02.
    s = get_schedule("linear")
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)


def test_scaled_linear_is_sqrt_spaced():
    s = get_schedule("scaled_linear")
    root = s.betas.sqrt()
    assert s.betas[0].item() == pytest.approx(0.00085) and s.betas[-1].item() == pytest.approx(0.012)
    diffs = root[1:] - root[:-1]
    torch.testing.assert_close(diffs, torch.full_like(diffs, diffs[0].item()))


def test_cosine_follows_its_alpha_bar_formula():
    # Nichol & Dhariwal Eq. (17): alpha_bar_t = f((t+1)/T) / f(0) with f(u) = cos^2((u + s)/(1 + s) * pi/2),
    # exact wherever the 0.999 cap on beta is not active (it binds only at the last step).
    s, T = get_schedule("cosine"), 1000
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 990):
        assert s.alphas_cumprod[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)


def test_snr_and_log_snr():
    s = get_schedule("linear")
    torch.testing.assert_close(s.log_snr(), s.snr().log())
    assert (s.snr()[1:] < s.snr()[:-1]).all()


def test_kwargs_and_other_lengths():
    s = get_schedule("linear", 10, beta_start=0.001, beta_end=0.1)
    assert len(s) == 10 and s.betas[-1].item() == pytest.approx(0.1)


def test_gather_casts_and_validates():
    s = get_schedule("cosine")
    like = torch.zeros(3, dtype=torch.float32)
    out = s.gather("alphas_cumprod", torch.tensor([0, 1, 999]), like)
    assert out.dtype == torch.float32 and out.shape == (3,)
    with pytest.raises(ValueError, match="Accepted"):
        s.gather("sigmas", 0, like)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: get_schedule("cosin"), ValueError, "Accepted: 'linear', 'cosine', 'scaled_linear'"),
        (lambda: get_schedule(3), TypeError, "accepted"),
        (lambda: get_schedule("linear", 0), ValueError, "positive integer"),
        (lambda: get_schedule("linear", -5), ValueError, "positive integer"),
        (lambda: get_schedule("linear", 10.5), TypeError, "positive integer"),
        (lambda: get_schedule("cosine", s=0.1, beta_end=3), TypeError, "accepts s, max_beta"),
        (lambda: NoiseSchedule(torch.tensor([0.1, 1.5])), ValueError, r"\(0, 1\]"),
        (lambda: NoiseSchedule(torch.tensor([0.1, float("nan")])), ValueError, "finite"),
        (lambda: NoiseSchedule(torch.zeros(2, 2)), ValueError, "1-D"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
