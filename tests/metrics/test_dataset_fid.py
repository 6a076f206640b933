"""course_utils.metrics.dataset_fid: digits-FID's recipe on another dataset, its classifier trained on the fly.
Checked offline on MNIST-format files written here (the real digits, upsampled to MNIST's 28x28)."""

import numpy as np
import pytest
import torch

from course_utils.data import load_digits, load_mnist
from course_utils.metrics.dataset_fid import DatasetFID
from tests.data.test_mnist import write_idx


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """The 1,797 digits written as MNIST's IDX files (train: 1,297, test: 500), then read back at 16x16."""
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x, y = load_digits()
    pixels = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    pixels = ((pixels.clamp(-1, 1) + 1) * 127.5).round().squeeze(1).numpy().astype(np.uint8)
    for split, sl in (("train", slice(0, 1297)), ("t10k", slice(1297, None))):
        write_idx(raw / f"{split}-images-idx3-ubyte", pixels[sl])
        write_idx(raw / f"{split}-labels-idx1-ubyte", y[sl].numpy())
    return load_mnist(root, split="train", size=16), load_mnist(root, split="test", size=16)


@pytest.fixture(scope="module")
def scorer(mnist_like):
    (xtr, ytr), (xte, yte) = mnist_like
    return DatasetFID(xtr, ytr, xte, yte, n=200, classifier_steps=300)


def test_the_classifier_learns_and_real_images_score_near_the_floor(scorer, mnist_like):
    (_, _), (xte, _) = mnist_like
    assert scorer.accuracy > 0.85
    assert scorer.floor > 0 and scorer.fid(xte[300:500]) < 2 * scorer.floor


def test_noise_and_a_single_image_score_far_above_the_floor(scorer, mnist_like):
    (_, _), (xte, _) = mnist_like
    noise = torch.rand(200, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert scorer.fid(noise) > 20 * scorer.floor
    assert scorer.fid(xte[:1].expand(200, -1, -1, -1)) > 20 * scorer.floor


@pytest.mark.parametrize("call, err, match", [
    (lambda s, x: s.fid(x[:10]), ValueError, "n = 200"),
    (lambda s, x: DatasetFID(x, 0, x, 0, n=300), ValueError, "at least 600 test_images"),
    (lambda s, x: DatasetFID(x[:, :, :8], 0, x, 0), ValueError, "train_images must be"),
    (lambda s, x: DatasetFID(x, 11, x, 0), ValueError, "train_labels must lie in"),
])
def test_bad_input_names_the_argument(scorer, mnist_like, call, err, match):
    (_, _), (xte, _) = mnist_like
    with pytest.raises(err, match=match):
        call(scorer, xte)
