"""Cheap, documented quality metrics for digits: digits-FID, KID and class adherence.

"digits-FID" is the Fréchet distance between Gaussian fits of the shipped digit classifier's
64-d penultimate features (not Inception's). The reference statistics are those of half "A" of
the 1,797 real digits (a fixed split); the other half, "B" (898 images), scored against them
gives the real-vs-real floor. Generated samples are scored at that same count, N = 898, because
FID grows as N shrinks: compare FIDs only at equal N.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import pretrained
from .._validation import as_float, as_int, check_choice, check_images, check_labels
from ..data import load_digits
from ..data.shapes import parse_caption
from .classifier import FEATURE_DIM, DigitClassifier, accuracy, train_digit_classifier
from .frechet import frechet_distance, gaussian_stats, kernel_inception_distance
from .shapes_judge import PICTURE, ShapesJudge, judge_accuracy, noise_rejection, train_shapes_judge

NUM_SAMPLES = 898  # size of the smaller real half: every digits-FID is measured at this N
SPLIT_SEED = 1234


def reference_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The two disjoint halves (A: 899, B: 898) of all 1,797 digits, by a fixed permutation."""
    x, _ = load_digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return x[order[: len(x) - NUM_SAMPLES]], x[order[len(x) - NUM_SAMPLES:]]


@lru_cache(maxsize=1)
def _classifier_and_reference():
    tensors, meta = pretrained.load_tensors("digit-classifier")
    return pretrained.load("digit-classifier", "cpu"), tensors["ref_features"].double(), meta


def reference_features() -> torch.Tensor:
    """``(899, 64)`` float64 classifier features of half A, the reference every digits-FID is against."""
    return _classifier_and_reference()[1]


def digit_classifier() -> DigitClassifier:
    """The shipped classifier (CPU, eval mode)."""
    return _classifier_and_reference()[0]


@torch.no_grad()
def features(images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``(N, 1, 16, 16)`` digits in [-1, 1] -> ``(N, 64)`` classifier features (float64)."""
    _check_digits(images)
    model = digit_classifier()
    return torch.cat([model.features(images[i:i + batch_size].float().cpu()) for i in range(0, len(images), batch_size)]).double()


def _check_digits(images: torch.Tensor) -> None:
    check_images(images, shape=(1, 16, 16), what="(N, 1, 16, 16) digits")


def digits_fid(images: torch.Tensor, require_n: bool = True) -> float:
    """digits-FID of ``images`` against the reference half A; needs exactly N = 898 images unless
    ``require_n=False`` (then the number is not comparable with the documented floor)."""
    if require_n and len(images) != NUM_SAMPLES:
        raise ValueError(f"digits-FID is defined at N = {NUM_SAMPLES} images (the real-vs-real floor's count); "
                         f"got {len(images)}. Pass require_n=False to compute it anyway.")
    ref = _classifier_and_reference()[1]
    mu_r, cov_r = gaussian_stats(ref)
    mu_g, cov_g = gaussian_stats(features(images))
    return frechet_distance(mu_g, cov_g, mu_r, cov_r)


def digits_kid(images: torch.Tensor) -> tuple[float, float]:
    """KID (mean, std over subsets) of ``images`` against the reference half A."""
    return kernel_inception_distance(features(images), _classifier_and_reference()[1])


def floor() -> dict:
    """The real-vs-real figures stored with the classifier: ``{"fid", "kid", "n"}`` (half B vs half A)."""
    meta = _classifier_and_reference()[2]
    return {"fid": meta["floor_fid"], "kid": meta["floor_kid"], "n": NUM_SAMPLES}


@torch.no_grad()
def predict_digits(images: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the classifier's digit for each image."""
    _check_digits(images)
    return digit_classifier()(images.float().cpu()).argmax(1)


def class_distribution(images: torch.Tensor) -> np.ndarray:
    """Fraction of images assigned to each digit 0..9 (all ten should appear for a good model)."""
    return np.bincount(predict_digits(images).numpy(), minlength=10) / len(images)


def class_adherence(images: torch.Tensor, labels) -> float:
    """Fraction of digits the classifier reads as the label they were drawn for (one label or one per image)."""
    _check_digits(images)
    labels = check_labels(labels, len(images), 10)
    return float((predict_digits(images) == labels).float().mean())


def within_class_diversity(images: torch.Tensor, labels) -> float:
    """Mean distance of each digit's classifier features to its class mean, averaged over classes.

    Zero if every sample of a class is the same image; all 1,797 real digits score 1.77. Classes
    with fewer than two samples are skipped.
    """
    _check_digits(images)
    labels = check_labels(labels, len(images), 10)
    f = features(images)  # (N, 64)
    spreads = [(f[labels == k] - f[labels == k].mean(0)).norm(dim=1).mean() for k in labels.unique()
               if int((labels == k).sum()) > 1]
    if not spreads:
        raise ValueError("within_class_diversity needs at least two samples of some class.")
    return float(torch.stack(spreads).mean())


SATURATION_ENDS = ("both", "high", "low")


def saturation(images: torch.Tensor, threshold: float = 0.98, ends: str = "both") -> float:
    """Fraction of pixels within ``1 - threshold`` of the ends of [-1, 1]: over-guided samples pile up there.

    ``ends``: ``"both"``, ``"high"`` (at +1 only) or ``"low"``. For digits, whose background is -1
    anyway, ``"high"`` (strokes at full white) is the one that grows with the guidance scale. Values
    past the ends (unclamped samples overshoot) count as saturated; NaN and inf are refused.
    """
    check_choice("ends", ends, SATURATION_ENDS)
    if not isinstance(images, torch.Tensor) or not torch.isfinite(images).all():
        raise ValueError("images must be a finite tensor (any shape; values past +-1, from unclamped samples, count as "
                         "saturated), got " + (type(images).__name__ if not isinstance(images, torch.Tensor) else "NaN or inf") + ".")
    threshold = as_float("threshold", threshold, 0, 1, low_open=True, note="how close to +-1 counts as saturated")
    at = {"both": images.abs() >= threshold, "high": images >= threshold, "low": images <= -threshold}[ends]
    return float(at.float().mean())


def background_grain(images: torch.Tensor, border: int = 3) -> float:
    """How grainy the background is: the standard deviation of the pixel values in each image's outer
    ``border``-pixel frame, per channel, averaged over channels and images.

    The shapes are drawn away from the edges, so the frame is flat background in real images (2,000 held-out
    shapes: 0.0116; the shapes-vae round trip: 0.016); leftover noise in a sample's background raises it.
    The judges were trained with noise augmentation and forgive grain; this number does not.
    """
    images = check_images(images, "images", value_range=None, what="(N, C, H, W) images")
    border = as_int("border", border, minimum=1, maximum=(min(images.shape[-2:]) - 1) // 2,
                    what="a frame width in pixels, less than half the image")
    frame = torch.ones(images.shape[-2:], dtype=torch.bool, device=images.device)
    frame[border:-border, border:-border] = False
    return float(images[..., frame].float().std(-1).mean())


@lru_cache(maxsize=1)
def shapes_judge() -> ShapesJudge:
    """The shipped shapes judge (CPU, eval mode)."""
    return pretrained.load("shapes-judge", device="cpu")


def prompt_adherence(images: torch.Tensor, prompts) -> dict[str, float]:
    """How often generated shapes show what their prompts ask for, as read by the shapes judge.

    ``images``: ``(N, 3, 32, 32)`` in [-1, 1]; ``prompts``: one caption or N captions. Returns the
    fraction right per attribute (``shape``, ``color``, ``background``), ``picture`` (the fraction
    the judge takes for a shapes picture rather than noise), ``object``: colour and shape both
    right (issue 5's bar), and ``all``: all four at once.
    """
    check_images(images, shape=(3, 32, 32), what="(N, 3, 32, 32) shapes images")
    prompts = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(images):
        raise ValueError(f"give one prompt or one per image: {len(prompts)} prompts for {len(images)} images.")
    wanted = torch.tensor([parse_caption(p) for p in prompts])  # (N, 3)
    read = shapes_judge().read(images.float().cpu())
    hits = torch.stack([read["shape"], read["color"], read["background"]], 1) == wanted  # (N, 3)
    hits = torch.cat([hits, (read["picture"] == PICTURE)[:, None]], 1)  # (N, 4)
    out = {k: float(hits[:, i].float().mean()) for i, k in enumerate(("shape", "color", "background", "picture"))}
    out["object"] = float(hits[:, :2].all(1).float().mean())
    out["all"] = float(hits.all(1).float().mean())
    return out


__all__ = [
    "class_adherence", "saturation", "within_class_diversity",
    "ShapesJudge", "judge_accuracy", "noise_rejection", "prompt_adherence", "shapes_judge", "train_shapes_judge",
    "FEATURE_DIM", "NUM_SAMPLES", "DigitClassifier", "accuracy", "class_distribution", "digit_classifier",
    "digits_fid", "digits_kid", "features", "floor", "frechet_distance", "gaussian_stats",
    "kernel_inception_distance", "predict_digits", "reference_split", "train_digit_classifier",
]
