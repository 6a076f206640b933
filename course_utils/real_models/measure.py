"""Measurements on the real components: the VAE's scaling factor, a guidance sweep, CLIP scores.

Timing a generation needs nothing new: ``course_utils.profiling.time_call(lambda: text_to_image(...))``
gives the median wall time (CUDA calls synchronised when its ``device`` is given).
"""

from __future__ import annotations

import torch

from .._validation import as_int, check_bool, check_generator, check_images
from ..guidance import check_guidance_scale
from .checks import check_vae
from .pipelines import text_to_image


@torch.no_grad()
def vae_scaling_factor(vae, images, sample: bool = True, generator=None) -> float:
    """``1 / std`` of the encoder's latents for ``images`` ``(B, 3, H, W)`` in [-1, 1]: how 0.18215 was found.

    Source: the latent-diffusion code's ``scale_by_std`` (Rombach et al. 2022, Sec. 4.3.2 and App. G):
    on the first training batch, ``z = encode(x).sample()`` and ``scale_factor = 1 / z.flatten().std()``,
    so the scaled latents ``z * scale_factor`` that diffusion sees have unit variance. With
    ``sample=True`` (their choice) ``z`` is a draw of the posterior (``generator``); ``sample=False`` takes
    its mean (``mode()``), which leaves out the posterior's own spread and gives a larger factor.
    ``latent.latent_scaling_factor`` is the means' reading for the course's own VAE, in batches: what set
    ``shapes-vae``'s factor; this one also reads diffusers' ``AutoencoderKL``.
    """
    check_vae(vae)
    images = check_images(images, "images", value_range=1.0, what="(B, 3, H, W) images in [-1, 1]")
    out = vae.encode(images)
    posterior = out.latent_dist if hasattr(out, "latent_dist") else out  # diffusers, or our DiagonalGaussian
    latents = posterior.sample(check_generator(generator)) if check_bool("sample", sample) else posterior.mode()
    return 1.0 / latents.flatten().std().item()


def guidance_sweep(unet, vae, prompt_embeds, negative_prompt_embeds, sampler, scales, num_inference_steps=25,
                   generator_seed: int = 0, **kwargs) -> dict[float, torch.Tensor]:
    """``{w: images}``: ``text_to_image`` at each guidance scale ``w`` from the same starting noise.

    Every run reseeds ``torch.Generator().manual_seed(generator_seed)`` (on the CPU, so a GPU run draws
    the same numbers), so only ``w`` differs. ``w = 1`` is the conditional model alone, ``w = 0`` the
    unconditional one. ``kwargs`` go to ``text_to_image`` (``height``, ``eta``, ``output_type``...).

    Returns:
        ``{float(w): (B, 3, H, W) images in [0, 1]}`` in the order of ``scales``.
    """
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__"):
        raise TypeError(f"scales must be a list of guidance scales in [0, 50], got {type(scales).__name__}.")
    scales = [check_guidance_scale(w) for w in scales]
    if not scales:
        raise ValueError("scales must list at least one guidance scale, e.g. [1.0, 3.0, 7.5].")
    seed = as_int("generator_seed", generator_seed, minimum=0, what="a seed (an integer >= 0)")
    return {w: text_to_image(unet, vae, prompt_embeds, negative_prompt_embeds, sampler, num_inference_steps, w,
                             generator=torch.Generator().manual_seed(seed), **kwargs) for w in scales}


@torch.no_grad()
def clip_scores(scorer, images, prompts) -> torch.Tensor:
    """``(B,)`` CLIP scores ``100 cos(image, text)`` of ``images`` ``(B, 3, H, W)`` in [0, 1] (the pipelines'
    output) against ``prompts`` (one, or one per image), with a ``models.clip.CLIPScorer``: a real CLIP
    (``CLIPScorer.from_pretrained()``, online) or a small offline one."""
    if not hasattr(scorer, "score"):
        raise TypeError(f"scorer must be a course_utils.models.clip.CLIPScorer, got {type(scorer).__name__}.")
    images = check_images(images, "images", value_range=None, what="(B, 3, H, W) images in [0, 1]")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"images must lie in [0, 1] (text_to_image's output), got {images.min().item():.3g} to "
                         f"{images.max().item():.3g}.")
    return scorer.score(images * 2 - 1, prompts)  # the scorer reads [-1, 1]
