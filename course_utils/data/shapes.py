"""Procedural shapes with captions: a tiny, offline stand-in for image-text data.

Each image is one shape (circle, square or triangle) of one colour on a plain background of
another colour, with a caption such as "a red circle on a blue background" and integer labels
for shape, colour and background. Size and position vary; everything follows from ``seed``.
Shapes are drawn with 4x4 supersampling, so their edges are anti-aliased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import as_int, check_positive_int, check_size

SHAPES = ("circle", "square", "triangle")
# Colour names and their RGB values in [0, 1]; used for shapes and for backgrounds.
COLORS = {
    "red": (0.86, 0.16, 0.16),
    "green": (0.18, 0.67, 0.24),
    "blue": (0.16, 0.31, 0.86),
    "yellow": (0.95, 0.84, 0.2),
    "purple": (0.56, 0.24, 0.67),
    "white": (0.96, 0.96, 0.96),
}
BACKGROUNDS = tuple(COLORS)
SUPERSAMPLE = 4


@dataclass
class ShapesDataset:
    """``images``: ``(N, 3, H, W)`` float32 in [-1, 1]; ``captions``: N strings; integer labels
    ``shape`` (index into ``SHAPES``), ``color`` and ``background`` (indices into ``COLORS``)."""

    images: torch.Tensor
    captions: list[str]
    shape: torch.Tensor
    color: torch.Tensor
    background: torch.Tensor

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int):
        return self.images[i], self.captions[i]


def caption(shape: str, color: str, background: str) -> str:
    """The caption of one image: ``"a {color} {shape} on a {background} background"``."""
    return f"a {color} {shape} on a {background} background"


def parse_caption(text: str) -> tuple[int, int, int]:
    """``"a red circle on a blue background"`` -> ``(shape, color, background)`` indices.

    Only captions of that exact form are understood; anything else is refused with the words
    that are accepted.
    """
    words = str(text).strip().lower().split()
    names = list(COLORS)
    ok = (len(words) == 7 and words[0] == "a" and words[3:5] == ["on", "a"] and words[6] == "background"
          and words[1] in COLORS and words[2] in SHAPES and words[5] in COLORS)
    if not ok:
        raise ValueError(f"cannot read {text!r}: captions look like 'a <color> <shape> on a <color> background' "
                         f"with color one of {names} and shape one of {list(SHAPES)}.")
    return SHAPES.index(words[2]), names.index(words[1]), names.index(words[5])


def _masks(shape_idx: np.ndarray, cx, cy, r, size: int) -> np.ndarray:
    """Coverage in [0, 1] of each shape over a ``size x size`` grid: ``(N, size, size)``."""
    s = size * SUPERSAMPLE
    coords = (np.arange(s) + 0.5) / SUPERSAMPLE  # pixel-centre coordinates in [0, size)
    y, x = coords[None, :, None], coords[None, None, :]
    cx, cy, r = cx[:, None, None], cy[:, None, None], r[:, None, None]
    dx, dy = x - cx, y - cy
    circle = dx**2 + dy**2 <= r**2
    half = 0.82 * r  # a square of about the circle's area
    square = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # Upward equilateral triangle with circumradius 1.15 r: apex above the centre, base below.
    R = 1.15 * r
    base = dy <= R / 2
    left = np.sqrt(3) * dx + dy >= -R  # the edge from the apex (0, -R) down to the left
    right = -np.sqrt(3) * dx + dy >= -R
    triangle = base & left & right
    full = np.where(shape_idx[:, None, None] == 0, circle, np.where(shape_idx[:, None, None] == 1, square, triangle))
    n = len(shape_idx)
    return full.reshape(n, size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(2, 4))


def make_shapes(n: int = 1000, seed: int = 0, size: int = 32) -> ShapesDataset:
    """Draw ``n`` shape images, the same ones for the same ``seed``.

    Args:
        n: how many images.
        seed: the random seed (shape, colours, size and position all follow from it).
        size: height and width in pixels (32 by default; at least 16).
    """
    n = check_positive_int("n", n)
    size = check_positive_int("size", size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels for the shapes to be recognisable, got {size}.")
    seed = as_int("seed", seed, minimum=0)
    # float32 images, drawn 512 at a time in float64 (3 colour planes and a 4x4 supersampled mask)
    check_size(f"{n:,} shapes images at {size}x{size}", 4 * 3 * n * size**2 + 8 * 19 * min(n, 512) * size**2,
               "n or size")
    rng = np.random.default_rng(seed)
    palette = np.array(list(COLORS.values()))
    shape_idx = rng.integers(len(SHAPES), size=n)
    color_idx = rng.integers(len(COLORS), size=n)
    # A background of any other colour: shift by 1..K-1 so it never equals the shape's colour.
    bg_idx = (color_idx + rng.integers(1, len(COLORS), size=n)) % len(COLORS)
    r = rng.uniform(0.22, 0.34, size=n) * size
    margin = 1.2 * r
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    chunks = []
    for lo in range(0, n, 512):  # bounded memory: 512 images x (4*size)^2 booleans at a time
        sl = slice(lo, lo + 512)
        cover = _masks(shape_idx[sl], cx[sl], cy[sl], r[sl], size)[:, None]  # (n, 1, H, W)
        fg = palette[color_idx[sl]][:, :, None, None]
        bg = palette[bg_idx[sl]][:, :, None, None]
        chunks.append(cover * fg + (1 - cover) * bg)
    images = torch.from_numpy(np.concatenate(chunks).astype(np.float32)) * 2 - 1
    names = list(COLORS)
    caps = [caption(SHAPES[s], names[c], names[b]) for s, c, b in zip(shape_idx, color_idx, bg_idx)]
    return ShapesDataset(
        images=images,
        captions=caps,
        shape=torch.from_numpy(shape_idx.astype(np.int64)),
        color=torch.from_numpy(color_idx.astype(np.int64)),
        background=torch.from_numpy(bg_idx.astype(np.int64)),
    )
