"""course_utils.data.toy2d: the 2-D toy point clouds, and the bad input the synthetic data sets refuse."""

import pytest
import torch

from course_utils.data import make_shapes, make_toy2d


@pytest.mark.parametrize("name", ["moons", "swiss_roll", "gaussian_mixture"])
def test_toy2d(name):
    p = make_toy2d(name, 500, seed=1)
    assert p.shape == (500, 2) and p.dtype == torch.float32 and torch.isfinite(p).all()
    assert torch.equal(p, make_toy2d(name, 500, seed=1))
    assert 0.3 < p.std().item() < 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_toy2d("spiral"), "'moons', 'swiss_roll', 'gaussian_mixture'"),
        (lambda: make_toy2d("moons", 0), "positive integer"),
        (lambda: make_toy2d("moons", noise=-1), ">= 0"),
        (lambda: make_shapes(10, size=8), "at least 16"),
        (lambda: make_shapes(0), "positive integer"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
