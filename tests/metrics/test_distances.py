"""course_utils.metrics.distances: straightness, sliced Wasserstein, diversity and nearest-data distances."""

import math

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.metrics import distances
from course_utils.metrics.distances import sliced_wasserstein, straightness
from tests.helpers import random_digits


def test_straightness():
    line = torch.linspace(0, 1, 5).view(5, 1, 1) * torch.tensor([[3.0, 4.0]])  # (5, 1, 2): a straight path
    assert straightness(line).item() == pytest.approx(1.0)
    corner = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])  # two sides of a unit square
    assert straightness(corner).item() == pytest.approx(2**0.5 / 2)
    with pytest.raises(ValueError, match="at least 2 points"):
        straightness(line[:1])


def test_sliced_wasserstein():
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-12)
    # A translation by c moves every projection on u by c . u: the mean of |c . u| over unit
    # directions in 2-D is |c| * E|cos| = |c| * 2 / pi (= 1.273 for |c| = 2).
    c = torch.tensor([2.0, 0.0])
    assert sliced_wasserstein(x, x + c, num_projections=4000) == pytest.approx(2 * 2 / torch.pi, rel=0.03)
    assert sliced_wasserstein(x, x[:500]) < 0.1  # a subsample of the same cloud: close, N != M allowed
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sliced_wasserstein(x, torch.zeros(3, 3))


def test_pairwise_diversity_is_zero_for_copies_and_the_offset_for_shifted_images():
    x = random_digits(1)
    assert distances.pairwise_diversity(x.repeat(5, 1, 1, 1)) == pytest.approx(0.0, abs=1e-9)
    pair = torch.cat([torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.3)])
    assert distances.pairwise_diversity(pair) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="N >= 2"):
        distances.pairwise_diversity(x)


def test_nearest_data_distance():
    data = make_shapes(50, seed=0).images  # (50, 3, 32, 32)
    assert torch.allclose(distances.nearest_data_distance(data[:5], data), torch.zeros(5), atol=1e-6)  # its own nearest
    d, idx = distances.nearest_data(data[7:8] + 0.2, data)  # shift every pixel by 0.2: RMS distance 0.2 to itself
    assert int(idx) == 7 and math.isclose(float(d), 0.2, rel_tol=1e-4)
    ref = torch.stack([((data - x).pow(2).mean((1, 2, 3))).min().sqrt() for x in data[:3] * 0.5])
    assert torch.allclose(distances.nearest_data_distance(data[:3] * 0.5, data), ref, atol=1e-5)


def test_real_vs_real_distance_is_smaller_than_noise():
    data = make_shapes(400, seed=1).images
    real = distances.real_vs_real_distance(data, 50, torch.Generator().manual_seed(0))
    noise = distances.nearest_data_distance(torch.rand(50, 3, 32, 32) * 2 - 1, data)
    assert real.shape == (50,) and (real > 0).all()
    assert float(real.median()) < 0.5 * float(noise.median())
