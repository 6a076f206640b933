"""Checkpoints that ship inside the package: list them, read their cards, load them verified.

Every file under ``weights/`` is listed in ``manifest.json`` with its SHA-256; ``load`` refuses a
file whose hash differs. Each entry is reproducible with ``python -m course_utils.train NAME``.

.. code-block:: python

    from course_utils import pretrained
    pretrained.list()                      # ['digit-classifier', 'digits-ddpm', ...]
    model = pretrained.load("digits-ddpm")
    images = model.sample(16, generator=torch.Generator().manual_seed(0))  # (16, 1, 16, 16) in [-1, 1]
"""

from __future__ import annotations

import builtins
import copy
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from .._validation import check_choice
from ..checkpoints import CheckpointError, load_checkpoint, strip_prefix
from ..config import get_device
from ..models import denoiser_from_dict
from ..models.clip import TinyCLIP
from ..models.digit_classifier import DigitClassifier
from ..models.shapes_judge import ShapesJudge
from ..models.vae import VAE, VAEConfig
from ..pipeline import DiffusionModel
from ..schedules import get_schedule

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights"
MANIFEST = HERE / "manifest.json"


REINSTALL = ("reinstall the package (pip install --force-reinstall the course, or `git checkout -- "
             "course_utils/pretrained` in a clone), or rebuild the file with `python -m course_utils.train NAME --install`")
FIELDS = ("file", "sha256", "kind")  # what load() needs of every manifest entry


def _manifest() -> dict:
    """The manifest, re-read when the file changes (another process may install a checkpoint)."""
    if not MANIFEST.is_file():
        raise CheckpointError(f"the list of shipped checkpoints, {MANIFEST}, is missing; {REINSTALL}.")
    return _read_manifest(MANIFEST, MANIFEST.stat().st_mtime_ns)


@lru_cache(maxsize=1)
def _read_manifest(path: Path, mtime_ns: int) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"{path} is damaged ({type(err).__name__}: {err}); {REINSTALL}.") from None
    if not isinstance(manifest, dict) or not all(isinstance(e, dict) for e in manifest.values()):
        raise CheckpointError(f"{path} is damaged (not a JSON object of entries); {REINSTALL}.")
    return manifest


def list(kind: str | None = None) -> builtins.list[str]:  # noqa: A001 - the issue names it `list`
    """Names of the shipped checkpoints (optionally only ``kind="diffusion"`` or ``"classifier"``)."""
    return sorted(n for n, e in _manifest().items() if kind is None or e.get("kind") == kind)


def info(name: str) -> dict:
    """The manifest entry: ``dataset``, ``method``, ``arch``, ``conditioning``, ``sha256``, ``card``, ..."""
    check_choice("pretrained model", name, list())
    entry = copy.deepcopy(_manifest()[name])  # the caller's copy: changing it changes no later load()
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise CheckpointError(f"{MANIFEST}: the entry {name!r} lacks {', '.join(missing)}; {REINSTALL}.")
    return entry


def path(name: str) -> Path:
    return WEIGHTS / info(name)["file"]


def load_tensors(name: str, device: str | torch.device = "cpu"):
    """The verified ``(tensors, meta)`` of a shipped checkpoint."""
    entry = info(name)
    if not (WEIGHTS / entry["file"]).is_file():
        raise CheckpointError(f"{WEIGHTS / entry['file']}, the weights of {name!r}, is missing; {REINSTALL}.")
    return load_checkpoint(WEIGHTS / entry["file"], expected_sha256=entry["sha256"], device=str(device))


def _diffusion(tensors: dict, meta: dict, entry: dict, device: torch.device) -> DiffusionModel:
    """The denoiser, with its schedule, text encoder and VAE (each loaded by name), as a ``DiffusionModel``."""
    net = _load_weights(denoiser_from_dict(meta.get("architecture", "unet"), meta["model_config"]), tensors, entry)
    text_encoder = load(meta["text_encoder"], device) if meta.get("text_encoder") else None
    vae = load(meta["vae"], device) if meta.get("vae") else None
    schedule = get_schedule(meta["schedule"]) if meta.get("schedule") else None  # None: flow matching
    return DiffusionModel(net.to(device), schedule, meta.get("prediction_type", "epsilon"), entry, text_encoder, vae,
                          meta.get("sampler_config"))


def _load_weights(model: torch.nn.Module, tensors: dict, entry: dict) -> torch.nn.Module:
    """The file's weights into ``model``; a file whose tensors do not fit the network is refused."""
    try:
        model.load_state_dict(strip_prefix(tensors))
    except RuntimeError as err:
        raise CheckpointError(f"{entry['file']} does not fit the network its metadata describes "
                              f"({str(err).splitlines()[0][:200]}); {REINSTALL}.") from None
    return model


def _network(build: Callable[[dict], torch.nn.Module]):
    """A loader for a plain network: ``build(meta)``, its weights, on ``device``, in eval mode."""
    def load_network(tensors: dict, meta: dict, entry: dict, device: torch.device) -> torch.nn.Module:
        return _load_weights(build(meta), tensors, entry).to(device).eval()
    return load_network


LOADERS = {  # checkpoint kind (the manifest's "kind") -> loader(tensors, meta, entry, device)
    "diffusion": _diffusion,
    "classifier": _network(lambda meta: DigitClassifier()),
    "judge": _network(lambda meta: ShapesJudge()),
    "clip": _network(lambda meta: TinyCLIP()),
    "vae": _network(lambda meta: VAE(VAEConfig.from_dict(meta["model_config"]))),
}


def load(name: str, device: str | torch.device | None = None):
    """A ready model: a ``DiffusionModel`` for diffusion checkpoints, the network otherwise."""
    device = get_device(device)
    entry = info(name)
    if entry["kind"] not in LOADERS:
        raise CheckpointError(f"unknown checkpoint kind {entry['kind']!r} in the manifest; known: {sorted(LOADERS)}.")
    tensors, meta = load_tensors(name)
    return LOADERS[entry["kind"]](tensors, meta, entry, device)


__all__ = ["LOADERS", "info", "list", "load", "load_tensors", "path"]
