"""Stable Diffusion's generation loop, written with the package's pieces and run on the real components.

One loop, ``denoise``, is what ``diffusers.StableDiffusionPipeline.__call__`` runs between its prompt
encoding and its VAE decoding; ``text_to_image``, ``img2img`` and ``inpaint`` differ only in where it
starts (pure noise, or a partly noised image) and in what happens after each step (inpainting puts
the known region back). Each follows the diffusers file it names, step for step, with any sampler
that has the sampler protocol (``samplers.base.Sampler``: ours, or a diffusers scheduler), the
package's ``guidance.guide`` for classifier-free guidance and ``randn_like_diffusers`` for noise, so
that with the same scheduler and seed the images equal the pipeline's.

Shapes: prompts -> ``(B, 77, D)`` embeddings (SD 1.5: D = 768); latents ``(B, 4, H / f, W / f)`` with
``f`` the VAE's downsampling factor (SD: 8); images ``(B, 3, H, W)`` in [0, 1] (diffusers' tensors).

One difference from diffusers, on purpose: diffusers runs classifier-free guidance only for
``guidance_scale > 1`` and silently samples the conditional model below it; here ``w = 0`` is the
unconditional model and ``0 < w < 1`` interpolates (the package's meaning, ``guidance.py``). ``w = 1``
runs the conditional model alone in both (one pass of the batch).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from .._validation import as_float, check_choice, check_generator, check_positive_int
from ..guidance import check_guidance_scale, guide
from ..samplers.base import randn_like_diffusers
from .checks import check_embeds, check_pixels, check_sampler, check_vae, model_device, output_shape, spatial_factor

OUTPUT_TYPES = ("pt", "np", "latent")


@torch.no_grad()
def encode_prompt(tokenizer, text_encoder, prompts) -> torch.Tensor:
    """Prompts -> ``(B, 77, D)``: the text encoder's last hidden state (after its final layer norm),
    the tokens padded with the tokenizer's pad token to ``model_max_length`` and truncated there.

    Source: ``StableDiffusionPipeline.encode_prompt`` with ``clip_skip=None`` (SD 1.5). The negative
    prompt is the same call: ``encode_prompt(tokenizer, text_encoder, [""] * B)``.
    """
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a string or a non-empty list of strings, got {prompts!r:.80}.")
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # (B, 77)
    return text_encoder(ids.to(model_device(text_encoder)))[0]  # (B, 77, D)


def _step_kwargs(sampler, generator, eta) -> dict:
    """``eta`` and ``generator`` for ``sampler.step``, each where the step takes it (diffusers'
    ``prepare_extra_step_kwargs``); an ``eta`` for a sampler without one is refused, not dropped."""
    params = inspect.signature(sampler.step).parameters
    kwargs = {"generator": generator} if "generator" in params else {}
    if eta is not None:
        if "eta" not in params:
            raise ValueError(f"eta is a DDIM option; {type(sampler).__name__}.step takes none. Pass eta=None.")
        kwargs["eta"] = as_float("eta", eta, 0, 1, note="0: deterministic DDIM, 1: DDPM-like")
    return kwargs


def _predict(unet, x: torch.Tensor, t, embeds: torch.Tensor) -> torch.Tensor:
    out = unet(x, t, encoder_hidden_states=embeds)
    return out.sample if hasattr(out, "sample") else out  # diffusers' UNet2DConditionOutput, or a tensor


@torch.no_grad()
def denoise(unet, latents, timesteps, sampler, prompt_embeds, negative_prompt_embeds=None, guidance_scale=7.5,
            generator=None, eta=None, after_step=None) -> torch.Tensor:
    """The reverse process over ``timesteps``: the loop of ``StableDiffusionPipeline.__call__``.

    At each ``t``: the latents twice (unconditional first, as diffusers), ``sampler.scale_model_input``,
    one U-Net call on the ``2B`` batch, ``guide(eps_uncond, eps_text, w)``, ``sampler.step``; with
    ``w = 1`` one call on the ``B`` latents with the prompt alone.

    Args:
        latents: ``(B, 4, h, w)`` the starting latents (already times ``init_noise_sigma``).
        timesteps: the sampler's ``.timesteps`` or a tail of them (img2img).
        prompt_embeds, negative_prompt_embeds: ``(B, 77, D)`` each.
        after_step: ``after_step(i, t, latents) -> latents``, run after step ``i`` (inpainting's hook).

    Returns:
        ``(B, 4, h, w)`` the final latents (scaled: divide by ``vae.config.scaling_factor`` to decode).
    """
    w = check_guidance_scale(guidance_scale)
    check_sampler(sampler)
    check_embeds(unet, prompt_embeds, negative_prompt_embeds, w)
    step_kwargs = _step_kwargs(sampler, check_generator(generator), eta)
    guided = w != 1.0
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds]) if guided else prompt_embeds  # (2B or B, 77, D)
    for i, t in enumerate(timesteps):
        x = torch.cat([latents] * 2) if guided else latents  # (2B or B, 4, h, w)
        eps = _predict(unet, sampler.scale_model_input(x, t), t, embeds)
        if guided:
            eps_uncond, eps_text = eps.chunk(2)
            eps = guide(eps_uncond, eps_text, w)  # (B, 4, h, w)
        latents = sampler.step(eps, t, latents, **step_kwargs).prev_sample
        if after_step is not None:
            latents = after_step(i, t, latents)
    return latents


def _output(vae, latents: torch.Tensor, output_type: str):
    """``latents`` decoded to ``(B, 3, H, W)`` in [0, 1] (``"pt"``), ``(B, H, W, 3)`` numpy (``"np"``), or
    returned as they are (``"latent"``); diffusers' decode and ``VaeImageProcessor.postprocess``."""
    if output_type == "latent":
        return latents
    out = vae.decode(latents / vae.config.scaling_factor)
    image = ((out.sample if hasattr(out, "sample") else out) / 2 + 0.5).clamp(0, 1)  # [-1, 1] -> [0, 1]
    return image if output_type == "pt" else image.cpu().permute(0, 2, 3, 1).float().numpy()


def _check_run(unet, vae, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale, num_inference_steps,
               generator, eta, output_type) -> None:
    """The arguments every generation takes (each function checks its own on top)."""
    check_sampler(sampler)
    _step_kwargs(sampler, generator, eta)
    check_vae(vae)
    check_embeds(unet, prompt_embeds, negative_prompt_embeds, check_guidance_scale(guidance_scale))
    check_positive_int("num_inference_steps", num_inference_steps)
    check_generator(generator)
    check_choice("output_type", output_type, OUTPUT_TYPES)


@torch.no_grad()
def text_to_image(unet, vae, prompt_embeds, negative_prompt_embeds, sampler, num_inference_steps=50,
                  guidance_scale=7.5, generator=None, height=None, width=None, latents=None, eta=None,
                  output_type="pt"):
    """Stable Diffusion's text-to-image generation (``StableDiffusionPipeline.__call__``).

    ``set_timesteps``; noise ``(B, 4, H / f, W / f)`` drawn as ``randn_tensor`` draws it (on the
    generator's device, in ``prompt_embeds``' dtype) times ``init_noise_sigma``; ``denoise``; decode.

    Args:
        prompt_embeds, negative_prompt_embeds: ``(B, 77, D)`` (``encode_prompt``); the negative one may be
            None when ``guidance_scale == 1``.
        sampler: ours or a diffusers scheduler.
        guidance_scale: ``w`` in [0, 50] (module docstring for ``w <= 1``).
        height, width: pixels, multiples of ``f`` (default: the U-Net's ``sample_size`` times ``f``).
        latents: ``(B, 4, H / f, W / f)`` starting noise instead of a draw (scaled by ``init_noise_sigma``).
        eta: DDIM's eta (None: the sampler's default, 0 for DDIM).
        output_type: ``"pt"``, ``"np"`` or ``"latent"`` (``_output``).
    """
    _check_run(unet, vae, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale, num_inference_steps,
               generator, eta, output_type)
    device, shape = model_device(unet), output_shape(unet, vae, len(prompt_embeds), height, width)
    sampler.set_timesteps(num_inference_steps, device=device)
    if latents is None:
        latents = randn_like_diffusers(shape, generator, torch.empty(0, device=device, dtype=prompt_embeds.dtype))
    elif not isinstance(latents, torch.Tensor) or tuple(latents.shape) != shape:
        raise ValueError(f"latents must be a tensor of shape {shape} (B, C, H / f, W / f), got "
                         f"{tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__}.")
    latents = latents.to(device) * sampler.init_noise_sigma
    latents = denoise(unet, latents, sampler.timesteps, sampler, prompt_embeds, negative_prompt_embeds,
                      guidance_scale, generator, eta)
    return _output(vae, latents, output_type)


def get_timesteps(sampler, num_inference_steps, strength, device=None) -> torch.Tensor:
    """The last ``strength`` fraction of ``num_inference_steps`` timesteps: where img2img starts.

    Source: ``StableDiffusionImg2ImgPipeline.get_timesteps``: ``k = min(int(n * strength), n)`` steps run,
    ``timesteps[(n - k) * order:]``, and ``set_begin_index((n - k) * order)`` where the sampler has it
    (diffusers' sigma-indexed schedulers need it for ``add_noise``). Calls ``set_timesteps`` first.
    """
    n = check_positive_int("num_inference_steps", num_inference_steps)
    strength = as_float("strength", strength, 0, 1, low_open=True, note="the fraction of the steps that run")
    k = min(int(n * strength), n)
    if k < 1:
        raise ValueError(f"strength * num_inference_steps must be at least 1 (one step to run), got {strength:g} * {n}"
                         f" = {strength * n:g}; raise strength or num_inference_steps.")
    sampler.set_timesteps(n, device=device)
    start = (n - k) * getattr(sampler, "order", 1)
    if hasattr(sampler, "set_begin_index"):
        sampler.set_begin_index(start)
    return sampler.timesteps[start:]


def encode_image(vae, image, generator=None) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, 4, H / f, W / f)`` latents: a sample of the encoder's posterior
    (drawn with ``generator``) times ``scaling_factor``, as ``retrieve_latents(..., sample_mode="sample")``."""
    check_vae(vae)
    check_pixels("image", image, (None, 3), spatial_factor(vae))
    out = vae.encode(image * 2 - 1)  # the encoder reads [-1, 1]
    posterior = out.latent_dist if hasattr(out, "latent_dist") else out  # diffusers, or our DiagonalGaussian
    return vae.config.scaling_factor * posterior.sample(generator)


def _start_from_image(unet, vae, image, prompt_embeds, sampler, num_inference_steps, strength, generator):
    """``(timesteps, image_latents, noise)`` for a run that starts from ``image`` (img2img, inpaint): the
    encoder's draw comes first and the noise's second, the order in which the pipelines use the generator."""
    device = model_device(unet)
    image = check_pixels("image", image, (len(prompt_embeds), 3), spatial_factor(vae)).to(device, prompt_embeds.dtype)
    timesteps = get_timesteps(sampler, num_inference_steps, strength, device)
    image_latents = encode_image(vae, image, generator)  # (B, 4, h, w)
    return timesteps, image_latents, randn_like_diffusers(image_latents.shape, generator, image_latents)


@torch.no_grad()
def img2img(unet, vae, image, prompt_embeds, negative_prompt_embeds, sampler, strength=0.8, num_inference_steps=50,
            guidance_scale=7.5, generator=None, eta=None, output_type="pt"):
    """Start the reverse process from a partly noised image (``StableDiffusionImg2ImgPipeline.__call__``).

    Encode ``image`` ``(B, 3, H, W)`` in [0, 1]; keep the last ``strength`` of the timesteps
    (``get_timesteps``); noise the latents to the first kept one with ``sampler.add_noise``; ``denoise``.
    ``strength = 1`` runs every step but still starts from ``add_noise`` at the first timestep (SD's
    first is 981 of 1000 with 50 steps), so a little of the image survives, as in diffusers.
    """
    _check_run(unet, vae, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale, num_inference_steps,
               generator, eta, output_type)
    timesteps, image_latents, noise = _start_from_image(unet, vae, image, prompt_embeds, sampler,
                                                        num_inference_steps, strength, generator)
    latents = sampler.add_noise(image_latents, noise, timesteps[:1].repeat(len(image_latents)))
    latents = denoise(unet, latents, timesteps, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale,
                      generator, eta)
    return _output(vae, latents, output_type)


def latent_mask(mask, size) -> torch.Tensor:
    """A pixel mask ``(B, 1, H, W)`` (1 = repaint) binarised at 0.5 and resized (nearest) to the latents'
    ``size = (h, w)``: ``VaeImageProcessor.binarize`` then ``prepare_mask_latents``' interpolation."""
    return F.interpolate((mask >= 0.5).to(mask.dtype), size=tuple(size))  # (B, 1, h, w) of 0s and 1s


@torch.no_grad()
def inpaint(unet, vae, image, mask, prompt_embeds, negative_prompt_embeds, sampler, num_inference_steps=50,
            guidance_scale=7.5, strength=1.0, generator=None, eta=None, output_type="pt"):
    """Repaint where ``mask`` is 1 with an ordinary (4-channel) U-Net: after every step the latents outside
    the mask are replaced by the image's, noised to the next timestep (the last step: the clean ones).

    Source: ``StableDiffusionInpaintPipeline.__call__`` with a 4-channel U-Net (``init_latents_proper``,
    ``(1 - init_mask) * init_latents_proper + init_mask * latents``), the same fixed ``noise`` re-used for
    every re-noising. ``strength = 1`` starts from pure noise (times ``init_noise_sigma``), lower values
    from the noised image (``img2img``'s start).

    Equal to the pipeline for samplers whose steps draw no noise (DDIM, Euler, DPM-Solver++). The pipeline
    also encodes the masked image with the generator, a draw a 4-channel U-Net never uses; that draw is
    left out here, so a stochastic sampler (DDPM, DDIM with eta > 0) gets different step noise than there.

    Args:
        image: ``(B, 3, H, W)`` in [0, 1]. mask: ``(B, 1, H, W)`` in [0, 1], 1 = repaint (``latent_mask``).
        Others as ``img2img``.
    """
    _check_run(unet, vae, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale, num_inference_steps,
               generator, eta, output_type)
    mask = check_pixels("mask", mask, (len(prompt_embeds), 1), spatial_factor(vae), size_of=image)
    timesteps, image_latents, noise = _start_from_image(unet, vae, image, prompt_embeds, sampler,
                                                        num_inference_steps, strength, generator)
    # The CPU encoder may return channels-last latents; the inpainting pipeline's `repeat` copies them to the
    # standard layout (img2img's `cat` keeps it), and convolutions round differently on the two (~1e-6 a step).
    image_latents = image_latents.contiguous()
    repaint = latent_mask(mask, image_latents.shape[-2:]).to(image_latents)  # (B, 1, h, w): diffusers' init_mask
    b, last = len(image_latents), len(timesteps) - 1
    if float(strength) == 1.0:
        latents = noise * sampler.init_noise_sigma
    else:
        latents = sampler.add_noise(image_latents, noise, timesteps[:1].repeat(b))

    def put_back_known(i, t, latents):
        known = image_latents if i == last else sampler.add_noise(image_latents, noise, timesteps[i + 1].repeat(b))
        return (1 - repaint) * known + repaint * latents

    latents = denoise(unet, latents, timesteps, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale,
                      generator, eta, after_step=put_back_known)
    return _output(vae, latents, output_type)
