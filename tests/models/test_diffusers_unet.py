"""course_utils.models.diffusers_unet: diffusers' UNet2DModel built like our presets, behind our call signature."""

import pytest
import torch

from course_utils.models import UNET_PRESETS, UNet, diffusers_unet_like


@pytest.mark.parametrize("preset", ["digits-tiny", "digits-small"])
def test_it_has_exactly_as_many_parameters_as_our_preset(preset):
    # The module's promise: the same widths, depth and attention placement (1,112,801 for digits-small).
    assert diffusers_unet_like(preset).num_parameters() == UNet(preset).num_parameters()


def test_it_is_called_like_our_unet_and_returns_a_tensor():
    torch.manual_seed(0)
    model = diffusers_unet_like("digits-tiny").eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        out = model(x, torch.tensor([3, 700]))
        expected = model.unet(x, torch.tensor([3, 700])).sample
        scalar = model(x, 5)  # an int timestep, as our samplers pass
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and scalar.shape == x.shape
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("preset", sorted(n for n, c in UNET_PRESETS.items() if c.num_classes or c.context_dim))
def test_conditional_presets_are_refused(preset):
    with pytest.raises(ValueError, match="unconditional presets only"):
        diffusers_unet_like(preset)
