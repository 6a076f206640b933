"""Plots the notebooks share: image grids, schedule curves, 2-D trajectories.

Every function draws on a matplotlib ``Axes`` (a new figure when none is given), labels its axes,
and returns the ``Axes`` (or ``Figure``) so a notebook can add to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .schedules import NoiseSchedule


def to_display(images: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` in [-1, 1] -> ``(B, H, W, C)`` numpy in [0, 1] (C = 1 or 3)."""
    images = torch.as_tensor(images).detach().float().cpu()
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C = 1 or 3, got {tuple(images.shape)}.")
    return ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile ``(B, C, H, W)`` images in [-1, 1] into one ``(rows*H, nrow*W, C)`` array in [0, 1]."""
    arr = to_display(images)
    b, h, w, c = arr.shape
    nrow = max(1, min(nrow, b))
    rows = -(-b // nrow)
    grid = np.ones((rows * (h + pad) - pad, nrow * (w + pad) - pad, c), dtype=np.float32)
    for i in range(b):
        r, col = divmod(i, nrow)
        grid[r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = arr[i]
    return grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, scale: float = 1.0):
    """Show a grid of images in [-1, 1] (grayscale or RGB) with an optional title."""
    grid = image_grid(images, nrow)
    if ax is None:
        rows, cols = grid.shape[0] / 16, grid.shape[1] / 16
        _, ax = plt.subplots(figsize=(max(2.0, cols * 0.6 * scale), max(1.5, rows * 0.6 * scale)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def show_row(images: torch.Tensor, titles: Sequence[str], suptitle: str | None = None, size: float = 1.6):
    """One image per panel, each with its own title (e.g. one per timestep)."""
    arr = to_display(images)
    if len(titles) != len(arr):
        raise ValueError(f"got {len(arr)} images but {len(titles)} titles.")
    fig, axes = plt.subplots(1, len(arr), figsize=(size * len(arr), size * 1.25), squeeze=False)
    for ax, img, title in zip(axes[0], arr, titles):
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_schedules(schedules: Sequence[NoiseSchedule], axes=None):
    """Two panels: alpha_bar_t against t, and log SNR against t, one line per schedule."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for s in schedules:
        t = np.arange(s.num_timesteps)
        axes[0].plot(t, s.alphas_cumprod.numpy(), label=s.name)
        axes[1].plot(t, s.log_snr().numpy(), label=s.name)
    axes[0].set(xlabel="timestep t", ylabel=r"$\bar\alpha_t$ (signal kept)", title="Signal left after t steps")
    axes[1].set(xlabel="timestep t", ylabel=r"log SNR$_t$ = log($\bar\alpha_t / (1-\bar\alpha_t)$)",
                title="Signal-to-noise ratio")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    return axes


def scatter2d(points: torch.Tensor, ax=None, title: str | None = None, lim: float = 4.0, **kwargs):
    """Scatter a ``(N, 2)`` point cloud on square, labelled axes."""
    pts = torch.as_tensor(points).detach().cpu().numpy()
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    kwargs.setdefault("s", 3)
    kwargs.setdefault("alpha", 0.6)
    ax.scatter(pts[:, 0], pts[:, 1], **kwargs)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(trajectory: torch.Tensor, ax=None, num_paths: int = 30, title: str | None = None, lim: float = 4.0,
                      every: int = 1):
    """Draw sampling paths ``(steps + 1, N, 2)``: grey lines from noise (dots) to samples (red).

    ``every``: draw every k-th step only (1000-step DDPM paths are a tangle otherwise); the first
    and last points are always kept.
    """
    traj = torch.as_tensor(trajectory).detach().cpu().numpy()
    if traj.ndim != 3 or traj.shape[2] != 2:
        raise ValueError(f"trajectory must have shape (steps + 1, N, 2), got {traj.shape}.")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}.")
    keep = sorted(set(range(0, len(traj), every)) | {len(traj) - 1})
    traj = traj[keep]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    k = min(num_paths, traj.shape[1])
    ax.plot(traj[:, :k, 0], traj[:, :k, 1], color="0.6", lw=0.7)
    ax.scatter(traj[0, :k, 0], traj[0, :k, 1], s=10, color="0.3", label="start: noise $x_T$")
    ax.scatter(traj[-1, :k, 0], traj[-1, :k, 1], s=14, color="tab:red", label="end: sample $x_0$")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax
