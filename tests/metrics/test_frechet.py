"""course_utils.metrics.frechet: the Fréchet distance's closed forms and the kernel inception distance."""

import numpy as np
import pytest
import torch

from course_utils import metrics


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
