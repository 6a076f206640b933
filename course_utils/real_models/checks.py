"""Argument checks for ``pipelines``: each error names the argument, what came, and what is accepted."""

from __future__ import annotations

import torch

from .._validation import as_int
from ..samplers.base import Sampler


def model_device(module) -> torch.device:
    """Where ``module`` runs: diffusers' and transformers' ``.device``, else its first parameter's device."""
    device = getattr(module, "device", None)
    return device if isinstance(device, torch.device) else next(module.parameters()).device


def check_sampler(sampler) -> None:
    """A sampler with the protocol (``samplers.base.Sampler``: ours, or a diffusers scheduler) and
    ``add_noise`` (img2img and inpainting noise the image with it)."""
    if isinstance(sampler, type) or not isinstance(sampler, Sampler) or not hasattr(sampler, "add_noise"):
        raise TypeError("sampler must follow the sampler protocol (set_timesteps, timesteps, init_noise_sigma, "
                        "scale_model_input, step, add_noise): one of course_utils.samplers or a diffusers scheduler "
                        f"instance, got {sampler!r:.80}.")


def check_vae(vae) -> None:
    """diffusers' ``AutoencoderKL`` or the package's ``Autoencoder``: ``encode``, ``decode`` and
    ``config.scaling_factor``."""
    if not (hasattr(vae, "encode") and hasattr(vae, "decode") and hasattr(getattr(vae, "config", None),
                                                                         "scaling_factor")):
        raise TypeError("vae must be an autoencoder with encode, decode and config.scaling_factor (diffusers' "
                        f"AutoencoderKL or course_utils.models.vae's), got {type(vae).__name__}.")


def spatial_factor(vae) -> int:
    """How many pixels one latent spans per side (diffusers' ``pipe.vae_scale_factor``: 8 for SD)."""
    if hasattr(vae.config, "block_out_channels"):
        return 2 ** (len(vae.config.block_out_channels) - 1)  # as diffusers computes it
    return vae.config.downsample_factor  # course_utils.models.vae.VAEConfig


def _shape_text(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def check_embeds(unet, prompt_embeds, negative_prompt_embeds, guidance_scale: float) -> None:
    """``(B, L, D)`` prompt embeddings, with D the U-Net's ``cross_attention_dim``, and negative ones of
    the same shape (needed unless ``guidance_scale == 1``, which runs the conditional model alone)."""
    dim = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    if not isinstance(prompt_embeds, torch.Tensor) or prompt_embeds.ndim != 3 or len(prompt_embeds) == 0:
        raise ValueError(f"prompt_embeds must be a (B, L, D) tensor (encode_prompt's output), got "
                         f"{_shape_text(prompt_embeds)}.")
    if isinstance(dim, int) and prompt_embeds.shape[-1] != dim:
        raise ValueError(f"prompt_embeds' last dimension must be the U-Net's cross_attention_dim {dim}, got shape "
                         f"{tuple(prompt_embeds.shape)}; encode with the text encoder that belongs to this U-Net.")
    if negative_prompt_embeds is None and guidance_scale == 1.0:
        return
    if negative_prompt_embeds is None:
        raise ValueError(f"guidance_scale {guidance_scale:g} needs negative_prompt_embeds (the empty prompt's "
                         "encoding, encode_prompt(tokenizer, text_encoder, [''] * B)); only guidance_scale=1 runs "
                         "without them.")
    if not isinstance(negative_prompt_embeds, torch.Tensor) or negative_prompt_embeds.shape != prompt_embeds.shape:
        raise ValueError(f"negative_prompt_embeds must have prompt_embeds' shape {tuple(prompt_embeds.shape)}, got "
                         f"{_shape_text(negative_prompt_embeds)}.")


def output_shape(unet, vae, batch: int, height, width) -> tuple[int, int, int, int]:
    """``(B, C, H / f, W / f)``: the latents of ``height`` x ``width`` images (default: the U-Net's
    ``sample_size`` times ``f``, as ``StableDiffusionPipeline``)."""
    f = spatial_factor(vae)
    sides = []
    for name, side in (("height", height), ("width", width)):
        side = unet.config.sample_size * f if side is None else as_int(name, side, minimum=f, what="pixels")
        if side % f:
            raise ValueError(f"{name} must be a multiple of the VAE's factor {f} (pixels per latent), got {side}.")
        sides.append(side // f)
    return (batch, unet.config.in_channels, *sides)


def check_pixels(name: str, x, batch_channels: tuple[int, int], factor: int, size_of=None) -> torch.Tensor:
    """A ``(B, C, H, W)`` tensor in [0, 1] (diffusers' tensor convention), ``(B, C)`` as given (B None: any),
    H and W multiples of ``factor`` and, with ``size_of``, the same as that tensor's."""
    b, c = batch_channels
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != c or (b is not None and x.shape[0] != b):
        raise ValueError(f"{name} must be a ({'B' if b is None else b}, {c}, H, W) tensor (one per prompt), got "
                         f"{_shape_text(x)}.")
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"{name}'s height and width must be multiples of the VAE's factor {factor}, got "
                         f"{tuple(x.shape[-2:])}.")
    if size_of is not None and isinstance(size_of, torch.Tensor) and x.shape[-2:] != size_of.shape[-2:]:
        raise ValueError(f"{name} must have the image's height and width {tuple(size_of.shape[-2:])}, got "
                         f"{tuple(x.shape[-2:])}.")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name} must hold values in [0, 1] (for [-1, 1] images pass (x + 1) / 2), got "
                         f"{x.min().item():.3g} to {x.max().item():.3g}.")
    return x
