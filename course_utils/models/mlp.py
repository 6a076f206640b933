"""A small MLP denoiser for 2-D toy data: ``model(x, t)`` with ``x (B, D)`` and ``t`` a timestep.

The timestep (an integer DDPM step, or ``sigma * 1000`` for flow matching) enters through the
same sinusoidal embedding as the U-Net's, concatenated to ``x``; SiLU hidden layers; a zero
initialised output layer, so the model predicts 0 at first as the image networks do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .._validation import check_positive_int
from .embeddings import broadcast_timesteps, timestep_embedding


@dataclass(frozen=True)
class ToyMLPConfig:
    dim: int = 2
    hidden: int = 128
    layers: int = 3
    time_dim: int = 32
    num_classes: int | None = None  # None: unconditional (kept for the training loop's interface)

    def __post_init__(self):
        for name in ("dim", "hidden", "layers", "time_dim"):
            check_positive_int(name, getattr(self, name))
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (cos and sin halves), got {self.time_dim}.")

    def to_dict(self) -> dict:
        return asdict(self)


class ToyMLP(nn.Module):
    """``(B, dim)`` points and their timesteps in, a ``(B, dim)`` prediction out (noise or velocity)."""

    def __init__(self, config: ToyMLPConfig | None = None):
        super().__init__()
        self.config = cfg = config or ToyMLPConfig()
        width = [cfg.dim + cfg.time_dim] + [cfg.hidden] * cfg.layers
        blocks = []
        for a, b in zip(width[:-1], width[1:]):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"x must have shape (B, {self.config.dim}), got {tuple(x.shape)}.")
        emb = timestep_embedding(broadcast_timesteps(t, x), self.config.time_dim)  # (B, time_dim)
        return self.out(self.body(torch.cat([x, emb.to(x.dtype)], dim=1)))  # (B, dim)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
