"""Our samplers as the ``scheduler`` of diffusers' own pipelines (issue 33's parity): with the same seed,
a pipeline with ours draws the image it draws with the matching diffusers scheduler. Tiny random
pipelines of the real classes, built here; no download."""

import diffusers
import pytest
import torch

from course_utils.real_models.tiny import SD15_SCHEDULER_CONFIG, tiny_sd_components
from course_utils.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, EulerSampler, HeunSampler

PAIRS = {"ddim": (DDIMSampler, diffusers.DDIMScheduler), "ddpm": (DDPMSampler, diffusers.DDPMScheduler),
         "dpmsolver++": (DPMSolverSampler, diffusers.DPMSolverMultistepScheduler),
         "euler": (EulerSampler, diffusers.EulerDiscreteScheduler), "heun": (HeunSampler, diffusers.HeunDiscreteScheduler)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models gain nothing from more, and the file shares the machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parts():
    p = tiny_sd_components(seed=0)
    g = torch.Generator().manual_seed(0)
    p["embeds"], p["negative"] = torch.randn(1, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g) * 0.1
    p["image"] = torch.rand(1, 3, 32, 32, generator=g)
    p["mask"] = torch.zeros(1, 1, 32, 32)
    p["mask"][..., 8:24, 8:24] = 1
    return p


def _pipeline(cls, parts, scheduler):
    pipe = cls(unet=parts["unet"], vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
               scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _both(cls, parts, name, **call):
    """The pipeline's images with diffusers' scheduler and with ours, each built from SD 1.5's config."""
    ours, theirs = PAIRS[name]
    out = []
    for scheduler in (theirs.from_config(SD15_SCHEDULER_CONFIG), ours.from_config(SD15_SCHEDULER_CONFIG)):
        pipe = _pipeline(cls, parts, scheduler)
        out.append(pipe(prompt_embeds=parts["embeds"], negative_prompt_embeds=parts["negative"], num_inference_steps=6,
                        generator=torch.Generator().manual_seed(1), output_type="pt", **call).images)
    return out


@pytest.mark.parametrize("name", list(PAIRS))
def test_text_to_image_pipeline_with_our_sampler_draws_diffusers_image(parts, name):
    theirs, ours = _both(diffusers.StableDiffusionPipeline, parts, name)
    assert (ours - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpmsolver++", "euler"])
def test_img2img_pipeline_with_our_sampler(parts, name):
    # starts midway: add_noise at the first kept timestep, and set_begin_index for the samplers that keep state
    theirs, ours = _both(diffusers.StableDiffusionImg2ImgPipeline, parts, name, image=parts["image"], strength=0.5)
    assert (ours - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "euler"])
def test_inpainting_pipeline_with_our_sampler(parts, name):
    theirs, ours = _both(diffusers.StableDiffusionInpaintPipeline, parts, name, image=parts["image"],
                         mask_image=parts["mask"], strength=1.0)
    assert (ours - theirs).abs().max() <= 1e-4


@pytest.fixture(scope="module")
def pixel_unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                                 layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8).eval()


def test_ddpm_pipeline_with_our_sampler(pixel_unet):
    images = []
    for scheduler in (diffusers.DDPMScheduler(), DDPMSampler.from_config(diffusers.DDPMScheduler().config)):
        pipe = diffusers.DDPMPipeline(unet=pixel_unet, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        images.append(pipe(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0),
                           output_type="np").images)
    assert abs(images[0] - images[1]).max() <= 1e-4


def test_ddim_pipeline_with_our_sampler_swapped_in(pixel_unet):
    # DDIMPipeline converts what it is built with to a DDIMScheduler; swapping ours in afterwards keeps ours,
    # and its step takes the pipeline's eta and use_clipped_model_output
    pipe = diffusers.DDIMPipeline(unet=pixel_unet, scheduler=diffusers.DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    images = []
    for scheduler in (pipe.scheduler, DDIMSampler.from_config(pipe.scheduler.config)):
        pipe.scheduler = scheduler
        images.append(pipe(batch_size=2, num_inference_steps=10, eta=0.5, use_clipped_model_output=True,
                           generator=torch.Generator().manual_seed(0), output_type="np").images)
    assert isinstance(pipe.scheduler, DDIMSampler)
    assert abs(images[0] - images[1]).max() <= 1e-4
