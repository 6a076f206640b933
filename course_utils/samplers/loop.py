"""The sampling loop, written once for every sampler with the diffusers interface."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from .._validation import check_generator, check_positive_int
from ..config import get_device


@torch.no_grad()
def sample_loop(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sampler,
    shape: tuple[int, ...],
    num_inference_steps: int | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    return_trajectory: bool = False,
    latents: torch.Tensor | None = None,
    **step_kwargs,
):
    """Run ``sampler`` from Gaussian noise to samples.

    Args:
        model: ``model(x_t, t) -> prediction``, with ``x_t: shape`` and ``t`` a 0-d LongTensor.
        sampler: ours or a diffusers scheduler (same interface).
        shape: ``(B, ...)`` of the samples.
        num_inference_steps: call ``set_timesteps`` with this first (None: keep the sampler's).
        generator: for the initial noise and every noise draw, so a seed fixes the result (passed to
            ``step`` when it takes one: diffusers' deterministic ``HeunDiscreteScheduler`` does not).
        return_trajectory: also return ``(steps + 1, B, ...)``: the noise, then each ``prev_sample``.
        latents: the starting noise ``(B, ...)`` (``shape``) instead of a fresh draw (diffusers'
            pipelines' ``latents``); it is scaled by the sampler's ``init_noise_sigma`` as a draw is.
        **step_kwargs: passed to ``step`` (e.g. ``eta`` for DDIM).

    Returns:
        ``(B, ...)`` samples, or ``(samples, trajectory)``.
    """
    check_generator(generator)
    device = get_device(device)
    if num_inference_steps is not None:
        sampler.set_timesteps(check_positive_int("num_inference_steps", num_inference_steps))
    if latents is None:
        gen_device = generator.device if generator is not None else device
        x = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
    elif tuple(latents.shape) != tuple(shape):
        raise ValueError(f"latents must have the sample shape {tuple(shape)}, got {tuple(latents.shape)}.")
    else:
        x = latents.to(device)
    x = x * getattr(sampler, "init_noise_sigma", 1.0)  # diffusers' flow-matching schedulers have none
    scale = getattr(sampler, "scale_model_input", lambda sample, timestep: sample)
    if "generator" in inspect.signature(sampler.step).parameters:
        step_kwargs = {"generator": generator, **step_kwargs}
    path = [x] if return_trajectory else None
    for t in sampler.timesteps:
        out = model(scale(x, t), t)
        x = sampler.step(out, t, x, **step_kwargs).prev_sample
        if path is not None:
            path.append(x)
    return (x, torch.stack(path)) if return_trajectory else x
