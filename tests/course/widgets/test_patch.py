"""course_utils.course.widgets.patch: the patch-size explorer of notebook 07 counts tokens and attention pairs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.models.dit import patchify  # noqa: E402


@pytest.mark.widgets
def test_patch_explorer_counts_tokens_and_attention_pairs():
    from course_utils.course.widgets import PatchExplorer

    image = torch.linspace(-1, 1, 256).reshape(1, 16, 16)
    explorer = PatchExplorer(image)
    assert explorer.sizes == [1, 2, 4, 8, 16]
    assert (explorer.patch_size, explorer.num_tokens, explorer.attention_pairs) == (2, 64, 4096)
    explorer.slider.value = 4  # what moving the slider does
    # (16 / 4)^2 = 16 tokens of 4 * 4 * 1 = 16 numbers; attention compares 16^2 = 256 pairs.
    assert (explorer.patch_size, explorer.num_tokens, explorer.token_dim, explorer.attention_pairs) == (4, 16, 16, 256)
    assert torch.equal(explorer.tokens, patchify(image[None], 4)[0])
    assert "16 tokens" in explorer.info.value and "256" in explorer.info.value
    explorer.slider.value = 1
    assert (explorer.num_tokens, explorer.attention_pairs) == (256, 65536)
    rgb = PatchExplorer(torch.zeros(1, 3, 8, 8), patch_size=8)
    assert (rgb.num_tokens, rgb.token_dim) == (1, 192)
    plt.close("all")


@pytest.mark.widgets
def test_patch_explorer_bad_input():
    from course_utils.course.widgets import PatchExplorer

    with pytest.raises(ValueError, match="square"):
        PatchExplorer(torch.zeros(1, 16, 8))
    with pytest.raises(ValueError, match=r"accepted: \[1, 2, 4, 8, 16\]"):
        PatchExplorer(torch.zeros(1, 16, 16), patch_size=3)
