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
The formulas themselves live in ``course_utils.parameterization`` (``flow_interpolate``, ...); reflow,
which straightens a trained flow, in ``course_utils.reflow``; how straight paths are, in
``metrics.distances.straightness``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import (as_float, broadcast_to_sample, check_choice, check_positive_int, check_same_shape,
                          recording_cuda_graph)
from ._deprecation import moved_names
from .parameterization import flow_interpolate, flow_to_x0, flow_velocity

NUM_TRAIN_TIMESTEPS = 1000
TIME_SAMPLINGS = ("uniform", "logit_normal")


def _expand(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` (a number or ``(B,)``) checked to lie in [0, 1] and shaped to multiply ``x``."""
    s = broadcast_to_sample(sigma, x, name="sigma")
    if s.numel() and not recording_cuda_graph() and (s.min() < 0 or s.max() > 1):
        raise ValueError("sigma must lie in [0, 1] (0: data, 1: noise).")
    return s


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """``x_sigma = (1 - sigma) x0 + sigma eps``: ``(B, ...)`` for ``sigma`` a number or ``(B,)``."""
    check_same_shape(x0=x0, noise=noise)
    return flow_interpolate(x0, noise, _expand(sigma, x0))


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``v = eps - x0``, the velocity of the straight path (what the network learns)."""
    check_same_shape(x0=x0, noise=noise)
    return flow_velocity(x0, noise)


def velocity_to_x0(velocity: torch.Tensor, sample: torch.Tensor, sigma) -> torch.Tensor:
    """The clean sample the velocity points back to: ``x0 = x_sigma - sigma * v``."""
    return flow_to_x0(velocity, sample, _expand(sigma, sample))


def shift_sigma(sigma, shift: float):
    """SD3's timestep shift (Esser et al. 2024, Eq. 23): ``shift * s / (1 + (shift - 1) * s)``.

    A monotone map of [0, 1] onto itself that keeps both ends; ``shift > 1`` moves every interior
    sigma towards the noise (``shift = 3``: s = 0.5 becomes 0.75). Training with it spends more
    examples at high noise; sampling with it spends more steps there. Works on numbers, arrays
    and tensors.
    """
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_sigmas(batch_size: int, generator: torch.Generator | None = None, device=None,
                  dtype: torch.dtype = torch.float32, time_sampling: str = "uniform", logit_mean: float = 0.0,
                  logit_std: float = 1.0, shift: float = 1.0) -> torch.Tensor:
    """``(B,)`` training sigmas: ``"uniform"`` on [0, 1], or ``"logit_normal"``: ``sigmoid(n)`` with
    ``n ~ N(logit_mean, logit_std^2)`` (SD3's ``rf/lognorm(0, 1)``: most examples at middle noise,
    few at the ends where the velocity is easy), then ``shift_sigma(., shift)``.
    """
    check_choice("time_sampling", time_sampling, TIME_SAMPLINGS)
    shift = as_float("shift", shift, low=0, low_open=True, note="1.0: no shift")
    if time_sampling == "uniform":
        sigma = torch.rand(batch_size, device=device, generator=generator, dtype=dtype)
    else:
        normal = torch.randn(batch_size, device=device, generator=generator, dtype=dtype)
        sigma = torch.sigmoid(normal * logit_std + logit_mean)
    return sigma if shift == 1.0 else shift_sigma(sigma, shift)


def flow_matching_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None,
                       num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, shard: slice = slice(None),
                       time_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0,
                       shift: float = 1.0, **model_kwargs) -> torch.Tensor:
    """The conditional flow-matching loss for one batch: ``sigma`` from ``sample_sigmas`` (default
    ``U[0, 1]``), ``eps ~ N(0, I)``, ``mean || model(x_sigma, sigma * T) - (eps - x0) ||^2``.

    Args:
        model: called as ``model(x_sigma, timestep, **model_kwargs)`` with ``timestep`` ``(B,)`` float.
        x0: ``(B, ...)`` clean data; draws use ``generator`` on ``x0``'s device.
        shard: the rows this process trains on (data parallel); the draws are made for all ``B``.
            ``model_kwargs`` tensors must already be cut to the shard.
        time_sampling, logit_mean, logit_std, shift: how sigma is drawn (``sample_sigmas``).
    """
    check_positive_int("num_train_timesteps", num_train_timesteps)
    b = x0.shape[0]
    sigma = sample_sigmas(b, generator, x0.device, x0.dtype, time_sampling, logit_mean, logit_std, shift)[shard]
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)[shard]  # (B', ...)
    x0 = x0[shard]
    x_sigma = interpolate(x0, noise, sigma)
    pred = model(x_sigma, sigma * num_train_timesteps, **model_kwargs)
    return F.mse_loss(pred.float(), velocity_target(x0, noise).float())


__getattr__ = moved_names(__name__)  # reflow and the path metrics moved out (course_utils._deprecation)
