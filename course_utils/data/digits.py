"""scikit-learn's handwritten digits as diffusion-ready tensors.

The 1,797 digits (UCI "Optical Recognition of Handwritten Digits") ship inside scikit-learn, so
they load offline. Each is 8x8 with ink values 0..16; we upsample to 16x16 (bilinear) so the
U-Net has room for three downsamplings, and map ink to [-1, 1] (background -1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import as_float, as_int, check_positive_int, check_size

DIGITS_SIZE = 16


NUM_DIGITS = 1797  # scikit-learn's digits


def load_digits(size: int = DIGITS_SIZE, split: str = "all", seed: int = 0):
    """Load the digits.

    Args:
        size: output height and width (8 keeps the originals; 16 by default).
        split: ``"all"``, or ``"train"`` / ``"test"``: a fixed, seeded 80/20 split (the test part
            is held out for metrics).
        seed: the split's seed.

    Returns:
        ``(images, labels)``: ``(N, 1, size, size)`` float32 in [-1, 1] and ``(N,)`` int64 in 0..9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    size = check_positive_int("size", size)
    if split not in ("all", "train", "test"):
        raise ValueError(f"Unknown split {split!r}. Accepted: 'all', 'train', 'test'.")
    seed = as_int("seed", seed, minimum=0)
    check_size(f"1,797 digits at {size}x{size}", 3 * 4 * NUM_DIGITS * size**2, "size")  # images, resize, scaled copy
    bunch = _sk_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images * 2 - 1).clamp(-1, 1)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if split == "all":
        return images, labels
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(labels))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return images[idx], labels[idx]


def load_dark_and_bright_digits(contrast: float = 0.25):
    """Every digit twice, as two classes whose images are nearly black or nearly white (the test set of
    zero terminal SNR, Lin et al. 2024: can a model draw images far from mid-grey?).

    Class 0, "dark": ``contrast * x - (1 - contrast)``, the digit faint on black (in [-1, 2c - 1]);
    class 1, "bright": the same inverted, faint on white (in [1 - 2c, 1]). With ``contrast = 0.25`` the
    mean brightness is about -0.85 and +0.85.

    Returns:
        ``(images, labels)``: ``(3594, 1, 16, 16)`` in [-1, 1] and ``(3594,)`` int64 in {0, 1}.
    """
    c = as_float("contrast", contrast, low=0, high=1, low_open=True)
    images, _ = load_digits()
    dark, bright = c * images - (1 - c), (1 - c) - c * images
    labels = torch.cat([torch.zeros(len(images)), torch.ones(len(images))]).long()
    return torch.cat([dark, bright]), labels
