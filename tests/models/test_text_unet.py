"""course_utils.models.text_unet: the caption table and the caption-conditioned U-Net look up the encoder's states."""

import pytest
import torch

from course_utils.models.text_unet import CaptionConditionedUNet, caption_table
from tests.helpers import CAPS


@torch.no_grad()
def test_caption_index_looks_up_the_same_states_the_encoder_gives(text_parts):
    clip, unet = text_parts
    unique, index, states, masks = caption_table(clip, [CAPS[1], CAPS[0], CAPS[1]])
    assert unique == sorted(CAPS) and index.tolist() == [0, 1, 0] and states.shape[0] == 3  # + the empty prompt
    net = CaptionConditionedUNet(unet, states, masks)
    assert net.config.num_classes == 2
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    s, m = clip.token_states([CAPS[1], ""])
    torch.testing.assert_close(net(x, t, class_labels=torch.tensor([0, 2])),
                               unet(x, t, encoder_hidden_states=s, encoder_attention_mask=m))
    torch.testing.assert_close(net(x, t), net(x, t, class_labels=torch.tensor([2, 2])))  # no label: empty prompt


def test_caption_table_checks_widths(text_parts):
    clip, unet = text_parts
    with pytest.raises(ValueError, match="context_dim"):
        CaptionConditionedUNet(unet, torch.zeros(3, 10, 32), torch.ones(3, 10, dtype=torch.bool))
