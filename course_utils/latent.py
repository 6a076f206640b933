"""Latent diffusion's two ends: train the autoencoder, then move images to latents and back.

Rombach et al. 2022 (Sec. 3) split generation in two: an autoencoder ``E, D`` learns once to
compress an image ``x`` into a small latent ``z = E(x)``, and diffusion then runs on ``z``. Latents
are multiplied by ``scaling_factor`` (``1 / std`` of the training latents; Stable Diffusion's is
0.18215) so that the diffusion model sees data of unit variance, as its noise schedule assumes,
and divided by it again before ``D`` decodes.

Shapes: images ``(B, C, H, W)`` in [-1, 1]; latents ``(B, latent_channels, H / f, W / f)``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ._validation import check_choice, check_positive_int
from .config import get_device
from .models.vae import VAE, Autoencoder, DiagonalGaussian, VAEConfig, vae_loss
from .training.config import PRECISIONS
from .training.fit import fit


@dataclass
class VAETrainResult:
    """What ``train_vae`` and ``finetune_decoder`` return. ``losses``: ``(step, mean loss, mean recon, mean kl)``
    rows."""

    model: VAE
    losses: list[tuple[int, float, float, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    interrupted: bool = False


def train_vae(images: torch.Tensor, config: VAEConfig | str = "shapes-vae", steps: int = 3000,
              batch_size: int = 64, lr: float = 1e-3, kl_weight: float = 1e-3, seed: int = 0,
              log_every: int = 50, device: str | torch.device = "cpu", progress: bool = True,
              loss_fn: Callable[..., dict[str, torch.Tensor]] = vae_loss, precision: str = "auto") -> VAETrainResult:
    """Train a ``VAE`` on ``images`` with ``loss_fn`` (``vae_loss`` by default, or one with its signature
    and its ``{"loss", "recon", "kl"}`` result: notebook 06's learners pass their own) under AdamW with
    cosine decay to 0, then set its ``scaling_factor`` from the trained encoder (``latent_scaling_factor``).

    ``precision``: as ``TrainConfig.precision`` ("auto": bf16 autocast on CUDA, fp32 elsewhere; "bf16"; "fp32").
    Interrupting (Ctrl-C / the stop button) returns the model as it is, with its scale factor set.
    """
    from .training.acceleration import autocast

    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    check_choice("precision", precision, PRECISIONS)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function like vae_loss(model, x, kl_weight=, generator=), "
                        f"got {type(loss_fn).__name__}.")
    _check_images(images)
    device = get_device(device)
    torch.manual_seed(seed)
    model = VAE(config).to(device).train()
    data = images.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)

    def batch_loss() -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(data), (batch_size,), device=device, generator=gen)
        with autocast(device, precision):
            return loss_fn(model, data[idx], kl_weight=kl_weight, generator=gen)

    rows, seconds, interrupted = _fit_vae(model, model.parameters(), batch_loss, steps, lr, log_every, progress,
                                          "training the VAE")
    scale = latent_scaling_factor(model, images[:2000])
    model.config = replace(model.config, scaling_factor=scale)
    return VAETrainResult(model, rows, seconds, interrupted)


def finetune_decoder(vae: VAE, images: torch.Tensor, steps: int = 8000, batch_size: int = 64, lr: float = 1e-3,
                     seed: int = 0, log_every: int = 50, device: str | torch.device = "cpu", progress: bool = True,
                     precision: str = "auto") -> VAETrainResult:
    """Train only the decoder of (a copy of) ``vae`` further, on ``images``, with its encoder frozen.

    Every image keeps exactly the latent it had, and the scaling factor stays, so a latent diffusion model
    trained on those latents keeps working; it only decodes more sharply. Stable Diffusion's improved VAE
    (``stabilityai/sd-vae-ft-mse``) was made the same way: the decoder fine-tuned, the encoder kept.

    Each step decodes a draw from the posteriors of a batch (means and spreads computed once) and
    minimises the MSE to the images, under AdamW with cosine decay to 0. ``losses`` rows are ``(step,
    recon, recon, kl)``: the loss is the reconstruction alone; ``kl`` is the frozen encoder's, for reference.
    ``precision`` as in ``train_vae``. Interrupting returns the decoder as it is.
    """
    from .training.acceleration import autocast

    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a course_utils VAE (with .encoder and .decoder), got {type(vae).__name__}.")
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    check_choice("precision", precision, PRECISIONS)
    _check_images(images)
    device = get_device(device)
    torch.manual_seed(seed)
    model = copy.deepcopy(vae).to(device).eval()
    model.requires_grad_(False)
    model.decoder.requires_grad_(True)
    data = images.to(device)
    with torch.no_grad():  # the frozen encoder's posteriors, once: (N, *latent_shape) each
        posteriors = [model.encode(data[i:i + 256]) for i in range(0, len(data), 256)]
    mean = torch.cat([p.mean for p in posteriors])
    logvar = torch.cat([p.logvar for p in posteriors])
    gen = torch.Generator(device=device).manual_seed(seed)

    def batch_loss() -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(data), (batch_size,), device=device, generator=gen)
        posterior = DiagonalGaussian(mean[idx], logvar[idx])
        with autocast(device, precision):
            recon = F.mse_loss(model.decode(posterior.sample(gen)).float(), data[idx])
        return {"loss": recon, "recon": recon, "kl": posterior.kl().mean() / posterior.mean[0].numel()}

    rows, seconds, interrupted = _fit_vae(model, model.decoder.parameters(), batch_loss, steps, lr, log_every,
                                          progress, "fine-tuning the decoder")
    model.requires_grad_(True)
    return VAETrainResult(model, rows, seconds, interrupted)


def _fit_vae(model: VAE, params, batch_loss, steps: int, lr: float, log_every: int, progress: bool,
             desc: str) -> tuple[list, float, bool]:
    """AdamW on ``params`` with cosine decay to 0 and gradient clipping at 1 (``training.fit``), a progress
    bar, and ``(step, loss, recon, kl)`` rows averaged every ``log_every`` steps. Returns ``(rows, seconds,
    interrupted)``; the model is left in eval mode."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0,
                            fused=True if device.type == "cuda" else None)  # as training.state.make_optimizer
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    rows, acc, start = [], torch.zeros(3, device=device), time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, desc=desc, leave=False)

    def log(step: int, parts: dict[str, torch.Tensor]) -> None:
        acc.add_(torch.stack([parts[k].detach() for k in ("loss", "recon", "kl")]))  # on the device: read
        if (step + 1) % log_every == 0 or step + 1 == steps:  # only here, so a GPU never waits per step
            n = (step % log_every) + 1
            rows.append((step + 1, *(round(v / n, 6) for v in acc.tolist())))
            acc.zero_()
            bar.set_postfix(recon=f"{rows[-1][2]:.4f}")

    done = fit(model, batch_loss, opt, bar, scheduler=sched, grad_clip=1.0, on_step=log, interruptible=True)
    model.eval()
    return rows, time.perf_counter() - start, done < steps


@torch.no_grad()
def latent_scaling_factor(vae: Autoencoder, images: torch.Tensor, batch_size: int = 256) -> float:
    """``1 / std`` of the posterior means of ``images`` (over every latent element), the factor
    that gives the diffusion model unit-variance latents. Stable Diffusion computed its 0.18215
    the same way, from a batch of its training images."""
    z = encode(vae, images, scaled=False, batch_size=batch_size)
    return float(1.0 / z.float().std())


@torch.no_grad()
def encode(vae: Autoencoder, images: torch.Tensor, scaled: bool = True, sample: bool = False,
           generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
    """Images ``(B, C, H, W)`` in [-1, 1] -> latents ``(B, *vae.latent_shape)``.

    ``scaled``: multiply by ``vae.config.scaling_factor`` (what the diffusion model sees);
    ``sample``: draw from the posterior instead of taking its mean.
    """
    _check_images(images)
    device = next(vae.parameters()).device
    out = []
    for lo in range(0, len(images), batch_size):
        posterior = vae.encode(images[lo:lo + batch_size].to(device))
        out.append((posterior.sample(generator) if sample else posterior.mode()).cpu())
    z = torch.cat(out)
    return z * vae.config.scaling_factor if scaled else z


@torch.no_grad()
def decode(vae: Autoencoder, latents: torch.Tensor, scaled: bool = True, batch_size: int = 256,
           dtype: torch.dtype | None = None) -> torch.Tensor:
    """Latents ``(B, *vae.latent_shape)`` -> images ``(B, C, H, W)`` clamped to [-1, 1].

    ``scaled``: the latents carry the scale factor (divide it out first). ``dtype``: run the
    decoder in this precision (``torch.float16`` or ``torch.bfloat16``) and return float32.
    """
    if latents.ndim != 4:
        raise ValueError(f"latents must have shape (B, {', '.join(map(str, vae.latent_shape))}), "
                         f"got {tuple(latents.shape)}.")
    device = next(vae.parameters()).device
    z = latents / vae.config.scaling_factor if scaled else latents
    out = []
    for lo in range(0, len(z), batch_size):
        chunk = z[lo:lo + batch_size].to(device)
        if dtype is None:
            out.append(vae.decode(chunk).float().cpu())
        else:
            out.append(_decode_in(vae, chunk, dtype).cpu())
    return torch.cat(out).clamp(-1, 1)


def _decode_in(vae: Autoencoder, z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Decode with the weights themselves cast to ``dtype`` (what ``vae.half()`` does), then float32."""
    import copy

    low = copy.deepcopy(vae).to(dtype)
    return low.decode(z.to(dtype)).float()


@torch.no_grad()
def reconstruction_error(vae: Autoencoder, images: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """How well ``decode(encode(x))`` (posterior means) matches ``x``: mean squared error per pixel
    on the [-1, 1] scale, the PSNR on the [0, 1] scale, and the largest per-image error."""
    recon = decode(vae, encode(vae, images, scaled=False, batch_size=batch_size), scaled=False,
                   batch_size=batch_size)
    per_image = (recon - images).pow(2).flatten(1).mean(1)  # (B,)
    mse = float(per_image.mean())
    # PSNR on [0, 1] pixels: errors there are half as large, so the MSE is a quarter.
    return {"mse": mse, "psnr_db": 10 * math.log10(1.0 / (mse / 4)), "worst_mse": float(per_image.max()),
            "n": len(images)}


def numbers_per_image(vae: Autoencoder) -> dict[str, int]:
    """How many numbers describe one image in pixel space and in latent space, and the ratio."""
    c = vae.config
    pixels = c.in_channels * c.sample_size**2
    latents = math.prod(vae.latent_shape)
    return {"pixels": pixels, "latents": latents, "compression": pixels // latents}


def image_features(images: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """What a latent channel might carry, each pooled to the ``size x size`` latent grid:
    ``brightness`` (mean of RGB), ``red``, ``green``, ``blue`` and ``edges`` (the brightness
    gradient's magnitude). Each is ``(N, size, size)``."""
    f = torch.nn.functional
    rgb = (images + 1) / 2  # (N, 3, H, W) in [0, 1]
    gray = rgb.mean(1, keepdim=True)  # (N, 1, H, W)
    gx = f.pad(gray[..., :, 1:] - gray[..., :, :-1], (0, 1, 0, 0))  # (N, 1, H, W)
    gy = f.pad(gray[..., 1:, :] - gray[..., :-1, :], (0, 0, 0, 1))  # (N, 1, H, W)
    maps = {"brightness": gray, "red": rgb[:, :1], "green": rgb[:, 1:2], "blue": rgb[:, 2:],
            "edges": (gx**2 + gy**2).sqrt()}
    return {k: f.adaptive_avg_pool2d(v, size)[:, 0] for k, v in maps.items()}


def latent_channel_correlations(latents: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pearson correlation of each latent channel with each of ``image_features``, over every
    latent position of every image: ``{feature: (C,)}`` in [-1, 1].

    Args:
        latents: ``(N, C, h, w)`` (scaled or not: correlation ignores the scale).
        images: ``(N, 3, H, W)`` the images they encode, in [-1, 1].
    """
    if latents.ndim != 4 or images.ndim != 4 or len(latents) != len(images):
        raise ValueError(f"need (N, C, h, w) latents and (N, 3, H, W) images, got {tuple(latents.shape)} and "
                         f"{tuple(images.shape)}.")
    z = latents.float().transpose(0, 1).flatten(1)  # (C, N*h*w)
    z = z - z.mean(1, keepdim=True)
    out = {}
    for name, feat in image_features(images.float(), latents.shape[-1]).items():
        v = feat.flatten() - feat.mean()  # (N*h*w,)
        denom = (z.norm(dim=1) * v.norm()).clamp_min(1e-12)
        out[name] = (z @ v) / denom  # (C,)
    return out


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (B, C, H, W) tensor, got {getattr(images, 'shape', images)}.")
    if not torch.isfinite(images).all() or images.abs().max() > 1 + 1e-6:
        raise ValueError("images must be finite and in [-1, 1] (see course_utils.data).")
