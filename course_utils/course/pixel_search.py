"""Generating an image by searching pixel space for a high CLIP score: the naive method of notebook 01.

Start from random pixels, score them against a prompt with a CLIP, and climb the score's gradient.
The score rises; the image stays noise. This module holds the search and the measurements that
show the failure:

- three ways to turn free numbers into an image (a *parametrization*): ``"pixels"`` (every pixel
  free), ``"blur"`` (free pixels seen through a fixed Gaussian blur, a smoothness prior) and
  ``"lowres"`` (an 8x8 grid upsampled to 32x32, a smaller search space);
- ``optimize_pixels``: gradient ascent (Adam) on the score, with a score history and snapshots.

How far its images are from real ones is ``metrics.distances.nearest_data_distance``, next to
``real_vs_real_distance``, the same figure for real images.

Every parametrization squashes its free numbers with ``tanh`` and then only averages, so its
images always lie in [-1, 1] and plain gradient steps never leave the valid range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._deprecation import moved_names
from .._validation import check_choice, check_positive_int

PARAMETRIZATIONS = ("pixels", "blur", "lowres")
IMAGE_SHAPE = (3, 32, 32)
LOWRES_SIZE = 8  # the "lowres" grid: 8x8 per channel, 192 numbers per RGB image
BLUR_SIGMA = 1.5  # pixels; the kernel reaches 3 sigma on each side


# --- parametrizations: free numbers w -> an image in [-1, 1] ------------------------------------

def _check_images(x: torch.Tensor, name: str = "images") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a tensor of shape (B, C, H, W), got {getattr(x, 'shape', type(x))}.")


def _check_image_shape(image_shape) -> None:
    ok = (isinstance(image_shape, (tuple, list)) and len(image_shape) == 3
          and all(isinstance(v, int) and v > 0 for v in image_shape))
    if not ok:
        raise ValueError(f"image_shape must be (C, H, W) with positive ints, got {image_shape!r}.")
    if image_shape[1] != image_shape[2]:
        raise ValueError(f"images must be square, got image_shape {tuple(image_shape)}.")


def pixels_image(w: torch.Tensor) -> torch.Tensor:
    """Every pixel free: ``(B, C, H, W)`` -> ``tanh(w)``, same shape, in (-1, 1)."""
    _check_images(w, "w")
    return torch.tanh(w)


def gaussian_kernel(sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """A 1-D Gaussian of standard deviation ``sigma`` pixels, ``(2r + 1,)`` with ``r = ceil(3 sigma)``, summing to 1."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    r = math.ceil(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-x**2 / (2 * sigma**2))
    return k / k.sum()


def blur_matrix(size: int, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """The 1-D blur as a ``(size, size)`` matrix: row ``i`` holds the kernel centred on pixel ``i``.

    Edges reflect (pixel ``-1`` is pixel ``1``), so every row sums to 1 and a flat image stays flat.
    """
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    if size <= r:
        raise ValueError(f"images must be larger than the blur radius {r}, got size {size}.")
    i = torch.arange(size)[:, None]  # (size, 1) output pixel
    j = (i + torch.arange(-r, r + 1)[None]).abs()  # (size, 2r + 1) input pixel, reflected at 0 ...
    j = torch.where(j > size - 1, 2 * (size - 1) - j, j)  # ... and at size - 1
    m = torch.zeros(size, size)
    return m.index_put_((i.expand_as(j), j), k.expand_as(j), accumulate=True)


def blur_image(w: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Free pixels seen through a fixed blur: ``(B, C, H, W)`` -> ``G * tanh(w)``, same shape, in [-1, 1].

    The 2-D Gaussian is separable: one 1-D blur down the columns (``M_H @ x``) and one along the rows
    (``x @ M_W^T``). Each output pixel is a weighted average of inputs, so the range holds.
    """
    _check_images(w, "w")
    m_h = blur_matrix(w.shape[-2], sigma).to(device=w.device, dtype=w.dtype)  # (H, H)
    m_w = blur_matrix(w.shape[-1], sigma).to(device=w.device, dtype=w.dtype)  # (W, W)
    return m_h @ torch.tanh(w) @ m_w.T  # (B, C, H, W)


def lowres_image(w: torch.Tensor, size: int = IMAGE_SHAPE[-1]) -> torch.Tensor:
    """A coarse grid upsampled: ``(B, C, h, w)`` -> ``(B, C, size, size)`` bilinear upsampling of ``tanh(w)``.

    Bilinear weights (``align_corners=False``) are non-negative and sum to 1, so the range holds.
    """
    _check_images(w, "w")
    return F.interpolate(torch.tanh(w), size=(size, size), mode="bilinear", align_corners=False)


def parameter_shape(parametrization: str, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> tuple[int, int, int]:
    """The free numbers per image, ``(C, h, w)``: the image's shape, or ``(C, 8, 8)`` for ``"lowres"``."""
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    _check_image_shape(image_shape)
    c = image_shape[0]
    return (c, LOWRES_SIZE, LOWRES_SIZE) if parametrization == "lowres" else tuple(image_shape)


def to_image(parametrization: str, w: torch.Tensor, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> torch.Tensor:
    """Apply a parametrization by name: free numbers ``(B, *parameter_shape)`` -> images ``(B, *image_shape)``."""
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    if parametrization == "pixels":
        return pixels_image(w)
    if parametrization == "blur":
        return blur_image(w)
    if parametrization == "lowres":
        return lowres_image(w, image_shape[-1])
    raise ValueError(f"Unknown parametrization {parametrization!r}. Accepted: {PARAMETRIZATIONS}.")


# --- the search ---------------------------------------------------------------------------------

@dataclass
class PixelSearchResult:
    """What ``optimize_pixels`` found.

    Attributes:
        images: ``(n, C, H, W)`` the final images, in [-1, 1].
        scores: ``(steps + 1, n)`` each image's score before step 0, 1, ..., and after the last step.
        snapshot_steps: the steps at which ``snapshots`` were taken (always 0 and ``steps``).
        snapshots: ``(len(snapshot_steps), n, C, H, W)`` the images at those steps.
        prompt, parametrization: what was searched for, and how.
        num_parameters: free numbers per image (3,072 for ``"pixels"`` at 32x32, 192 for ``"lowres"``).
    """

    images: torch.Tensor
    scores: torch.Tensor
    snapshot_steps: list[int]
    snapshots: torch.Tensor
    prompt: str
    parametrization: str
    num_parameters: int

    @property
    def steps(self) -> int:
        return self.scores.shape[0] - 1


def initial_parameters(parametrization: str, n: int, generator: torch.Generator | None = None,
                       image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> torch.Tensor:
    """Free numbers whose ``tanh`` is uniform on [-0.98, 0.98]: ``(n, *parameter_shape)``, on the CPU.

    "Random pixels" in the naive recipe are uniform; 0.98 rather than 1 keeps ``atanh`` finite.
    """
    n = check_positive_int("n", n)
    u = torch.rand((n, *parameter_shape(parametrization, image_shape)), generator=generator) * 1.96 - 0.98
    return torch.atanh(u)


def _device_of(scorer) -> torch.device:
    model = getattr(scorer, "model", None)
    p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return p.device if p is not None else torch.device("cpu")


def optimize_pixels(scorer, prompt: str, n: int = 4, steps: int = 300, lr: float = 0.05,
                    parametrization: str = "pixels", generator: torch.Generator | None = None,
                    record_every: int = 50, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> PixelSearchResult:
    """Gradient ascent on ``scorer.score(images, prompt)``, starting from random pixels.

    Each step computes the images from the free numbers ``w`` with the named parametrization,
    scores them, and takes one Adam step (Kingma & Ba, 2015) on ``w`` that raises the sum of the
    scores (each image's score depends only on its own pixels, so the ``n`` searches are
    independent). The scorer's weights are never touched.

    Args:
        scorer: anything with ``score(images (B, C, H, W) in [-1, 1], prompt) -> (B,)``, e.g. a ``CLIPScorer``.
        prompt: the text to match.
        n: how many images to search for at once.
        steps: optimizer steps (at least 1).
        lr: Adam's step size, in units of ``w`` (about one pixel-value unit near 0).
        parametrization: ``"pixels"``, ``"blur"`` or ``"lowres"`` (see the module docstring).
        generator: fixes the random starting pixels.
        record_every: keep a snapshot of the images every this many steps (and at the end).
        image_shape: ``(C, H, W)`` of the images the scorer sees.
    """
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be one string, got {type(prompt).__name__}.")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}.")
    if not callable(getattr(scorer, "score", None)):
        raise TypeError("scorer must have a score(images, prompt) method, e.g. a CLIPScorer.")
    device = _device_of(scorer)
    w = initial_parameters(parametrization, n, generator, image_shape).to(device).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    history, snap_steps, snaps = [], [], []
    for step in range(steps + 1):
        images = to_image(parametrization, w, image_shape)  # (n, C, H, W)
        scores = scorer.score(images, prompt)  # (n,)
        history.append(scores.detach().cpu())
        if step % record_every == 0 or step == steps:
            snap_steps.append(step)
            snaps.append(images.detach().cpu())
        if step == steps:
            break
        (grad,) = torch.autograd.grad(scores.sum(), w)  # d(score)/dw only: the CLIP's weights get no .grad
        w.grad = -grad  # the optimizer minimises, so hand it the negative: ascent on the score
        opt.step()
    return PixelSearchResult(images=snaps[-1], scores=torch.stack(history), snapshot_steps=snap_steps,
                             snapshots=torch.stack(snaps), prompt=prompt, parametrization=parametrization,
                             num_parameters=math.prod(parameter_shape(parametrization, image_shape)))


def gradient_ascent_step(scorer, prompt: str, x: torch.Tensor, lr: float) -> torch.Tensor:
    """One plain step on the pixels themselves: ``clamp(x + lr * d score / dx, -1, 1)``, ``(B, C, H, W)``.

    The gradient is that of the *sum* of the scores, so each image moves by its own score's gradient.
    """
    _check_images(x, "x")
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(scorer.score(x, prompt).sum(), x)
    return (x + lr * grad).clamp(-1, 1).detach()


__all__ = ["BLUR_SIGMA", "IMAGE_SHAPE", "LOWRES_SIZE", "PARAMETRIZATIONS", "PixelSearchResult", "blur_image", "blur_matrix",
           "gaussian_kernel", "gradient_ascent_step", "initial_parameters", "lowres_image", "optimize_pixels",
           "parameter_shape", "pixels_image", "to_image"]


__getattr__ = moved_names(__name__)  # distances moved to course_utils.metrics.distances
