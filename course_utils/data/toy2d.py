"""2-D point clouds: small enough to see every sample, rich enough to show what a sampler does.

All sets are roughly centred with unit-order spread, as ``(N, 2)`` float32 tensors, and
deterministic given ``seed``.
"""

from __future__ import annotations

import math

import torch

from .._validation import as_float, as_int, check_choice, check_positive_int, check_size

TOY_DATASETS = ("moons", "swiss_roll", "gaussian_mixture")


def gaussian_mixture_params(num_components: int = 8, radius: float = 2.0, std: float = 0.2):
    """Means ``(K, 2)`` on a circle and the shared isotropic ``std`` of the mixture we sample.

    Exposed so an exact denoiser (``course_utils.oracle``) can use the very same distribution.
    """
    k = check_positive_int("num_components", num_components)
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return means, std


def _moons(n: int, g: torch.Generator, noise: float) -> torch.Tensor:
    n_top = n // 2
    u = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    top = torch.stack([torch.cos(u), torch.sin(u)], 1)
    bottom = torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], 1)
    pts = torch.where((torch.arange(n) < n_top)[:, None], top, bottom)
    pts = pts + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (pts - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 1.5  # centre, spread ~ 1


def _swiss_roll(n: int, g: torch.Generator, noise: float) -> torch.Tensor:
    u = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    pts = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 5.0
    return pts + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _gaussian_mixture(n: int, g: torch.Generator, noise: float) -> torch.Tensor:
    means, std = gaussian_mixture_params()
    comp = torch.randint(len(means), (n,), generator=g)
    return means[comp] + std * torch.randn(n, 2, generator=g, dtype=torch.float64)


def make_toy2d(name: str, n: int = 2000, seed: int = 0, noise: float | None = None) -> torch.Tensor:
    """Sample ``n`` points of a named 2-D set.

    Args:
        name: ``"moons"``, ``"swiss_roll"`` or ``"gaussian_mixture"`` (8 Gaussians on a circle,
            see ``gaussian_mixture_params``, whose spread is fixed: it takes no ``noise``).
        n: number of points.
        seed: the same seed gives the same points.
        noise: standard deviation of the jitter added to moons and the swiss roll (None: 0.05).

    Returns:
        ``(n, 2)`` float32 points.
    """
    check_choice("toy dataset", name, TOY_DATASETS)
    n = check_positive_int("n", n)
    if name == "gaussian_mixture" and noise is not None:
        raise ValueError("noise is not used by 'gaussian_mixture' (its components' spread is gaussian_mixture_params' "
                         "std); leave it out, or pick 'moons' or 'swiss_roll'.")
    noise = 0.05 if noise is None else as_float("noise", noise, low=0, note="the jitter's standard deviation")
    seed = as_int("seed", seed, minimum=0)
    check_size(f"{n:,} toy points", 4 * 8 * 2 * n, "n")
    g = torch.Generator().manual_seed(seed)
    builder = {"moons": _moons, "swiss_roll": _swiss_roll, "gaussian_mixture": _gaussian_mixture}[name]
    return builder(n, g, noise).float()
