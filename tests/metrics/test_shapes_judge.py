"""course_utils.metrics.shapes_judge: degraded and noise training images, judge accuracy, and the shipped judge."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.data.shapes import COLORS, SHAPES, caption
from course_utils.metrics.shapes_judge import NOISE, PICTURE, ShapesJudge, _degrade, judge_accuracy, noise_images


def test_degrade_stays_in_range_and_changes_images():
    x = make_shapes(16, seed=0).images
    y = _degrade(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def test_judge_accuracy_counts_all_three():
    data = make_shapes(8, seed=0)

    class Oracle(ShapesJudge):
        def read(self, x):
            wrong_shape = data.shape.clone()
            wrong_shape[0] = (wrong_shape[0] + 1) % 3
            picture = torch.full((8,), PICTURE)
            picture[1] = NOISE
            return {"shape": wrong_shape, "color": data.color, "background": data.background, "picture": picture}

    oracle = Oracle()
    acc = judge_accuracy(oracle, data)
    assert acc["shape"] == acc["picture"] == pytest.approx(7 / 8) and acc["all"] == pytest.approx(6 / 8)
    assert acc["color"] == acc["background"] == 1.0
    said = oracle.captions(data.images)
    assert said[1] == "noise" and said[2] == data.captions[2] and said[0] != data.captions[0]


def test_noise_images_are_far_noisier_than_degraded_pictures():
    g = torch.Generator().manual_seed(0)
    x = noise_images(300, g)
    assert x.shape == (300, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    real = make_shapes(300, seed=0).images
    rough = lambda im: (im[..., 1:] - im[..., :-1]).abs().mean((1, 2, 3))  # (N,) neighbour differences
    assert rough(x).min() > 1.2 * rough(_degrade(real, g)).max()  # measured: 0.28 vs 0.19


def test_shipped_judge_reads_held_out_real_shapes():
    from course_utils import metrics

    data = make_shapes(600, seed=7)  # neither the training seed (0) nor the card's held-out seed (1)
    acc = judge_accuracy(metrics.shapes_judge(), data)
    assert acc["all"] >= 0.98, acc
    assert metrics.noise_rejection(metrics.shapes_judge(), 600, seed=7) >= 0.98
    assert metrics.prompt_adherence(data.images, data.captions)["all"] >= 0.98
    # "object" asks only for colour and shape: a wrong background does not count against it.
    swapped = [caption(SHAPES[sh], list(COLORS)[c], list(COLORS)[(c + b) % 6 or 1])
               for sh, c, b in zip(data.shape.tolist(), data.color.tolist(), [1, 2, 3, 4] * 150)]
    wrong_bg = metrics.prompt_adherence(data.images, swapped)
    assert wrong_bg["object"] >= 0.98 and wrong_bg["background"] < 0.2
    shuffled = data.captions[1:] + data.captions[:1]
    assert metrics.prompt_adherence(data.images, shuffled)["all"] < 0.2  # it reads images, not captions
    with pytest.raises(ValueError, match="one per image"):
        metrics.prompt_adherence(data.images, data.captions[:3])
