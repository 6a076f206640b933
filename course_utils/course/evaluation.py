"""How far a sample-quality number can be trusted (toward notebook 10).

Two traps of FID, measured rather than asserted:

- **It depends on N.** FID is biased upwards at small sample counts, so a number means something
  only next to the real-vs-real floor *at the same N* (``fid_by_sample_count``).
- **It rewards copying.** A "model" that returns training images scores at the floor
  (``memorizer``); a nearest-neighbour check catches it by comparing each sample's distance to the
  nearest training image with how close real images are to each other (``memorization_report``).
"""

from __future__ import annotations

import torch

from .. import metrics
from .._validation import check_positive_int
from ..metrics.frechet import frechet_distance, gaussian_stats
from ..metrics.distances import nearest_data_distance, real_vs_real_distance


def _fid_of_features(feats: torch.Tensor, ref: torch.Tensor) -> float:
    mu_g, cov_g = gaussian_stats(feats)
    mu_r, cov_r = gaussian_stats(ref)
    return frechet_distance(mu_g, cov_g, mu_r, cov_r)


def fid_by_sample_count(images: torch.Tensor, counts, seed: int = 0) -> list[dict]:
    """digits-FID of ``n`` of ``images`` for each ``n`` in ``counts``, next to the real-vs-real floor at ``n``.

    Args:
        images: ``(N, 1, 16, 16)`` generated digits in [-1, 1], ``N >= max(counts)``.
        counts: sample counts, each in ``[2, 898]`` (the floor uses the 898 real digits of half B).
        seed: picks the subsets (the same subset sizes nest: each smaller set is part of the larger).
    Returns:
        ``[{"n", "fid", "floor", "ratio"}]``, ``ratio = fid / floor``.
    """
    counts = [check_positive_int("count", n) for n in counts]
    if not counts or min(counts) < 2 or max(counts) > metrics.NUM_SAMPLES:
        raise ValueError(f"counts must lie in [2, {metrics.NUM_SAMPLES}] (the real digits the floor can use), "
                         f"got {counts}.")
    if len(images) < max(counts):
        raise ValueError(f"need at least max(counts) = {max(counts)} images, got {len(images)}.")
    g = torch.Generator().manual_seed(seed)
    gen_order = torch.randperm(len(images), generator=g)
    _, half_b = metrics.reference_split()
    real_order = torch.randperm(len(half_b), generator=g)
    gen_feats = metrics.features(images[gen_order[:max(counts)]])  # (max n, 64)
    real_feats = metrics.features(half_b[real_order[:max(counts)]])
    ref = metrics.reference_features()  # half A's, as digits_fid uses
    rows = []
    for n in counts:
        fid, floor = _fid_of_features(gen_feats[:n], ref), _fid_of_features(real_feats[:n], ref)
        rows.append({"n": n, "fid": fid, "floor": floor, "ratio": fid / floor})
    return rows


def memorizer(train: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """The cheating "model": ``n`` training images drawn at random (with replacement), returned as samples."""
    n = check_positive_int("n", n)
    if len(train) == 0:
        raise ValueError("train must hold at least one image.")
    idx = torch.randint(0, len(train), (n,), generator=torch.Generator().manual_seed(seed))
    return train[idx].clone()


def memorization_report(samples: torch.Tensor, train: torch.Tensor, n_held_out: int = 200,
                        quantile: float = 0.01, seed: int = 0) -> dict:
    """Are the samples copies? Distances to the nearest training image, against the real yardstick.

    The yardstick holds out ``n_held_out`` real images and measures each one's distance to the rest
    (``pixel_search.real_vs_real_distance``): how close a *different* real image typically is. A
    sample closer than the yardstick's ``quantile`` is suspiciously close: a likely copy.

    Returns ``{"median", "yardstick_median", "threshold", "copies"}``: the samples' median RMS distance,
    the yardstick's, the threshold used, and the share of samples under it.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}.")
    yardstick = real_vs_real_distance(train, n_held_out, torch.Generator().manual_seed(seed))  # (n_held_out,)
    threshold = float(torch.quantile(yardstick, quantile))
    d = nearest_data_distance(samples, train)  # (B,)
    return {"median": float(d.median()), "yardstick_median": float(yardstick.median()), "threshold": threshold,
            "copies": float((d < threshold).float().mean())}


__all__ = ["fid_by_sample_count", "memorization_report", "memorizer"]
