"""course_utils.data.digits: the scikit-learn digits as 16x16 tensors and their split."""

import pytest
import torch

from course_utils.data import load_digits


def test_digits():
    x, y = load_digits()
    assert x.shape == (1797, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert set(y.tolist()) == set(range(10))
    xtr, ytr = load_digits(split="train")
    xte, yte = load_digits(split="test")
    assert (len(xtr), len(xte)) == (1437, 360)
    # train + test is a partition of all: the same multiset of (image, label) rows.
    rows = lambda xs, ys: sorted(map(tuple, torch.cat([xs.flatten(1), ys[:, None].float()], 1).tolist()))  # noqa: E731
    assert rows(torch.cat([xtr, xte]), torch.cat([ytr, yte])) == rows(x, y)
    assert load_digits(size=8)[0].shape == (1797, 1, 8, 8)


def test_digits_bad_split():
    with pytest.raises(ValueError, match="'all', 'train', 'test'"):
        load_digits(split="val")


def test_dark_and_bright_digits_are_the_digits_near_black_and_near_white():
    from course_utils.data import load_dark_and_bright_digits

    images, labels = load_dark_and_bright_digits()
    digits, _ = load_digits()
    assert images.shape == (2 * len(digits), 1, 16, 16) and labels.tolist() == [0] * len(digits) + [1] * len(digits)
    dark, bright = images[labels == 0], images[labels == 1]
    assert dark.max() <= -0.5 and bright.min() >= 0.5 and torch.equal(dark, -bright)
    assert abs(dark.mean() + 0.85) < 0.01  # far from mid-grey, the point of the set
    torch.testing.assert_close((dark + 0.75) * 4, digits)  # the digit itself, at a quarter of its contrast
    with pytest.raises(ValueError, match="contrast"):
        load_dark_and_bright_digits(contrast=0)
