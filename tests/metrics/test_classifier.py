"""course_utils.metrics.classifier: scoring the digit classifier, and its training augmentation."""

import torch

from course_utils import metrics
from course_utils.data import load_digits
from course_utils.metrics.classifier import _augment


def test_shipped_classifier_is_accurate_on_held_out_digits():
    x, y = load_digits(split="test")
    assert metrics.accuracy(metrics.digit_classifier(), x, y) >= 0.97


def test_accuracy_is_the_share_of_argmax_predictions_that_match():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    model = lambda images: logits[images.long().flatten()]  # noqa: E731  (image i -> row i)
    images = torch.arange(4.0)[:, None]
    assert metrics.accuracy(model, images, torch.tensor([0, 1, 2, 2])) == 0.75  # rows 0-2 right, row 3 says 0


def test_augmentation_shifts_the_whole_batch_by_at_most_one_pixel():
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    for seed in range(5):
        y = _augment(x, torch.Generator().manual_seed(seed))
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)  # the background of a digit is -1
        shifted = [padded[:, :, dy:dy + 16, dx:dx + 16] for dy in range(3) for dx in range(3)]  # by -1, 0 or +1
        assert sum(torch.equal(y, s) for s in shifted) == 1
