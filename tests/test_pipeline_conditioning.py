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


def _loop(model, sampler, labels, w, steps=5):
    """sample()'s loop by hand, with a sampler that clamps (or not) as diffusers does."""
    from course_utils.guidance import ClassifierFreeGuidance

    sampler.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, generator=g)
    cfg = ClassifierFreeGuidance(model.unet, w)
    for t in sampler.timesteps:
        x = sampler.step(cfg(x, t, class_labels=labels), int(t), x, generator=g).prev_sample
    return x.clamp(-1, 1)


def test_x0_clamp_keeps_x0_and_eps_consistent(class_model):
    # DDIM: diffusers' clamp keeps the model's eps, ours re-derives it; they differ when x0 leaves
    # [-1, 1], which a random net at w = 20 makes it do. No clamp at all matches the plain loop.
    from course_utils.samplers import DDIMSampler, DDPMSampler

    labels = torch.full((4,), 3)
    ours = draw(class_model, labels=labels, guidance_scale=20.0)
    diffusers_style = _loop(class_model, DDIMSampler(class_model.schedule, clip_sample=True), labels, 20.0)
    assert not torch.allclose(ours, diffusers_style, atol=1e-3)
    torch.testing.assert_close(draw(class_model, labels=labels, guidance_scale=20.0, clip_sample=False),
                               _loop(class_model, DDIMSampler(class_model.schedule, clip_sample=False), labels, 20.0))
    # DDPM's posterior mean needs only x0 and x_t, so there both clamps are the same.
    torch.testing.assert_close(draw(class_model, labels=labels, guidance_scale=20.0, sampler="ddpm"),
                               _loop(class_model, DDPMSampler(class_model.schedule, clip_sample=True), labels, 20.0),
                               atol=1e-5, rtol=1e-5)


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
