"""Distances between two sets of feature vectors: Fréchet distance (FID's formula) and KID.

FID (Heusel et al. 2017) fits a Gaussian to each set and measures
``||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})``. It is biased upwards at small sample
counts, so FIDs are only ever compared at equal sample counts. KID (Bińkowski et al. 2018) is an
unbiased estimate of the squared MMD with the kernel ``k(x, y) = (x.y / d + 1)^3``.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_int


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of ``(N, D)`` features."""
    f = torch.as_tensor(features).detach().double().cpu().numpy()
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {f.shape}.")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf (were the images finite?).")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """``||mu1 - mu2||^2 + Tr(cov1) + Tr(cov2) - 2 Tr((cov1 cov2)^{1/2})``.

    ``Tr((cov1 cov2)^{1/2})`` is the sum of square roots of the eigenvalues of
    ``cov1^{1/2} cov2 cov1^{1/2}``, a symmetric PSD matrix, so no complex square root is needed.
    """
    mu1, mu2, cov1, cov2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, cov1, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, cov {cov1.shape} / {cov2.shape}.")
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # cov1^{1/2}
    inner = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    tr_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def kernel_inception_distance(f1: torch.Tensor, f2: torch.Tensor, num_subsets: int = 20, subset_size: int = 500,
                              seed: int = 0) -> tuple[float, float]:
    """KID between ``(N, D)`` and ``(M, D)`` features: mean and standard deviation over subsets."""
    x = torch.as_tensor(f1).double().cpu()
    y = torch.as_tensor(f2).double().cpu()
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D); got {tuple(x.shape)} and {tuple(y.shape)}.")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("features contain NaN or inf (were the images finite?).")
    num_subsets = as_int("num_subsets", num_subsets, minimum=1)
    subset_size = as_int("subset_size", subset_size, minimum=2)
    seed = as_int("seed", seed, minimum=0)
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set.")
    d = x.shape[1]
    g = torch.Generator().manual_seed(seed)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    values = []
    for _ in range(num_subsets):
        a = x[torch.randperm(len(x), generator=g)[:m]]
        b = y[torch.randperm(len(y), generator=g)[:m]]
        kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
        # unbiased MMD^2: drop the diagonals of the within-set kernels
        mmd = ((kxx.sum() - kxx.diagonal().sum()) + (kyy.sum() - kyy.diagonal().sum())) / (m * (m - 1)) \
            - 2 * kxy.mean()
        values.append(mmd.item())
    return float(np.mean(values)), float(np.std(values))
