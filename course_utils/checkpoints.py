"""Checkpoints: safetensors only (no pickle), written atomically, verified by SHA-256.

A checkpoint is one ``.safetensors`` file: a flat ``{name: tensor}`` dict plus string metadata
(we store one JSON document under the key ``"course"``). Writes go to a temporary file in the
same folder, are flushed to disk, then renamed over the target, so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted: missing, truncated, tampered with, or of the wrong kind."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_writable(path: str | Path) -> Path:
    """Refuse, before any work, a checkpoint path that cannot be written: its folder (or a folder
    above it) is a file, the path itself is a folder, or the folder is not writable."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a folder; give a file name such as {path / 'run.safetensors'}.")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"cannot write {path}: {folder} is a file, not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(f"cannot write {path}: the folder {folder} is not writable (choose another path).")
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a write that was killed (they are never renamed into place)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> Path:
    """Write ``tensors`` (and JSON-able ``meta``) to ``path`` atomically; a write that fails (a full disk)
    leaves the previous file as it was and no temporary file behind."""
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    # safetensors wants contiguous CPU tensors that do not share memory.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(flat, tmp, metadata={"course": json.dumps(meta or {}, sort_keys=True)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except SafetensorError as err:  # how safetensors reports a full disk: as what it is, an OSError
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"could not write {path}: {err}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, expected_sha256: str | None = None, device: str = "cpu"):
    """Read a checkpoint as ``(tensors, meta)``; refuse it if its hash differs from ``expected_sha256``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}.")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.strip().lower():
            raise CheckpointError(
                f"{path.name} does not match its manifest (SHA-256 {actual[:12]}... instead of {expected_sha256[:12]}...): "
                "the file is damaged or was modified. Reinstall the package, or retrain it with "
                "`python -m course_utils.train PRESET`."
            )
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("course", "{}"))
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({err}).") from err
    return tensors, meta


def with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state`` with every key under ``prefix`` (``"model."``, ``"ema."``): one file holds several parts."""
    return {f"{prefix}{k}": v for k, v in state.items()}


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The part of a checkpoint stored under ``prefix``, with the prefix removed: a state dict to load."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
