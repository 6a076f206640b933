"""course_utils.models.digit_classifier: the digit CNN's 64-d features, its 10 logits, and its input check."""

import pytest
import torch

from course_utils.models.digit_classifier import FEATURE_DIM, DigitClassifier


def test_features_and_logits_have_the_documented_shapes():
    model = DigitClassifier().eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    assert FEATURE_DIM == 64 and model.features(x).shape == (3, 64) and model(x).shape == (3, 10)


def test_the_logits_are_the_head_applied_to_the_features():
    torch.manual_seed(0)
    model = DigitClassifier().eval()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)))


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 3, 16, 16), (1, 16, 16)])
def test_anything_but_16x16_digits_is_refused(shape):
    with pytest.raises(ValueError, match=r"expected digits of shape \(B, 1, 16, 16\)"):
        DigitClassifier()(torch.zeros(shape))
