"""course_utils.oracle: the exact Gaussian-mixture denoiser."""

import pytest
import torch

from course_utils.oracle import GaussianMixtureOracle
from course_utils.schedules import get_schedule


def test_single_gaussian_posterior_mean_is_the_wiener_filter():
    # x0 ~ N(m, s^2): E[x0 | x_t] = m + sqrt(a) s^2 / (a s^2 + 1 - a) * (x_t - sqrt(a) m).
    s = get_schedule("linear")
    m, std, t = torch.tensor([[0.5, -1.0]]), 0.7, 300
    a = s.alphas_cumprod[t].item()
    x = torch.randn(4, 2, dtype=torch.float64)
    oracle = GaussianMixtureOracle(m, std, s)
    expected = m + a**0.5 * std**2 / (a * std**2 + 1 - a) * (x - a**0.5 * m)
    torch.testing.assert_close(oracle.posterior_mean(x, t), expected)


def test_predictions_are_consistent():
    s = get_schedule("cosine")
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.tensor([10, 200, 400, 600, 900])
    a = s.alphas_cumprod[t][:, None]
    x0 = GaussianMixtureOracle(means, 0.1, s, prediction_type="sample")(x, t)
    eps = GaussianMixtureOracle(means, 0.1, s)(x, t)
    v = GaussianMixtureOracle(means, 0.1, s, prediction_type="v_prediction")(x, t)
    torch.testing.assert_close(a.sqrt() * x0 + (1 - a).sqrt() * eps, x)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)


def test_from_data_at_low_noise_snaps_to_the_nearest_point():
    s = get_schedule("linear")
    pts = torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    oracle = GaussianMixtureOracle.from_data(pts, s, prediction_type="sample")
    out = oracle(torch.tensor([[2.6, 2.9]]), 0)
    torch.testing.assert_close(out, torch.tensor([[3.0, 3.0]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"means": torch.zeros(3)}, r"\(K, D\)"),
        ({"std": -1.0}, ">= 0"),
        ({"weights": [0.5, 0.6]}, "summing to 1"),
        ({"prediction_type": "noise"}, "Accepted"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"means": torch.zeros(2, 2), "std": 0.1, "schedule": get_schedule("linear")} | kwargs
    with pytest.raises(ValueError, match=match):
        GaussianMixtureOracle(**args)


def test_wrong_point_dimension():
    oracle = GaussianMixtureOracle(torch.zeros(2, 2), 0.1, get_schedule("linear"))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        oracle(torch.zeros(3, 5), 0)
