"""DiffusionModel.sample with class labels and classifier-free guidance (small random U-Net)."""

import pytest
import torch

from course_utils.models import UNet
from course_utils.models.unet import UNetConfig
from course_utils.pipeline import DiffusionModel
from course_utils.schedules import get_schedule


@pytest.fixture(scope="module")
def class_model():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2, num_classes=10))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return DiffusionModel(net, get_schedule("cosine", 100), info={"name": "test-class", "conditioning": "class"})


def draw(model, **kw):
    return model.sample(4, steps=5, generator=torch.Generator().manual_seed(0), **kw)


def test_labels_and_guidance_change_the_samples(class_model):
    uncond = draw(class_model)
    threes = draw(class_model, labels=3)
    guided = draw(class_model, labels=3, guidance_scale=5.0)
    assert threes.shape == (4, 1, 16, 16)
    assert not torch.allclose(uncond, threes) and not torch.allclose(threes, guided)
    torch.testing.assert_close(draw(class_model, labels=3, guidance_scale=1.0), threes)  # w = 1: conditional
    torch.testing.assert_close(draw(class_model, labels=[3, 3, 3, 3], guidance_scale=0.0), uncond,
                               atol=1e-5, rtol=1e-5)  # w = 0: unconditional


def test_x0_is_clipped_unless_guidance_extrapolates(class_model, monkeypatch):
    # For w > 1 the clamp on x0 fights the guided eps (digits-class, w = 3, DDIM-10: 95% of
    # digits right with it, 100% without), so sample() drops it unless asked.
    from course_utils.samplers import DDIMSampler

    seen = []
    original = DDIMSampler.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.clip_sample)

    monkeypatch.setattr(DDIMSampler, "__init__", spy)
    draw(class_model)
    draw(class_model, labels=3)
    draw(class_model, labels=3, guidance_scale=0.0)
    draw(class_model, labels=3, guidance_scale=3.0)
    draw(class_model, labels=3, guidance_scale=3.0, clip_sample=True)
    draw(class_model, clip_sample=False)
    assert seen == [True, True, True, False, True, False]
    monkeypatch.undo()
    big = draw(class_model, labels=3, guidance_scale=20.0)  # a random net at w = 20 overshoots [-1, 1]
    torch.testing.assert_close(big, draw(class_model, labels=3, guidance_scale=20.0, clip_sample=False))
    assert not torch.allclose(big, draw(class_model, labels=3, guidance_scale=20.0, clip_sample=True))


def test_batches_do_not_change_the_result(class_model):
    labels = torch.tensor([0, 1, 2, 3])
    whole = class_model.sample(4, steps=5, labels=labels, guidance_scale=3.0, generator=torch.Generator().manual_seed(1))
    split = class_model.sample(4, steps=5, labels=labels, guidance_scale=3.0, generator=torch.Generator().manual_seed(1),
                               batch_size=4)
    torch.testing.assert_close(whole, split)


@pytest.mark.parametrize("kw, error, match", [
    ({"labels": 10}, ValueError, r"\[0, 9\]"),
    ({"labels": -1}, ValueError, r"\[0, 9\]"),
    ({"labels": [1, 2]}, ValueError, "n = 4"),
    ({"labels": 2.5}, ValueError, "ints"),
    ({"labels": 1, "guidance_scale": -1}, ValueError, r"\[0, 50\]"),
    ({"guidance_scale": 3.0}, ValueError, "needs a condition"),
    ({"prompts": ["a red circle on a blue background"]}, ValueError, "text-conditioned"),
])
def test_bad_conditioning_is_refused(class_model, kw, error, match):
    with pytest.raises(error, match=match):
        draw(class_model, **kw)


def test_unconditional_models_refuse_labels():
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2))
    model = DiffusionModel(net, get_schedule("cosine", 100), info={"name": "u", "conditioning": None})
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, steps=2, labels=1)
