"""Stable Diffusion's loop written with the package's pieces (course_utils.real_models.pipelines) equals
diffusers' pipelines number for number, on tiny random components of the real classes; offline."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,  # noqa: E402
                       EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline)

from course_utils.models.clip import CLIPScorer, TinyCLIP  # noqa: E402
from course_utils.profiling import time_call  # noqa: E402
from course_utils.real_models.measure import clip_scores, guidance_sweep, vae_scaling_factor  # noqa: E402
from course_utils.real_models.online import (DownloadRequired, components_of, describe_download,  # noqa: E402
                                             load_few_step_pipeline, load_sd_pipeline)
from course_utils.real_models.pipelines import (encode_image, encode_prompt, get_timesteps, img2img,  # noqa: E402
                                                inpaint, latent_mask, text_to_image)
from course_utils.real_models.tiny import SD15_SCHEDULER_CONFIG, tiny_sd_components, tiny_sd_pipeline  # noqa: E402
from course_utils.samplers import DDIMSampler  # noqa: E402

STEPS = 8
PROMPTS = ["a red circle", "a blue square on a white background"]
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
SCHEDULERS = {  # each as a Stable Diffusion user builds it: SD 1.5's config, or the class's defaults with SD's betas
    "ddim": lambda: DDIMScheduler(**SD15_SCHEDULER_CONFIG),
    "ddpm": lambda: DDPMScheduler.from_config(SD15_SCHEDULER_CONFIG),
    # steps_offset=1: StableDiffusionPipeline rewrites any other value to 1 (with a FutureWarning); the
    # default "linspace" spacing does not read it
    "dpm_solver++": lambda: DPMSolverMultistepScheduler(**SD_BETAS, steps_offset=1),
    "euler": lambda: EulerDiscreteScheduler.from_config(SD15_SCHEDULER_CONFIG),
}


def seeded(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def diffusers_pipe(cls, pipe, scheduler):
    """A diffusers pipeline of class ``cls`` over the tiny pipeline's modules, with its own scheduler."""
    out = cls(**{**pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    out.set_progress_bar_config(disable=True)
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: the tiny models gain nothing from more, and on a busy 2-core machine threads that wait
    for each other made single calls a hundred times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd_pipeline(seed=0)


@pytest.fixture(scope="module")
def parts(pipe):
    """``(unet, vae, prompt_embeds, negative_prompt_embeds)`` for two prompts."""
    embeds = encode_prompt(pipe.tokenizer, pipe.text_encoder, PROMPTS)
    negative = encode_prompt(pipe.tokenizer, pipe.text_encoder, [""] * len(PROMPTS))
    return pipe.unet, pipe.vae, embeds, negative


@pytest.fixture(scope="module")
def images():
    """``(2, 3, 32, 32)`` in [0, 1] and a mask ``(2, 1, 32, 32)``: repaint a 16x16 square (not aligned the
    same in both), 1 = repaint."""
    image = torch.rand(2, 3, 32, 32, generator=seeded(1))
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 8:24, 8:24] = 1
    mask[1, :, 0:16, 10:30] = 0.7  # binarised to 1 (>= 0.5), as diffusers' mask processor does
    return image, mask


# --- the tiny components ---------------------------------------------------------------------------------

def test_the_tiny_pipeline_generates_from_a_prompt_offline_and_our_loop_gives_the_same_image(pipe):
    ref = pipe(prompt="a red circle", num_inference_steps=STEPS, output_type="pt", generator=seeded()).images
    embeds = encode_prompt(pipe.tokenizer, pipe.text_encoder, "a red circle")  # (1, 77, 32)
    negative = encode_prompt(pipe.tokenizer, pipe.text_encoder, "")
    ours = text_to_image(pipe.unet, pipe.vae, embeds, negative, DDIMScheduler(**SD15_SCHEDULER_CONFIG), STEPS,
                         generator=seeded())
    assert embeds.shape == (1, 77, 32) and ref.shape == ours.shape == (1, 3, 32, 32)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)
    assert 0.05 < float(ours.std()) and float((ours == 0).float().mean() + (ours == 1).float().mean()) < 0.05


def test_tiny_components_are_seeded_and_leave_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = tiny_sd_components(0), tiny_sd_components(0), tiny_sd_components(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in ("unet", "vae", "text_encoder"):
        wa, wb, wc = (next(iter(x[name].state_dict().values())) for x in (a, b, c))
        assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    tok = a["tokenizer"]
    ids = tok(["a red circle", "Ünïcode & digits 42!"], padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids
    assert tok.model_max_length == 77 and ids.shape == (2, 77) and int(ids.max()) < a["text_encoder"].config.vocab_size
    assert tok.convert_ids_to_tokens(ids[0, :4].tolist()) == ["<|startoftext|>", "a</w>", "red</w>", "circle</w>"]
    assert a["scheduler"].config.steps_offset == 1 and a["scheduler"].config.beta_schedule == "scaled_linear"


def test_encode_prompt_is_the_pipelines_encode_prompt(pipe, parts):
    ref, ref_negative = pipe.encode_prompt(PROMPTS, "cpu", 1, True, [""] * len(PROMPTS))
    assert torch.equal(parts[2], ref) and torch.equal(parts[3], ref_negative)


# --- text to image ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_text_to_image_equals_stable_diffusion_pipeline(pipe, parts, name):
    """DDPM and the Euler and DPM-Solver++ samplers draw noise in step: the same generator gives the same draws."""
    unet, vae, embeds, negative = parts
    ref_pipe = diffusers_pipe(StableDiffusionPipeline, pipe, SCHEDULERS[name]())
    for output_type in ("pt", "np") if name == "ddim" else ("pt",):
        ref = ref_pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=STEPS,
                       output_type=output_type, generator=seeded()).images
        ours = text_to_image(unet, vae, embeds, negative, SCHEDULERS[name](), STEPS, guidance_scale=7.5,
                             generator=seeded(), output_type=output_type)
        assert type(ours) is type(ref) and ours.shape == ref.shape == ((2, 3, 32, 32) if output_type == "pt"
                                                                         else (2, 32, 32, 3))
        np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-5, rtol=0)


def test_a_given_starting_noise_and_latent_output_match_the_pipeline(pipe, parts):
    unet, vae, embeds, negative = parts
    noise = torch.randn(2, 4, 16, 16, generator=seeded(5))
    ref = diffusers_pipe(StableDiffusionPipeline, pipe, SCHEDULERS["euler"]())(
        prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=4, latents=noise,
        output_type="latent").images
    ours = text_to_image(unet, vae, embeds, negative, SCHEDULERS["euler"](), 4, latents=noise, output_type="latent")
    assert ours.shape == (2, 4, 16, 16) and torch.allclose(ours, ref, atol=1e-5, rtol=0)


def test_the_packages_ddim_sampler_runs_stable_diffusion_as_diffusers_ddim_does(pipe, parts, images):
    # SD 1.5's own scheduler config (steps_offset=1, set_alpha_to_one=False) read by from_config
    unet, vae, embeds, negative = parts
    reference = SD15_SCHEDULER_CONFIG
    ours = DDIMSampler.from_config(reference)
    ref = text_to_image(unet, vae, embeds, negative, DDIMScheduler(**reference), STEPS, generator=seeded())
    got = text_to_image(unet, vae, embeds, negative, ours, STEPS, generator=seeded())
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)
    ref = img2img(unet, vae, images[0], embeds, negative, DDIMScheduler(**reference), 0.5, STEPS, generator=seeded())
    got = img2img(unet, vae, images[0], embeds, negative, ours, 0.5, STEPS, generator=seeded())
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)


# --- img2img and inpainting --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, strength", [("ddim", 1.0), ("ddim", 0.5), ("ddim", 0.125),  # 0.125 of 8: one step
                                            ("euler", 0.5), ("ddpm", 0.5)])  # set_begin_index; noise in step
def test_img2img_equals_the_img2img_pipeline(pipe, parts, images, name, strength):
    unet, vae, embeds, negative = parts
    ref = diffusers_pipe(StableDiffusionImg2ImgPipeline, pipe, SCHEDULERS[name]())(
        prompt_embeds=embeds, negative_prompt_embeds=negative, image=images[0], strength=strength,
        num_inference_steps=STEPS, output_type="pt", generator=seeded()).images
    ours = img2img(unet, vae, images[0], embeds, negative, SCHEDULERS[name](), strength, STEPS, generator=seeded())
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)


def test_img2img_keeps_the_last_strength_fraction_of_the_timesteps():
    sampler = SCHEDULERS["euler"]()
    assert get_timesteps(sampler, 10, 1.0).tolist() == sampler.timesteps.tolist()
    assert get_timesteps(sampler, 10, 0.35).tolist() == sampler.timesteps[7:].tolist() and sampler.begin_index == 7
    for strength, message in [(0.0, r"strength must lie in \(0, 1\]"), (1.5, "strength"), (-0.2, "strength"),
                              (0.05, "strength \\* num_inference_steps must be at least 1")]:
        with pytest.raises(ValueError, match=message):
            get_timesteps(sampler, 10, strength)
    with pytest.raises(TypeError, match="strength"):
        get_timesteps(sampler, 10, "0.5")


@pytest.mark.parametrize("name, strength", [("ddim", 1.0), ("ddim", 0.5), ("euler", 1.0)])
def test_inpaint_equals_the_inpainting_pipeline_with_a_4_channel_unet(pipe, parts, images, name, strength):
    """Samplers without step noise only: the pipeline spends one more draw of the generator (``inpaint``'s doc)."""
    unet, vae, embeds, negative = parts
    ref = diffusers_pipe(StableDiffusionInpaintPipeline, pipe, SCHEDULERS[name]())(
        prompt_embeds=embeds, negative_prompt_embeds=negative, image=images[0], mask_image=images[1],
        strength=strength, num_inference_steps=STEPS, height=32, width=32, output_type="pt",
        generator=seeded()).images
    ours = inpaint(unet, vae, *images, embeds, negative, SCHEDULERS[name](), STEPS, strength=strength,
                   generator=seeded())
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)


def test_inpainting_ends_on_the_images_latents_outside_the_mask_and_changes_them_inside(parts, images):
    unet, vae, embeds, negative = parts
    latents = inpaint(unet, vae, *images, embeds, negative, SCHEDULERS["dpm_solver++"](), 4, generator=seeded(),
                      output_type="latent")
    known = encode_image(vae, images[0], seeded())  # the encoder's draw comes first from the generator
    repaint = latent_mask(images[1], (16, 16)).bool().expand_as(latents)
    assert repaint.any() and (~repaint).any()
    assert torch.equal(latents[~repaint], known[~repaint])
    assert (latents[repaint] - known[repaint]).abs().min() > 0


# --- measurements -------------------------------------------------------------------------------------------

def test_the_vae_scaling_factor_is_one_over_the_latents_std(pipe, images):
    x = images[0] * 2 - 1
    factor = vae_scaling_factor(pipe.vae, x, generator=seeded())
    with torch.no_grad():
        latents = pipe.vae.encode(x).latent_dist.sample(seeded())
    assert factor == pytest.approx(1 / float(latents.std()), rel=1e-6)
    assert float((latents * factor).std()) == pytest.approx(1.0, rel=1e-5)
    assert vae_scaling_factor(pipe.vae, x, sample=False) > factor  # the mean leaves out the posterior's spread
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        vae_scaling_factor(pipe.vae, x * 3)


def test_guidance_sweep_gives_one_image_per_scale_and_w_1_is_the_conditional_run(pipe, parts):
    unet, vae, embeds, negative = parts
    sampler = SCHEDULERS["ddim"]()
    sweep = guidance_sweep(unet, vae, embeds, negative, sampler, [0.0, 1.0, 7.5], num_inference_steps=4,
                           generator_seed=3)
    assert list(sweep) == [0.0, 1.0, 7.5] and all(x.shape == (2, 3, 32, 32) for x in sweep.values())
    conditional = text_to_image(unet, vae, embeds, None, sampler, 4, guidance_scale=1.0, generator=seeded())
    assert torch.equal(sweep[1.0], conditional)
    ref = diffusers_pipe(StableDiffusionPipeline, pipe, SCHEDULERS["ddim"]())(
        prompt_embeds=embeds, guidance_scale=1.0, num_inference_steps=4, output_type="pt", generator=seeded()).images
    assert torch.allclose(sweep[1.0], ref, atol=1e-5, rtol=0)
    assert torch.equal(sweep[7.5], text_to_image(unet, vae, embeds, negative, sampler, 4, generator=seeded()))
    unconditional = text_to_image(unet, vae, negative, None, sampler, 4, guidance_scale=1.0, generator=seeded())
    assert torch.allclose(sweep[0.0], unconditional, atol=1e-5, rtol=0)  # w = 0: the unconditional model
    assert not torch.allclose(sweep[0.0], sweep[7.5], atol=1e-3)
    seconds = time_call(lambda: text_to_image(unet, vae, embeds, negative, sampler, 2, generator=seeded()),
                        repeats=1, warmup=0)
    assert seconds > 0


def test_clip_scores_read_the_pipelines_images_in_0_1(parts):
    torch.manual_seed(0)
    scorer = CLIPScorer(TinyCLIP())
    images = torch.rand(2, 3, 32, 32, generator=seeded(2))
    captions = ["a red circle on a blue background", "a green square on a white background"]
    scores = clip_scores(scorer, images, captions)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert torch.allclose(scores, scorer.score(images * 2 - 1, captions))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clip_scores(scorer, images * 2 - 1, captions)
    with pytest.raises(TypeError, match="CLIPScorer"):
        clip_scores(object(), images, captions)


# --- the online path, offline --------------------------------------------------------------------------------

def test_the_loaders_refuse_to_download_and_say_what_and_how_much(tmp_path):
    empty = tmp_path / "empty-cache"
    with pytest.raises(DownloadRequired) as info:
        load_sd_pipeline(cache_dir=empty)
    text = str(info.value)
    assert "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5" in text
    assert "about 4.3 GB in float32" in text and "about 2.1 GB" in text and "download=True" in text
    with pytest.raises(DownloadRequired, match="about 2.6 GB in float16"):
        load_few_step_pipeline(dtype=torch.float16, cache_dir=empty)
    assert "size this course has not recorded" in describe_download("someone/some-model")
    with pytest.raises(ValueError, match="dtype"):
        describe_download("stabilityai/sd-turbo", dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="download must be True or False"):
        load_sd_pipeline(download="yes")


def test_a_saved_pipeline_loads_through_the_same_path_and_generates_the_same(pipe, parts, tmp_path):
    pipe.save_pretrained(tmp_path / "tiny-sd")
    loaded = load_sd_pipeline(tmp_path / "tiny-sd")  # a local folder: no download needed
    c = components_of(loaded)
    assert sorted(c) == ["scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    embeds = encode_prompt(c["tokenizer"], c["text_encoder"], PROMPTS)
    assert torch.equal(embeds, parts[2])
    negative = encode_prompt(c["tokenizer"], c["text_encoder"], [""] * 2)
    got = text_to_image(c["unet"], c["vae"], embeds, negative, c["scheduler"], 4, generator=seeded())
    want = text_to_image(parts[0], parts[1], parts[2], parts[3], SCHEDULERS["ddim"](), 4, generator=seeded())
    assert torch.equal(got, want)
    with pytest.raises(TypeError, match="lacks"):
        components_of(object())


# --- bad input ---------------------------------------------------------------------------------------------

def test_bad_arguments_are_refused_naming_the_argument(parts, images):
    unet, vae, embeds, negative = parts
    ddim = SCHEDULERS["ddim"]()

    def run(**changes):
        kwargs = dict(unet=unet, vae=vae, prompt_embeds=embeds, negative_prompt_embeds=negative, sampler=ddim,
                      num_inference_steps=2) | changes
        return text_to_image(**kwargs)

    for changes, error, message in [
        (dict(guidance_scale=-1.0), ValueError, "guidance_scale"),
        (dict(guidance_scale=float("nan")), ValueError, "guidance_scale"),
        (dict(guidance_scale="7.5"), TypeError, "guidance_scale"),
        (dict(num_inference_steps=0), ValueError, "num_inference_steps"),
        (dict(num_inference_steps=2.5), TypeError, "num_inference_steps"),
        (dict(negative_prompt_embeds=None), ValueError, "needs negative_prompt_embeds"),
        (dict(negative_prompt_embeds=negative[:1]), ValueError, "negative_prompt_embeds must have"),
        (dict(prompt_embeds=embeds[..., :16], negative_prompt_embeds=negative[..., :16]), ValueError,
         "cross_attention_dim 32"),
        (dict(prompt_embeds=embeds[0]), ValueError, "prompt_embeds must be a"),
        (dict(sampler=DDIMScheduler), TypeError, "sampler"),
        (dict(sampler="ddim"), TypeError, "sampler"),
        (dict(vae=unet), TypeError, "vae"),
        (dict(generator=3), TypeError, "generator"),
        (dict(output_type="pil"), ValueError, "output_type"),
        (dict(height=31), ValueError, "height must be a multiple"),
        (dict(latents=torch.zeros(2, 4, 8, 8)), ValueError, "latents must be"),
        (dict(sampler=SCHEDULERS["euler"](), eta=0.5), ValueError, "eta"),
        (dict(eta=2.0), ValueError, "eta"),
    ]:
        with pytest.raises(error, match=message):
            run(**changes)
    image, mask = images
    for args, message in [((image * 2 - 1, mask), r"image must hold values in \[0, 1\]"),
                          ((image[:1], mask), r"image must be a \(2, 3, H, W\)"),
                          ((image, mask[..., :16]), "mask must have the image's height and width"),
                          ((image, mask.expand(2, 3, 32, 32)), r"mask must be a \(2, 1, H, W\)"),
                          ((image[..., :31, :31], mask[..., :31, :31]), "multiples of the VAE's factor 2")]:
        with pytest.raises(ValueError, match=message):
            inpaint(unet, vae, *args, embeds, negative, ddim, 2)
    with pytest.raises(TypeError, match="prompts must be"):
        encode_prompt(None, None, [])
    with pytest.raises(TypeError, match="scales"):
        guidance_sweep(unet, vae, embeds, negative, ddim, 7.5)
