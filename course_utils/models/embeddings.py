"""Sinusoidal timestep embeddings (Sec. 3.5 of Vaswani et al. 2017, as used by Ho et al. 2020)."""

from __future__ import annotations

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed timesteps as ``[cos(t * f_0), ..., cos(t * f_{d/2-1}), sin(t * f_0), ...]``.

    Frequencies ``f_i = max_period ** (-i / (d/2))`` run from 1 down to ``1 / max_period``, so
    nearby timesteps get similar vectors and every scale of ``t`` is visible to the network.

    Args:
        t: ``(B,)`` timesteps (integers or floats).
        dim: embedding size, even.
    Returns:
        ``(B, dim)`` float32.
    """
    if dim % 2 or dim < 2:
        raise ValueError(f"dim must be a positive even number, got {dim}.")
    t = torch.as_tensor(t)
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)  # (d/2,)
    args = t.float()[:, None] * freqs[None]  # (B, d/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, d)
