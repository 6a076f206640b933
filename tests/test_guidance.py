"""course_utils.guidance: classifier-free guidance: the formula, the batched wrapper, and its error messages."""

import math

import pytest
import torch

from course_utils.guidance import MAX_GUIDANCE_SCALE, ClassifierFreeGuidance, check_guidance_scale, guide
from course_utils.models import UNet
from course_utils.models.unet import UNetConfig
from tests.helpers import random_weights


@pytest.fixture(scope="module")
def text_unet():
    """A U-Net that cross-attends to 12-d contexts, random weights everywhere (``class_unet``: tests/conftest.py)."""
    torch.manual_seed(1)
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2, context_dim=12))
    return random_weights(net).eval()


def inputs(b=3):
    g = torch.Generator().manual_seed(2)
    return torch.randn(b, 1, 16, 16, generator=g), torch.tensor([5, 400, 999][:b])


@torch.no_grad()
@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
def test_batched_wrapper_equals_two_separate_passes(class_unet, w):
    x, t = inputs()
    labels = torch.tensor([0, 3, 9])
    cond = class_unet(x, t, class_labels=labels)
    uncond = class_unet(x, t, class_labels=torch.full((3,), 10))
    got = ClassifierFreeGuidance(class_unet, w)(x, t, class_labels=labels)
    torch.testing.assert_close(got, uncond + w * (cond - uncond), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_scale_zero_is_unconditional_and_one_is_conditional(class_unet):
    x, t = inputs()
    labels = torch.tensor([1, 2, 3])
    torch.testing.assert_close(ClassifierFreeGuidance(class_unet, 0.0)(x, t, class_labels=labels),
                               class_unet(x, t), atol=1e-5, rtol=1e-5)  # no labels = the null label
    torch.testing.assert_close(ClassifierFreeGuidance(class_unet, 1.0)(x, t, class_labels=labels),
                               class_unet(x, t, class_labels=labels), atol=0, rtol=0)


class CountingCalls(torch.nn.Module):
    """The wrapped network, recording the batch size and keyword arguments of every call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    @property
    def config(self):
        return self.net.config

    def forward(self, x, t, **kwargs):
        self.calls.append((x.shape[0], kwargs))
        return self.net(x, t, **kwargs)


@torch.no_grad()
def test_scales_zero_and_one_run_one_pass_of_the_batch(class_unet, text_unet):
    x, t = inputs()
    counted = CountingCalls(class_unet)
    ClassifierFreeGuidance(counted, 0.0)(x, t, class_labels=torch.tensor([1, 2, 3]))
    ClassifierFreeGuidance(counted, 1.0)(x, t, class_labels=torch.tensor([1, 2, 3]))
    ClassifierFreeGuidance(counted, 2.0)(x, t, class_labels=torch.tensor([1, 2, 3]))
    assert [b for b, _ in counted.calls] == [3, 3, 6]
    assert counted.calls[0][1]["class_labels"].tolist() == [10, 10, 10]  # w = 0: only the null label
    g = torch.Generator().manual_seed(4)
    ctx, null = torch.randn(3, 5, 12, generator=g), torch.randn(1, 5, 12, generator=g)
    mask, null_mask = torch.ones(3, 5, dtype=torch.bool), torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool)
    got = ClassifierFreeGuidance(text_unet, 0.0, null_context=null, null_mask=null_mask)(
        x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask)
    want = text_unet(x, t, encoder_hidden_states=null.expand(3, 5, 12), encoder_attention_mask=null_mask.expand(3, 5))
    torch.testing.assert_close(got, want, atol=0, rtol=0)


@torch.no_grad()
def test_text_guidance_uses_the_null_context_and_masks(text_unet):
    x, t = inputs(2)
    g = torch.Generator().manual_seed(3)
    ctx, null = torch.randn(2, 5, 12, generator=g), torch.randn(1, 5, 12, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    null_mask = torch.tensor([[1, 0, 0, 0, 0]], dtype=torch.bool)
    cfg = ClassifierFreeGuidance(text_unet, 4.0, null_context=null, null_mask=null_mask)
    got = cfg(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask)
    cond = text_unet(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask)
    uncond = text_unet(x, t, encoder_hidden_states=null.expand(2, 5, 12), encoder_attention_mask=null_mask.expand(2, 5))
    torch.testing.assert_close(got, guide(uncond, cond, 4.0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cond, uncond)  # the context matters, so the test could fail


@pytest.mark.parametrize("bad, error, match", [
    (-0.5, ValueError, r"\[0, 50\]"), (float("nan"), ValueError, r"\[0, 50\]"), (float("inf"), ValueError, "got inf"),
    (MAX_GUIDANCE_SCALE + 1, ValueError, "typical"), ("7", TypeError, "got str"), (None, TypeError, "number"),
])
def test_bad_guidance_scales_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        check_guidance_scale(bad)


def test_misuse_is_explained(class_unet, text_unet):
    x, t = inputs(2)
    with pytest.raises(ValueError, match="needs a condition"):
        ClassifierFreeGuidance(class_unet, 3.0)(x, t)
    with pytest.raises(ValueError, match="null_context"):
        ClassifierFreeGuidance(text_unet, 3.0)(x, t, encoder_hidden_states=torch.zeros(2, 5, 12))
    with pytest.raises(ValueError, match="not class-conditional"):
        ClassifierFreeGuidance(text_unet, 3.0)(x, t, class_labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(L, D\)"):
        ClassifierFreeGuidance(text_unet, 3.0, null_context=torch.zeros(1, 4, 12))(
            x, t, encoder_hidden_states=torch.zeros(2, 5, 12))


def test_guide_is_the_formula():
    u, c = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert guide(u, c, 2.5).tolist() == [6.0, 3.0]
    assert math.isclose(float(guide(torch.tensor(0.0), torch.tensor(1.0), 7.0)), 7.0)
