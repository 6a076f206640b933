"""course_utils.metrics (its __init__): digits-FID against the real-vs-real floor, class spread and guidance metrics."""

import pytest
import torch

from course_utils import metrics
from course_utils.data import load_digits


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


def test_guidance_metrics_on_real_digits():
    x, y = load_digits(split="test")
    assert metrics.class_adherence(x, y) > 0.98
    real = metrics.within_class_diversity(x, y)
    copies = metrics.within_class_diversity(x[y == 3][:1].repeat(20, 1, 1, 1), torch.full((20,), 3))
    assert copies < 1e-4 < real
    assert metrics.saturation(torch.tensor([-1.0, 0.0, 0.99, 0.5])) == 0.5
    assert metrics.saturation(torch.tensor([-1.0, 0.0, 0.99, 0.5]), ends="high") == 0.25
    assert metrics.saturation(torch.tensor([-1.0, -0.99, 0.99, 0.5]), ends="low") == 0.5
    with pytest.raises(ValueError, match="'both', 'high', 'low'"):
        metrics.saturation(x, ends="top")
    with pytest.raises(ValueError, match="two samples"):
        metrics.within_class_diversity(x[:1], y[:1])
