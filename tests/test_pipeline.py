"""course_utils.pipeline: DiffusionModel.sample with labels, prompts and guidance, for every model family."""

import pytest
import torch

from course_utils.denoisers import ClampX0
from course_utils.models import UNet, UNetConfig, build_denoiser
from course_utils import pretrained
from course_utils.parameterization import WELL_CONDITIONED_ALPHA_BAR
from course_utils.pipeline import DiffusionModel
from course_utils.samplers import DDIMSampler
from course_utils.schedules import get_schedule
from tests.helpers import CAPS, random_weights


@pytest.fixture(scope="module")
def class_model(class_unet):
    return DiffusionModel(class_unet, get_schedule("cosine", 100), info={"name": "test-class", "conditioning": "class"})


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
    # [-1, 1], which a random net at w = 20 makes it do. No clamp at all matches the plain loop (five
    # steps: the model's grid counts down from the last timestep with alpha_bar >= 0.005).
    from course_utils.samplers import DDIMSampler, DDPMSampler

    labels = torch.full((4,), 3)
    top = int((class_model.schedule.alphas_cumprod >= WELL_CONDITIONED_ALPHA_BAR).nonzero().max())
    trailing = {"timestep_spacing": "trailing", "max_timestep": top}
    ours = draw(class_model, labels=labels, guidance_scale=20.0)
    diffusers_style = _loop(class_model, DDIMSampler(class_model.schedule, clip_sample=True, **trailing), labels, 20.0)
    assert not torch.allclose(ours, diffusers_style, atol=1e-3)
    torch.testing.assert_close(draw(class_model, labels=labels, guidance_scale=20.0, clip_sample=False),
                               _loop(class_model, DDIMSampler(class_model.schedule, clip_sample=False, **trailing),
                                     labels, 20.0))
    # DDPM's posterior mean needs only x0 and x_t, so there both clamps are the same.
    torch.testing.assert_close(draw(class_model, labels=labels, guidance_scale=20.0, sampler="ddpm"),
                               _loop(class_model, DDPMSampler(class_model.schedule, clip_sample=True, **trailing),
                                     labels, 20.0), atol=1e-5, rtol=1e-5)


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


def test_flow_model_in_the_pipeline():
    torch.manual_seed(0)
    net = random_weights(UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(), num_classes=10)))
    # random weights: a non-zero velocity field
    model = DiffusionModel(net, None, "flow", info={"name": "f", "conditioning": "class"})
    assert model.is_flow and "flow matching" in repr(model)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model.sample(4, steps=6, labels=[1, 2, 3, 4], generator=g())  # Euler by default
    b = model.sample(4, steps=6, labels=[1, 2, 3, 4], generator=g(), sampler="heun")
    assert a.shape == b.shape == (4, 1, 16, 16) and a.abs().max() <= 1 and not torch.equal(a, b)
    # The consistent clamp: the velocity it returns points at an x0 inside [-1, 1].
    x, t = 3 * torch.randn(2, 1, 16, 16), torch.tensor(500.0)
    v = ClampX0(lambda x_t, t_: torch.randn(2, 1, 16, 16), None, "flow")(x, t)
    assert (x - 0.5 * v).abs().max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="Accepted: 'euler', 'heun'"):
        model.sample(2, sampler="ddim")
    with pytest.raises(ValueError, match="takes schedule=None"):
        DiffusionModel(net, get_schedule("cosine"), "flow")
    with pytest.raises(ValueError, match="needs its noise schedule"):
        DiffusionModel(net, None, "epsilon")


def test_a_student_samples_through_the_pipeline_with_its_own_sampler_only():
    net = build_denoiser("digits-tiny").eval()
    cfg = {"original_inference_steps": 50, "timestep_scaling": 10.0, "min_alpha_bar": 0.005}
    model = DiffusionModel(net, get_schedule("cosine"), info={"name": "tiny student", "method": "consistency"},
                           sampler_config=cfg)
    assert model.is_consistency and model.samplers == ("consistency",) and model.default_sampler == "consistency"
    a = model.sample(3, steps=2, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, steps=2, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 16, 16) and torch.equal(a, b) and a.abs().max() <= 1
    assert not torch.equal(a, model.sample(3, steps=2, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="'consistency'"):
        model.sample(2, sampler="ddim")
    with pytest.raises(ValueError, match="at most original_inference_steps = 50"):
        model.sample(2, steps=60)
    with pytest.raises(ValueError, match="teacher's schedule"):
        DiffusionModel(net, None, prediction_type="flow", info={"method": "consistency"})


def draw_text(model, **kw):
    return model.sample(2, steps=4, generator=torch.Generator().manual_seed(0), **kw)


def test_prompts_and_guidance_change_the_samples(text_model):
    a = draw_text(text_model, prompts=CAPS)
    assert a.shape == (2, 3, 16, 16)
    assert not torch.allclose(a, draw_text(text_model, prompts=CAPS[::-1]))
    assert not torch.allclose(a, draw_text(text_model, prompts=CAPS, guidance_scale=4.0))
    torch.testing.assert_close(draw_text(text_model), draw_text(text_model, prompts=CAPS, guidance_scale=0.0),
                               atol=1e-5, rtol=1e-5)  # no prompt = the empty prompt = w 0


@pytest.mark.parametrize("kw, match", [
    ({"prompts": ["a pink circle on a blue background"] * 2}, "unknown words"),
    ({"prompts": CAPS * 2}, "n = 2"),
    ({"labels": 1}, "class-conditioned"),
])
def test_bad_prompts_are_refused(text_model, kw, match):
    with pytest.raises(ValueError, match=match):
        draw_text(text_model, **kw)


def test_text_model_needs_its_encoder(text_parts):
    with pytest.raises(ValueError, match="text_encoder"):
        DiffusionModel(text_parts[1], get_schedule("cosine", 100), info={"conditioning": "text"})


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


def test_one_step_gives_a_digit_not_noise():
    """With few steps DiffusionModel.sample counts DDIM and DDPM down from the noisy end (trailing
    spacing from t = 953, the last alpha_bar >= 0.005): one step is a blurry digit the classifier reads
    as asked; diffusers' leading spacing would visit only t = 0 and hand back the noise."""
    from course_utils import metrics

    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat_interleave(10)
    for sampler in ("ddim", "ddpm"):
        x = model.sample(100, steps=1, sampler=sampler, labels=labels, generator=torch.Generator().manual_seed(0))
        assert metrics.class_adherence(x, labels) > 0.8  # chance: 0.1
        assert metrics.saturation(x) < 0.5  # a blurry digit, not a saturated blob (near 1; real digits: 0.31)
    noise_like = DDIMSampler(model.schedule)  # diffusers' default spacing, through the same loop
    noise_like.set_timesteps(1)
    assert noise_like.timesteps.tolist() == [0]


def test_make_sampler_is_the_sampler_sample_steps_with(class_model):
    """sample_loop with make_sampler's sampler around the model's own guided, clamped network gives sample's digits."""
    from course_utils.denoisers import WithCondition
    from course_utils.samplers import sample_loop

    labels = torch.tensor([0, 1, 2, 3])
    want = class_model.sample(4, steps=5, labels=labels, guidance_scale=3.0, generator=torch.Generator().manual_seed(2))
    net, condition = class_model._conditioned(4, labels, None, 3.0)
    denoiser = ClampX0(WithCondition(net, class_model.device, **condition), class_model.schedule,
                       class_model.prediction_type)
    sampler = class_model.make_sampler("ddim", 5)
    got = sample_loop(denoiser, sampler, (4, 1, 16, 16), 5, generator=torch.Generator().manual_seed(2)).clamp(-1, 1)
    torch.testing.assert_close(got, want)
    assert sampler is not class_model.make_sampler("ddim", 5)  # a fresh one each time
    with pytest.raises(ValueError, match="sampler"):
        class_model.make_sampler("consistency")
    with pytest.raises(ValueError, match="steps"):
        class_model.make_sampler("ddim", 0)
