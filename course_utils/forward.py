"""The forward process: destroying an image with Gaussian noise, step by step or in one jump.

Timesteps are 0-indexed (see ``course_utils.schedules``): ``q_sample(x0, t, ...)`` returns the
sample after steps ``0..t`` of the chain, i.e. with ``alpha_bar_t = schedule.alphas_cumprod[t]``.
"""

from __future__ import annotations

import torch

from ._validation import as_tensor, broadcast_to_sample, check_same_shape, check_timesteps
from .parameterization import noised
from .schedules import NoiseSchedule


def _check_unit_interval(name: str, value: torch.Tensor, allow_one: bool = True) -> None:
    ok = (value > 0) & ((value <= 1) if allow_one else (value < 1))
    if not torch.isfinite(value).all() or not bool(ok.all()):
        bound = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(f"{name} must lie in {bound}; got {value.tolist()}.")


def forward_step(x_prev, beta_t, noise) -> torch.Tensor:
    """One step of the chain: ``x_t = sqrt(1 - beta_t) * x_{t-1} + sqrt(beta_t) * noise``.

    Eq. (2) of Ho et al. 2020, sampled with the reparameterisation trick.

    Args:
        x_prev: ``(B, ...)`` or any shape: the previous sample ``x_{t-1}``.
        beta_t: a float, or a ``(B,)`` tensor of per-example betas, each in (0, 1].
        noise: standard Gaussian noise with ``x_prev``'s shape.
    """
    x_prev = as_tensor(x_prev, "x_prev")
    noise = as_tensor(noise, "noise", dtype=x_prev.dtype).to(x_prev.device)
    check_same_shape(x_prev=x_prev, noise=noise)
    beta = as_tensor(beta_t, "beta_t", dtype=torch.float64)
    _check_unit_interval("beta_t", beta)
    beta = broadcast_to_sample(beta, x_prev, "beta_t")
    return torch.sqrt(1 - beta) * x_prev + torch.sqrt(beta) * noise


def q_sample(x0, t, noise, schedule: NoiseSchedule) -> torch.Tensor:
    """The closed form ``x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise``.

    Eq. (4) of Ho et al. 2020: every step of the chain at once.

    Args:
        x0: ``(B, ...)`` clean samples (any shape when ``t`` is an int).
        t: an int, or a ``(B,)`` LongTensor of 0-indexed timesteps in ``[0, T)``.
        noise: standard Gaussian noise with ``x0``'s shape.
        schedule: the ``NoiseSchedule`` that defines ``alpha_bar``.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
    x0 = as_tensor(x0, "x0")
    noise = as_tensor(noise, "noise", dtype=x0.dtype).to(x0.device)
    check_same_shape(x0=x0, noise=noise)
    t = check_timesteps(t, schedule.num_timesteps)
    alpha_bar = broadcast_to_sample(schedule.gather("alphas_cumprod", t, like=x0), x0, "t")
    return noised(x0, noise, torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar))
