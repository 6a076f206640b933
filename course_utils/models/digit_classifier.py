"""A small CNN that recognises 16x16 digits; its penultimate features drive digits-FID / KID
(``course_utils.metrics``, which also trains it)."""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 64


class DigitClassifier(nn.Module):
    """``(B, 1, 16, 16)`` digits in [-1, 1] -> ``(B, 10)`` logits; ``.features`` gives ``(B, 64)``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.SiLU(),  # (B, 32, 16, 16)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64), nn.SiLU(),  # (B, 64, 8, 8)
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.GroupNorm(8, 128), nn.SiLU(),  # (B, 128, 4, 4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 128)
            nn.Linear(128, FEATURE_DIM), nn.SiLU(),  # (B, 64)
        )
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 16, 16):
            raise ValueError(f"expected digits of shape (B, 1, 16, 16), got {tuple(x.shape)}.")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
