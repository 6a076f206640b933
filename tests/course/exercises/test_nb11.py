"""course_utils.course.exercises.nb11: Stable Diffusion's loop as a build; a text encoder's parameters, the latent
shape and a generation's FLOPs as exercises; the pixels-against-latents question."""

import re

import pytest
import torch

from course_utils import real_models
from course_utils.course.exercises import ExerciseFailed, nb11
from course_utils.real_models.pipelines import text_to_image
from course_utils.real_models.tiny import tiny_sd_components
from course_utils.samplers import DDIMSampler


def loop(order="uncond first", scale_input=True, guide=True, steps_once=True):
    """A learner's loop with one part swapped for a known slip."""
    def fn(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, w):
        embeds = torch.cat([negative_prompt_embeds, prompt_embeds] if order == "uncond first"
                           else [prompt_embeds, negative_prompt_embeds])
        for t in sampler.timesteps:
            x = torch.cat([latents] * 2)
            x = sampler.scale_model_input(x, t) if scale_input else x
            a, b = unet(x, t, encoder_hidden_states=embeds).sample.chunk(2)
            uncond, text = (a, b) if order == "uncond first" else (b, a)
            if order == "swapped halves":
                uncond, text = text, uncond
            eps = uncond + w * (text - uncond) if guide else text
            latents = sampler.step(eps, t, latents).prev_sample
            if not steps_once:
                sampler.step(eps, t, latents)  # a stray second call: a multistep solver's memory moves on
        return latents
    return fn


def test_the_reference_loop_and_a_batch_in_the_other_order_are_correct(stub):
    assert nb11.check_sd_loop(loop()).correct
    assert nb11.check_sd_loop(loop(order="text first")).correct  # the halves travel together: same result
    assert nb11.check_sd_loop(stub).status == "not attempted"


@pytest.mark.parametrize("slip, match", [
    (dict(scale_input=False), "Euler's network input is x / sqrt"),
    (dict(guide=False), "eps_uncond \\+ w"),
    (dict(order="swapped halves"), "eps_uncond \\+ w"),
])
def test_each_slip_is_incorrect_with_its_hint(slip, match):
    result = nb11.check_sd_loop(loop(**slip))
    assert result.status == "incorrect" and re.search(match, result.message), result.message


def test_a_loop_that_steps_twice_fails_the_multistep_stage():
    result = nb11.check_sd_loop(loop(steps_once=False))
    assert result.status == "incorrect"


def test_the_package_loop_and_generate_match_the_pipeline():
    parts = tiny_sd_components(seed=0)
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g)
    ours = nb11.generate(loop(), parts, cond, uncond, DDIMSampler.from_config(nb11.SD15_SCHEDULER_CONFIG), 5, 7.5)
    package = nb11.generate(nb11.sd_loop, parts, cond, uncond, DDIMSampler.from_config(nb11.SD15_SCHEDULER_CONFIG), 5,
                            7.5)
    torch.testing.assert_close(ours, package, atol=1e-5, rtol=1e-5)
    pipeline = text_to_image(parts["unet"], parts["vae"], cond, uncond,
                             DDIMSampler.from_config(nb11.SD15_SCHEDULER_CONFIG), 5, 7.5,
                             generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(package, pipeline, atol=1e-5, rtol=1e-5)  # the same noise, loop and decode


# --- Exercise 1 -------------------------------------------------------------------------------------


def test_clip_params_reference_matches_sd15s_published_count():
    assert nb11.clip_text_params(*nb11.CLIP_CONFIGS["SD 1.5's (CLIP ViT-L/14)"]) == 123_060_480
    assert nb11.check_clip_params(nb11.clip_text_params).correct


@pytest.mark.parametrize("drop, hint", [("biases", "bias vector"), ("position", "per position"),
                                        ("layer_norms", "two LayerNorms"), ("final_norm", "one more LayerNorm")])
def test_clip_params_slips_get_their_hints(drop, hint):
    result = nb11.check_clip_params(lambda *a: nb11.clip_text_params(*a, **{drop: False}))
    assert result.status == "incorrect" and hint in result.message


# --- Exercise 2 -------------------------------------------------------------------------------------


def right_shape(h, w, cfg):
    f = 2 ** (len(cfg["block_out_channels"]) - 1)
    return (cfg["latent_channels"], h // f, w // f)


def test_latent_shape_is_checked_against_the_real_encoders():
    assert nb11.measured_latent_shape("sdxl", 1024, 1024) == (4, 128, 128)
    assert nb11.measured_latent_shape("sd3-medium", 1024, 1024) == (16, 128, 128)
    assert nb11.check_latent_shape(right_shape).correct


@pytest.mark.parametrize("fn, hint", [
    (lambda h, w, cfg: (4, h // 8, w // 8), "latent_channels"),
    (lambda h, w, cfg: (cfg["latent_channels"], h // 4, w // 4), "2 \\*\\* \\(k - 1\\)"),
    (lambda h, w, cfg: (cfg["latent_channels"], w // 8, h // 8), "Height first"),
])
def test_latent_shape_slips(fn, hint):
    result = nb11.check_latent_shape(fn)
    assert result.status == "incorrect" and re.search(hint, result.message), result.message


# --- Exercise 3 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anatomies():
    return {n: real_models.anatomy(n) for n in ("sd15", "sdxl")}


def test_generation_flops_reference_and_slips(anatomies, monkeypatch):
    assert nb11.check_generation_flops(nb11.generation_flops, anatomies).correct
    for flags, hint in ((dict(cfg_batch=False), "batch of 2"), (dict(vae=False), "VAE decode"),
                        (dict(text_passes=False), "text encoder")):
        result = nb11.check_generation_flops(lambda p, s, g, f=flags: nb11.generation_flops(p, s, g, **f), anatomies)
        assert result.status == "incorrect" and hint in result.message
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb11.check_generation_flops(lambda p, s, g: 0, anatomies)


def test_pixel_question_has_one_right_option(answer):
    box = nb11.ask_pixel_ratio(679.0)
    assert answer(box, box.field.options[0]).correct
    for wrong in box.field.options[1:]:
        assert answer(box, wrong).status == "incorrect"
