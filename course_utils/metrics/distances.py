"""Distances that say how close samples are to data, to each other and to a straight line.

- ``nearest_data`` / ``nearest_data_distance``: each image's RMS pixel distance to its nearest
  real image, and ``real_vs_real_distance``: the same figure for held-out real images, the
  yardstick (memorisation, notebooks 01 and 10);
- ``pairwise_diversity``: the mean distance between samples (collapse, notebook 10);
- ``sliced_wasserstein``: a distance between 2-D point clouds (toy samples against data, notebook 08);
- ``straightness``: how straight sampled paths are (flow matching, notebook 08).
"""

from __future__ import annotations

import math

import torch

from .._validation import check_images, check_positive_int


def _check_images(x: torch.Tensor, name: str = "images") -> None:
    check_images(x, name, value_range=None, what="(B, C, H, W) images")  # a distance takes any finite values


def nearest_data(images: torch.Tensor, data: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the RMS pixel distance to its nearest real image and that image's index: two ``(B,)``.

    RMS distance: ``sqrt(mean over the C*H*W pixels of (a - b)^2)``, in pixel units (images in [-1, 1]).
    """
    _check_images(images)
    _check_images(data, "data")
    if images.shape[1:] != data.shape[1:]:
        raise ValueError(f"images {tuple(images.shape[1:])} and data {tuple(data.shape[1:])} must have the same "
                         "(C, H, W).")
    # float64: cdist expands |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, which loses digits in float32 near 0.
    a = images.detach().cpu().double().flatten(1)  # (B, D)
    b = data.detach().cpu().double().flatten(1)  # (N, D)
    dim = a.shape[1]
    best_d, best_i = [], []
    for lo in range(0, len(a), batch_size):
        d = torch.cdist(a[lo:lo + batch_size], b)  # (b, N), Euclidean
        dist, idx = d.min(dim=1)
        best_d.append((dist / math.sqrt(dim)).float())  # Euclidean / sqrt(D) = RMS
        best_i.append(idx)
    return torch.cat(best_d), torch.cat(best_i)


def nearest_data_distance(images: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """``(B,)`` RMS pixel distance from each image to the nearest image of ``data`` (same ``(C, H, W)``)."""
    return nearest_data(images, data)[0]


def real_vs_real_distance(data: torch.Tensor, n_held_out: int = 200,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """The yardstick: hold out ``n_held_out`` real images, measure each one's distance to the rest. ``(n_held_out,)``.

    A generated image as close to the data as these is as close as a real image typically is.
    """
    _check_images(data, "data")
    n_held_out = check_positive_int("n_held_out", n_held_out)
    if n_held_out >= len(data):
        raise ValueError(f"n_held_out must be smaller than the {len(data)} data images, got {n_held_out}.")
    order = torch.randperm(len(data), generator=generator)
    return nearest_data_distance(data[order[:n_held_out]], data[order[n_held_out:]])


def pairwise_diversity(images: torch.Tensor) -> float:
    """Mean RMS pixel distance over all pairs of ``images`` ``(N, C, H, W)``, N >= 2.

    Identical samples score 0; real digits at 16x16 score about 0.5 (notebook 10 measures it).
    """
    _check_images(images)
    if len(images) < 2:
        raise ValueError(f"images must be (N, C, H, W) with N >= 2, got shape {tuple(images.shape)}.")
    flat = images.flatten(1).double()  # (N, D)
    d2 = torch.cdist(flat, flat).pow(2) / flat.shape[1]  # (N, N) mean squared difference
    n = len(flat)
    return float(d2.clamp_min(0).sqrt().sum() / (n * (n - 1)))


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, num_projections: int = 256, quantiles: int = 256,
                       seed: int = 0) -> float:
    """The sliced 1-Wasserstein distance between point clouds ``x (N, D)`` and ``y (M, D)``: the
    mean, over random unit directions, of the 1-D Wasserstein-1 distance between the projections
    (estimated on ``quantiles`` evenly spaced quantiles, so ``N != M`` is fine). 0 for equal clouds;
    for ``y = x + c`` in 2-D it tends to ``|c| * 2 / pi`` (the mean of ``|cos|``). Used to score 2-D
    toy samples against real ones (Rabin et al. 2011; Bonneel et al. 2015)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}.")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite point clouds (no NaN or inf).")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], num_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, P) unit directions
    q = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles  # (Q,) levels in (0, 1)
    px = torch.quantile(x.double().cpu() @ dirs, q, dim=0)  # (Q, P)
    py = torch.quantile(y.double().cpu() @ dirs, q, dim=0)  # (Q, P)
    return float((px - py).abs().mean())


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
    if not torch.isfinite(trajectory).all():
        raise ValueError("trajectory contains NaN or inf (did the sampler diverge?).")
    flat = trajectory.flatten(2)  # (K+1, B, D)
    chord = (flat[-1] - flat[0]).norm(dim=-1)  # (B,)
    length = (flat[1:] - flat[:-1]).norm(dim=-1).sum(0)  # (B,)
    return chord / length.clamp_min(1e-12)
