"""Plain helpers that test modules in several folders call (fixtures live in the conftest.py files)."""

import contextlib
import os
import subprocess
from pathlib import Path

import torch

from course_utils.models import UNet, UNetConfig

ROOT = Path(__file__).resolve().parents[1]  # the repository


def random_weights(net: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Every parameter of ``net`` drawn from N(0, std^2), in place; returns ``net``.

    A fresh network's zero-initialised output layers would hide mistakes (every output is 0), so
    the tests that compare outputs give every weight a random, non-zero value first.
    """
    for p in net.parameters():
        torch.nn.init.normal_(p, std=std)
    return net


def latent_unet() -> UNet:
    """A small U-Net over 4-channel 8x8 latents (the shapes VAE's latent shape), without attention."""
    return UNet(UNetConfig(sample_size=8, in_channels=4, base_channels=16, channel_mults=(1, 2), attention_levels=()))


def random_digits(n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, 16, 16)`` uniform noise in [-1, 1]: stand-ins for digits where only the shape matters."""
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


CAPS = ["a red circle on a blue background", "a green square on a white background"]  # two shapes captions


@contextlib.contextmanager
def tmpfs(path, size: str = "64k", read_only: bool = False):
    """A small tmpfs mounted at ``path`` (made if needed), unmounted after; yields None where the
    machine does not allow mounting (not root, no mount namespace), so a test can simulate instead."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(path):
    """A folder no process may write to: a read-only tmpfs as root (root ignores mode bits), mode 555
    otherwise. Yields None where neither can be had."""
    if os.geteuid() == 0:
        with tmpfs(path, read_only=True) as mounted:
            yield mounted
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)
