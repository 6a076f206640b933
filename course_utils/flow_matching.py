"""Flow matching (rectified flow): a straight path from data to noise, and a network that learns
its velocity (Lipman et al. 2023; Liu et al. 2023; the convention of Stable Diffusion 3 and
diffusers' ``FlowMatchEulerDiscreteScheduler``).

**The time convention, once for the whole package.** ``sigma`` runs over [0, 1]; ``sigma = 0`` is
data and ``sigma = 1`` is pure noise, so sampling walks ``sigma`` *down*, as every sampler here
walks its timesteps down. The network sees ``timestep = sigma * num_train_timesteps`` (1000), the
scale our timestep embeddings were built for.

Path and target, for data ``x0``, noise ``eps ~ N(0, I)``:

    x_sigma = (1 - sigma) * x0 + sigma * eps          (a straight line in sigma)
    v       = d x_sigma / d sigma = eps - x0          (the same at every sigma on the line)

Training regresses ``model(x_sigma, sigma * 1000)`` onto ``v`` with a mean squared error; sampling
integrates ``dx / dsigma = v`` from ``sigma = 1`` down to 0 (``samplers.FlowMatchEulerSampler``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import broadcast_to_sample, check_positive_int, check_same_shape

NUM_TRAIN_TIMESTEPS = 1000


def _expand(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` (a number or ``(B,)``) checked to lie in [0, 1] and shaped to multiply ``x``."""
    s = broadcast_to_sample(sigma, x, name="sigma")
    if s.numel() and (s.min() < 0 or s.max() > 1):
        raise ValueError("sigma must lie in [0, 1] (0: data, 1: noise).")
    return s


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """``x_sigma = (1 - sigma) x0 + sigma eps``: ``(B, ...)`` for ``sigma`` a number or ``(B,)``."""
    check_same_shape(x0=x0, noise=noise)
    s = _expand(sigma, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``v = eps - x0``, the velocity of the straight path (what the network learns)."""
    check_same_shape(x0=x0, noise=noise)
    return noise - x0


def velocity_to_x0(velocity: torch.Tensor, sample: torch.Tensor, sigma) -> torch.Tensor:
    """The clean sample the velocity points back to: ``x0 = x_sigma - sigma * v``."""
    return sample - _expand(sigma, sample) * velocity


def flow_matching_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None,
                       num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, **model_kwargs) -> torch.Tensor:
    """The conditional flow-matching loss for one batch: ``sigma ~ U[0, 1]``, ``eps ~ N(0, I)``,
    ``mean || model(x_sigma, sigma * T) - (eps - x0) ||^2``.

    Args:
        model: called as ``model(x_sigma, timestep, **model_kwargs)`` with ``timestep`` ``(B,)`` float.
        x0: ``(B, ...)`` clean data; draws use ``generator`` on ``x0``'s device.
    """
    check_positive_int("num_train_timesteps", num_train_timesteps)
    b = x0.shape[0]
    sigma = torch.rand(b, device=x0.device, generator=generator, dtype=x0.dtype)  # (B,)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)  # (B, ...)
    x_sigma = interpolate(x0, noise, sigma)
    pred = model(x_sigma, sigma * num_train_timesteps, **model_kwargs)
    return F.mse_loss(pred.float(), velocity_target(x0, noise).float())


def straightness(trajectory: torch.Tensor) -> torch.Tensor:
    """How straight each sampled path is: ``|x_end - x_start| / sum_k |x_{k+1} - x_k|`` per sample,
    1 for a straight line and smaller the more the path bends.

    Args:
        trajectory: ``(steps + 1, B, ...)``, as ``sample_loop(..., return_trajectory=True)`` returns.
    Returns:
        ``(B,)`` in (0, 1].
    """
    if trajectory.ndim < 3 or trajectory.shape[0] < 2:
        raise ValueError(f"trajectory must be (steps + 1, B, ...) with at least 2 points, got {tuple(trajectory.shape)}.")
    flat = trajectory.flatten(2)  # (K+1, B, D)
    chord = (flat[-1] - flat[0]).norm(dim=-1)  # (B,)
    length = (flat[1:] - flat[:-1]).norm(dim=-1).sum(0)  # (B,)
    return chord / length.clamp_min(1e-12)
