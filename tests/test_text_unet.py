"""Text conditioning end to end on small random models: the caption table and sample(prompts=...)."""

import pytest
import torch

from course_utils.models import UNet
from course_utils.models.clip import TinyCLIP
from course_utils.models.text_unet import CaptionConditionedUNet, caption_table
from course_utils.models.unet import UNetConfig
from course_utils.pipeline import DiffusionModel
from course_utils.schedules import get_schedule

CAPS = ["a red circle on a blue background", "a green square on a white background"]


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    clip = TinyCLIP().eval()
    unet = UNet(UNetConfig(sample_size=16, in_channels=3, base_channels=16, channel_mults=(1, 2), attention_levels=(1,),
                           num_heads=2, context_dim=64))
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return clip, unet.eval()


@torch.no_grad()
def test_caption_index_looks_up_the_same_states_the_encoder_gives(parts):
    clip, unet = parts
    unique, index, states, masks = caption_table(clip, [CAPS[1], CAPS[0], CAPS[1]])
    assert unique == sorted(CAPS) and index.tolist() == [0, 1, 0] and states.shape[0] == 3  # + the empty prompt
    net = CaptionConditionedUNet(unet, states, masks)
    assert net.config.num_classes == 2
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    s, m = clip.token_states([CAPS[1], ""])
    torch.testing.assert_close(net(x, t, class_labels=torch.tensor([0, 2])),
                               unet(x, t, encoder_hidden_states=s, encoder_attention_mask=m))
    torch.testing.assert_close(net(x, t), net(x, t, class_labels=torch.tensor([2, 2])))  # no label: empty prompt


def test_caption_table_checks_widths(parts):
    clip, unet = parts
    with pytest.raises(ValueError, match="context_dim"):
        CaptionConditionedUNet(unet, torch.zeros(3, 10, 32), torch.ones(3, 10, dtype=torch.bool))


@pytest.fixture(scope="module")
def text_model(parts):
    clip, unet = parts
    return DiffusionModel(unet, get_schedule("cosine", 100), info={"name": "t", "conditioning": "text"},
                          text_encoder=clip)


def draw(model, **kw):
    return model.sample(2, steps=4, generator=torch.Generator().manual_seed(0), **kw)


def test_prompts_and_guidance_change_the_samples(text_model):
    a = draw(text_model, prompts=CAPS)
    assert a.shape == (2, 3, 16, 16)
    assert not torch.allclose(a, draw(text_model, prompts=CAPS[::-1]))
    assert not torch.allclose(a, draw(text_model, prompts=CAPS, guidance_scale=4.0))
    torch.testing.assert_close(draw(text_model), draw(text_model, prompts=CAPS, guidance_scale=0.0),
                               atol=1e-5, rtol=1e-5)  # no prompt = the empty prompt = w 0


@pytest.mark.parametrize("kw, match", [
    ({"prompts": ["a pink circle on a blue background"] * 2}, "unknown words"),
    ({"prompts": CAPS * 2}, "n = 2"),
    ({"labels": 1}, "class-conditioned"),
])
def test_bad_prompts_are_refused(text_model, kw, match):
    with pytest.raises(ValueError, match=match):
        draw(text_model, **kw)


def test_text_model_needs_its_encoder(parts):
    with pytest.raises(ValueError, match="text_encoder"):
        DiffusionModel(parts[1], get_schedule("cosine", 100), info={"conditioning": "text"})


def test_attention_maps_of_a_sampling_run(text_model):
    images, maps, tokens = text_model.attention_maps(CAPS, steps=3, guidance_scale=2.0,
                                                     generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 16, 16)
    assert set(maps) == {8}  # this U-Net cross-attends at its 8x8 level only
    assert maps[8].shape == (2, 10, 8, 8)
    torch.testing.assert_close(maps[8].sum(1), torch.ones(2, 8, 8))  # a distribution over tokens per pixel
    assert tokens[0][:4] == ["<bos>", "a", "red", "circle"] and tokens[0][-1] == "<pad>"
    assert maps[8][:, 9].abs().max() < 1e-6  # padding gets no attention
    flags = [m.store_attention for m in text_model.unet.modules() if isinstance(getattr(m, "store_attention", None), bool)]
    assert flags and not any(flags)  # switched off again after the run


@pytest.mark.widgets
def test_prompt_explorer_generates_and_reports(text_model):
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.metrics.shapes_judge import ShapesJudge
    from course_utils.course.widgets import PromptExplorer

    judge = ShapesJudge().eval()
    # the random text model draws 16x16 images; the judge reads 32x32, so scale them up for it
    judge_32 = type("J", (), {"captions": lambda self, x: judge.captions(
        torch.nn.functional.interpolate(x, size=32))})()
    ex = PromptExplorer(text_model, judge=judge_32, n=2, steps=2)
    ex.generate()
    assert ex.images.shape == (2, 3, 16, 16) and len(ex.readings) == 2
    assert "w = 3" in ex.status.value and ex.adherence is not None
    first = ex.images.clone()
    ex.guidance.value = 8.0
    ex.generate()
    assert not torch.equal(first, ex.images)
    ex.prompt.value = "a pink circle"
    ex.generate()
    assert "unknown words" in ex.status.value and ex.images.shape == (2, 3, 16, 16)
    ex.prompt.value = "a red circle"
    ex.generate()
    assert "not a full caption" in ex.status.value
