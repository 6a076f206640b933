"""Sinusoidal timestep embeddings (Sec. 3.5 of Vaswani et al. 2017, as used by Ho et al. 2020)."""

from __future__ import annotations

import math

import torch

from .._validation import recording_cuda_graph


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


def broadcast_timesteps(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` (an int, a 0-d tensor or ``(B,)``) as a ``(B,)`` tensor on ``x``'s device, ``B = len(x)``."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}.")
    return t


def add_class_embedding(emb: torch.Tensor, table: torch.nn.Embedding | None, num_classes: int | None,
                        class_labels, what: str) -> torch.Tensor:
    """``emb + table(class_labels)`` for a class-conditional network (``what`` names it in errors).

    ``class_labels=None`` on a conditional network means the null label ``num_classes`` for every
    example (the unconditional half of classifier-free guidance); labels on an unconditional
    network, float labels, and labels outside ``[0, num_classes]`` are refused.
    """
    if table is None:
        if class_labels is not None:
            raise ValueError(f"this {what} is unconditional (num_classes=None); do not pass class_labels.")
        return emb
    b = emb.shape[0]
    if class_labels is None:
        class_labels = torch.full((b,), num_classes, device=emb.device, dtype=torch.long)
    class_labels = torch.as_tensor(class_labels, device=emb.device)
    if class_labels.shape != (b,) or class_labels.is_floating_point():
        raise ValueError(f"class_labels must be a (B,) integer tensor, got shape {tuple(class_labels.shape)}.")
    if not recording_cuda_graph() and (int(class_labels.min()) < 0 or int(class_labels.max()) > num_classes):
        raise ValueError(f"class_labels must lie in [0, {num_classes - 1}] (or {num_classes} for the null label).")
    return emb + table(class_labels)  # (B, D)
