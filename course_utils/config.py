"""Run modes and device choice.

``COURSE_MODE`` picks how much work a notebook does:

- ``fast``: continuous integration. Train a few steps to prove a loop works, then load a shipped
  checkpoint; small sample counts. The whole series runs in minutes on two CPU cores.
- ``cpu``: a learner on a laptop. Real but small training runs, minutes each.
- ``full``: a GPU. The real training runs and sample counts.

Default: ``full`` when a CUDA device is present, else ``cpu``. ``COURSE_DEVICE`` overrides the
device (``cuda``, ``mps`` or ``cpu``).
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch

from ._validation import check_choice

MODES = ("fast", "cpu", "full")
DEVICES = ("cuda", "mps", "cpu")

T = TypeVar("T")


def get_mode() -> str:
    """The active mode: ``COURSE_MODE`` if set, else ``full`` with CUDA, else ``cpu``."""
    raw = os.environ.get("COURSE_MODE", "").strip().lower()
    if not raw:
        return "full" if torch.cuda.is_available() else "cpu"
    return check_choice("COURSE_MODE", raw, MODES)


def _available(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return True


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on.

    Order: ``prefer`` if given, else ``COURSE_DEVICE`` if set, else the first available of
    cuda, mps, cpu. Asking for a device that is not available raises a ``RuntimeError``.
    """
    wanted = prefer or os.environ.get("COURSE_DEVICE", "").strip().lower() or None
    if wanted is None:
        return torch.device(next(d for d in DEVICES if _available(d)))
    check_choice("device", wanted, DEVICES)
    if not _available(wanted):
        raise RuntimeError(f"Device {wanted!r} was asked for but is not available here; use 'cpu' or unset COURSE_DEVICE.")
    return torch.device(wanted)


def by_mode(fast: T, cpu: T, full: T, mode: str | None = None) -> T:
    """Pick the value for the active mode, e.g. ``steps = by_mode(fast=20, cpu=2000, full=20000)``."""
    mode = check_choice("mode", mode or get_mode(), MODES)
    return {"fast": fast, "cpu": cpu, "full": full}[mode]


def describe() -> str:
    """One line for the top of a notebook: mode, device and torch version."""
    return f"mode={get_mode()} | device={get_device()} | torch {torch.__version__}"
