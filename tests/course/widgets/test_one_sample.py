"""Every explorer works with one sample (issue 30): one image, one digit, one prompt's sample."""

import matplotlib
import pytest

from course_utils import pretrained
from course_utils.course.widgets import ForwardExplorer, LatentExplorer, PatchExplorer, PromptExplorer, SamplerExplorer
from course_utils.data import make_shapes

matplotlib.use("Agg")


@pytest.mark.widgets
def test_every_explorer_draws_a_single_sample():
    one_shape = make_shapes(1, seed=0).images  # (1, 3, 32, 32)
    forward = ForwardExplorer({"one": one_shape})
    forward.t_slider.value = 500
    assert forward.current["one"].shape == (1, 3, 32, 32)
    latent = LatentExplorer(pretrained.load("shapes-vae", device="cpu"), one_shape)
    assert latent.index.max == 0 and latent.current.ndim == 2
    patch = PatchExplorer(one_shape, patch_size=4)
    assert patch.num_tokens == 64
    prompt = PromptExplorer(pretrained.load("shapes-text", device="cpu"), n=1, steps=2)
    prompt.generate()
    assert prompt.images.shape == (1, 3, 32, 32) and len(prompt.readings) == 1
    sampler = SamplerExplorer(n=1, steps=1)
    sampler.draw()
    assert sampler.images.shape == (1, 1, 16, 16) and sampler.nfe == 1
