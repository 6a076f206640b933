"""course_utils.metrics.background_grain: the spread of the background in each image's outer frame, the
cleanliness figure a noise-trained judge forgives."""

import pytest
import torch

from course_utils import metrics
from course_utils.data.shapes import make_shapes


def test_real_shapes_are_flat_at_the_border_and_noise_is_not():
    real = make_shapes(200, seed=1).images
    assert metrics.background_grain(real) < 0.02
    g = torch.Generator().manual_seed(0)
    noisy = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    assert metrics.background_grain(noisy) > 0.15  # what shapes-text's samples carried (0.17; issue 34)


def test_it_reads_the_frame_only():
    x = torch.zeros(4, 3, 32, 32)
    x[..., 3:-3, 3:-3] = torch.randn(4, 3, 26, 26)  # anything inside the frame
    assert metrics.background_grain(x) == 0.0
    x[..., 0, :] = 1.0  # one bright row in the frame: per image and channel, 32 ones among its 348 pixels
    frame = torch.cat([torch.ones(32), torch.zeros(348 - 32)])
    assert metrics.background_grain(x) == pytest.approx(float(frame.std()), rel=1e-6)


@pytest.mark.parametrize("images, border, err, match", [
    (torch.zeros(2, 3, 32, 32), 0, ValueError, "border"),
    (torch.zeros(2, 3, 32, 32), 16, ValueError, "border"),
    (torch.zeros(3, 32, 32), 3, ValueError, "images must be"),
    ("images", 3, TypeError, "images must be a tensor"),
])
def test_bad_input_names_the_argument(images, border, err, match):
    with pytest.raises(err, match=match):
        metrics.background_grain(images, border)
