"""MNIST and Fashion-MNIST, for learners online (Colab). Never used by default.

Downloading goes through torchvision (``download=True``), which writes the original IDX files
under ``root/<Name>/raw/``. Reading is ours (``read_idx``), so the same code reads files that
are already on disk without torchvision, and the tests check it on small IDX files they write.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .._validation import check_choice

_FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (LeCun's format description): 0x08 = unsigned byte, the only one MNIST uses.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``): magic ``00 00 <type> <ndim>``, big-endian dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    data = raw[4 + 4 * ndim:]
    if len(data) != expected:
        raise ValueError(f"{path} is truncated or padded: expected {expected} data bytes, found {len(data)}.")
    return np.frombuffer(data, dtype=dtype).reshape(tuple(dims))


def _find(raw_dir: Path, stem: str) -> Path:
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{stem} not found in {raw_dir}. Pass download=True (needs torchvision and a network, e.g. Colab), "
        "or put the original IDX files there."
    )


def load_mnist(root: str | Path = "data", kind: str = "mnist", split: str = "train", download: bool = False,
               size: int = 28):
    """Load MNIST or Fashion-MNIST as ``(images, labels)``.

    Args:
        root: folder holding ``<Name>/raw/`` (torchvision's layout).
        kind: ``"mnist"`` or ``"fashion"``.
        split: ``"train"`` or ``"test"``.
        download: fetch the files with torchvision first (online only).
        size: output height and width (28 keeps the originals).

    Returns:
        ``(N, 1, size, size)`` float32 in [-1, 1], and ``(N,)`` int64 labels.
    """
    check_choice("kind", kind, tuple(_FOLDERS))
    check_choice("split", split, tuple(_FILES))
    root = Path(root)
    if download:
        try:
            import torchvision.datasets as tvd
        except ImportError as err:
            raise ImportError("download=True needs torchvision: pip install 'course-utils[online]'.") from err
        cls = tvd.MNIST if kind == "mnist" else tvd.FashionMNIST
        cls(str(root), train=(split == "train"), download=True)
    raw_dir = root / _FOLDERS[kind] / "raw"
    img_stem, lbl_stem = _FILES[split]
    images = read_idx(_find(raw_dir, img_stem))
    labels = read_idx(_find(raw_dir, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"unexpected IDX shapes: images {images.shape}, labels {labels.shape}.")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) * 2 - 1
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
    return x, torch.from_numpy(labels.astype(np.int64))
