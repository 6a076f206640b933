"""The shapes judge: reads which shape, which colour and which background an image shows.

It scores prompt adherence of generated shapes images (does "a red circle on a blue
background" give a red circle on blue?) independently of any CLIP. A small CNN with four heads:
shape, colour, background, and ``picture``, which tells a shapes picture (1) from pixel noise (0).
Trained on ``make_shapes`` images with light noise and blur (generated images are rarely clean)
against several kinds of noise images, and validated on a held-out seed of real images and fresh
noise (its card in the manifest gives the accuracy).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_images
from ..data.shapes import COLORS, SHAPES, caption

HEADS = {"shape": len(SHAPES), "color": len(COLORS), "background": len(COLORS)}
NOISE, PICTURE = 0, 1  # the two answers of the "picture" head


class ShapesJudge(nn.Module):
    """``(B, 3, 32, 32)`` images in [-1, 1] -> logits ``{"shape": (B, 3), "color": (B, 6), "background": (B, 6),
    "picture": (B, 2)}``; ``picture`` is 1 for a shapes picture, 0 for noise."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),  # (B, w, 32, 32)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),  # (B, 2w, 16, 16)
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),  # (B, 4w, 4, 4)
            nn.Flatten(), nn.Linear(16 * 4 * w, 128), nn.SiLU(),  # (B, 128)
        )
        self.heads = nn.ModuleDict({k: nn.Linear(128, n) for k, n in {**HEADS, "picture": 2}.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"expected shapes images of shape (B, 3, 32, 32), got {tuple(x.shape)}.")
        h = self.body(x)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def read(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The judge's reading: ``(B,)`` integer labels per attribute (indices into SHAPES / COLORS),
        and ``picture``: 1 where it sees a shapes picture, 0 where it sees noise. ``x``: finite images in
        [-1, 1] (a NaN image would be read as whatever the first class is)."""
        check_images(x, "x", shape=(3, 32, 32), what="(B, 3, 32, 32) shapes images")
        return {k: v.argmax(1) for k, v in self(x).items()}

    def captions(self, x: torch.Tensor) -> list[str]:
        """What the judge sees, as captions: ``"a red circle on a blue background"``, or ``"noise"``."""
        r = self.read(x)
        names = list(COLORS)
        return [caption(SHAPES[s], names[c], names[b]) if p == PICTURE else "noise"
                for s, c, b, p in zip(r["shape"].tolist(), r["color"].tolist(), r["background"].tolist(),
                                      r["picture"].tolist())]
