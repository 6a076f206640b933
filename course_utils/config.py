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


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to compute on: every function that takes a ``device`` resolves it here.

    Order: ``prefer`` if given (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"`` or a ``torch.device``), else
    ``COURSE_DEVICE`` if set, else the first available of cuda, mps, cpu. Asking for a device that is
    not available raises a ``RuntimeError`` that says so.
    """
    wanted = prefer if prefer is not None else (os.environ.get("COURSE_DEVICE", "").strip().lower() or None)
    if wanted is None:
        return torch.device(next(d for d in DEVICES if _available(d)))
    if not isinstance(wanted, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', or a torch.device; got "
                        f"{type(wanted).__name__} {wanted!r}.")
    kind = wanted.type if isinstance(wanted, torch.device) else wanted.strip().lower().split(":")[0]
    check_choice("device", kind, DEVICES)
    device = torch.device(wanted.strip().lower() if isinstance(wanted, str) else wanted)
    if not _available(kind) or (kind == "cuda" and (device.index or 0) >= torch.cuda.device_count()):
        raise RuntimeError(f"Device {str(device)!r} was asked for but is not available here; use 'cpu' (or unset "
                           "COURSE_DEVICE).")
    return device


def by_mode(fast: T, cpu: T, full: T, mode: str | None = None) -> T:
    """Pick the value for the active mode, e.g. ``steps = by_mode(fast=20, cpu=2000, full=20000)``."""
    mode = check_choice("mode", mode or get_mode(), MODES)
    return {"fast": fast, "cpu": cpu, "full": full}[mode]


def fast_precision(device: str | torch.device | None = None) -> str:
    """``"bf16"`` where the hardware computes bf16 natively, else ``"fp32"``: a training run's
    ``precision`` for the convolutional networks (U-Nets, the VAE).

    bf16 autocast on CUDA, and on x86 CPUs with AVX-512 BF16 or AMX instructions: there a 1.18M-
    parameter U-Net's training step took 0.62 s instead of 0.95 s, the VAE's two thirds of its fp32
    time (docs/BENCHMARKS.md). Elsewhere (most laptops, Apple's MPS) PyTorch would emulate bf16,
    several times slower than fp32. The course's small DiTs are the exception: on such a CPU their
    step was slower in bf16 (the casts around many small matrix products cost more than they save),
    so notebook 07 trains them in fp32.
    """
    device = get_device(device)
    if device.type == "cuda":
        return "bf16"
    native = [getattr(torch.cpu, name, lambda: False) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if device.type == "cpu" and any(check() for check in native):  # private checks: absent in an old torch -> fp32
        return "bf16"
    return "fp32"


def describe() -> str:
    """One line for the top of a notebook: mode, device and torch version."""
    return f"mode={get_mode()} | device={get_device()} | torch {torch.__version__}"
