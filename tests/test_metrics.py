"""digits-FID, KID and the shipped classifier."""

import numpy as np
import pytest
import torch

from course_utils import metrics
from course_utils.data import load_digits


def test_frechet_distance_closed_forms():
    # Identical Gaussians: 0. One dimension: (m1 - m2)^2 + (s1 - s2)^2.
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert metrics.frechet_distance([0, 0], cov, [0, 0], cov) == pytest.approx(0, abs=1e-9)
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    # Diagonal covariances: sum over dimensions of (sqrt(a) - sqrt(b))^2, plus the mean term.
    d = metrics.frechet_distance([0, 1], np.diag([1.0, 4.0]), [0, 0], np.diag([9.0, 1.0]))
    assert d == pytest.approx(1 + (1 - 3) ** 2 + (2 - 1) ** 2)
    with pytest.raises(ValueError, match="shapes do not match"):
        metrics.frechet_distance([0], [[1.0]], [0, 0], np.eye(2))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    same, _ = metrics.kernel_inception_distance(a, b, subset_size=300)
    shifted, _ = metrics.kernel_inception_distance(a, b + 1.0, subset_size=300)
    assert abs(same) < 0.01 and shifted > 0.1


def test_shipped_classifier_is_accurate_on_held_out_digits():
    x, y = load_digits(split="test")
    assert metrics.accuracy(metrics.digit_classifier(), x, y) >= 0.97


def test_real_vs_real_floor_is_reproduced_from_data():
    half_a, half_b = metrics.reference_split()
    assert (len(half_a), len(half_b)) == (899, metrics.NUM_SAMPLES)
    fid = metrics.digits_fid(half_b)
    assert fid == pytest.approx(metrics.floor()["fid"], rel=1e-6)
    assert fid < 0.5
    # A visibly worse "model": blurred real digits score far above the floor at the same N.
    blurred = torch.nn.functional.avg_pool2d(half_b, 3, stride=1, padding=1, count_include_pad=False)
    assert metrics.digits_fid(blurred) > 5 * fid
    noise = torch.rand(metrics.NUM_SAMPLES, 1, 16, 16) * 2 - 1
    assert metrics.digits_fid(noise) > 100 * fid


def test_all_ten_classes_of_real_digits_are_found():
    _, half_b = metrics.reference_split()
    dist = metrics.class_distribution(half_b)
    assert dist.shape == (10,) and dist.min() > 0.07


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.zeros(10, 1, 16, 16), "N = 898"),
        (torch.zeros(898, 1, 8, 8), r"\(N, 1, 16, 16\)"),
        (torch.full((898, 1, 16, 16), 2.0), r"\[-1, 1\]"),
        (torch.full((898, 1, 16, 16), float("nan")), "NaN"),
    ],
)
def test_bad_input(images, match):
    with pytest.raises(ValueError, match=match):
        metrics.digits_fid(images)
