"""Checkpoints that ship inside the package: list them, read their cards, load them verified.

Every file under ``weights/`` is listed in ``manifest.json`` with its SHA-256; ``load`` refuses a
file whose hash differs. Each entry is reproducible with ``python -m course_utils.train NAME``.

.. code-block:: python

    from course_utils import pretrained
    pretrained.list()                      # ['digit-classifier', 'digits-ddpm']
    model = pretrained.load("digits-ddpm")
    images = model.sample(16, generator=torch.Generator().manual_seed(0))  # (16, 1, 16, 16) in [-1, 1]
"""

from __future__ import annotations

import builtins
import json
from functools import lru_cache
from pathlib import Path

import torch

from .._validation import check_choice
from ..checkpoints import CheckpointError, load_checkpoint

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights"
MANIFEST = HERE / "manifest.json"


def _manifest() -> dict:
    """The manifest, re-read when the file changes (another process may install a checkpoint)."""
    return _read_manifest(MANIFEST, MANIFEST.stat().st_mtime_ns if MANIFEST.exists() else None)


@lru_cache(maxsize=1)
def _read_manifest(path: Path, mtime_ns: int | None) -> dict:
    return json.loads(path.read_text()) if mtime_ns is not None else {}


def list(kind: str | None = None) -> builtins.list[str]:  # noqa: A001 - the issue names it `list`
    """Names of the shipped checkpoints (optionally only ``kind="diffusion"`` or ``"classifier"``)."""
    return sorted(n for n, e in _manifest().items() if kind is None or e["kind"] == kind)


def info(name: str) -> dict:
    """The manifest entry: ``dataset``, ``method``, ``arch``, ``conditioning``, ``sha256``, ``card``, ..."""
    check_choice("pretrained model", name, list())
    return dict(_manifest()[name])


def path(name: str) -> Path:
    return WEIGHTS / info(name)["file"]


def load_tensors(name: str, device: str | torch.device = "cpu"):
    """The verified ``(tensors, meta)`` of a shipped checkpoint."""
    entry = info(name)
    return load_checkpoint(WEIGHTS / entry["file"], expected_sha256=entry["sha256"], device=str(device))


def load(name: str, device: str | torch.device | None = None):
    """A ready model: a ``DiffusionModel`` for diffusion checkpoints, the network otherwise."""
    from ..config import get_device

    device = torch.device(device) if device is not None else get_device()
    entry = info(name)
    if entry["kind"] == "diffusion":
        from ..pipeline import DiffusionModel

        return DiffusionModel.from_checkpoint(name, device)
    if entry["kind"] == "classifier":
        from ..metrics.classifier import DigitClassifier

        tensors, _ = load_tensors(name)
        model = DigitClassifier()
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        return model.to(device).eval()
    if entry["kind"] == "judge":
        from ..metrics.shapes_judge import ShapesJudge

        tensors, _ = load_tensors(name)
        model = ShapesJudge()
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        return model.to(device).eval()
    if entry["kind"] == "clip":
        from ..models.clip import TinyCLIP

        tensors, _ = load_tensors(name)
        model = TinyCLIP()
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        return model.to(device).eval()
    if entry["kind"] == "vae":
        from ..models.vae import VAE, VAEConfig

        tensors, meta = load_tensors(name)
        model = VAE(VAEConfig.from_dict(meta["model_config"]))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        return model.to(device).eval()
    raise CheckpointError(f"unknown checkpoint kind {entry['kind']!r} in the manifest.")


__all__ = ["info", "list", "load", "load_tensors", "path"]
