"""Data-parallel training over several processes with PyTorch's DistributedDataParallel (DDP).

Launch one process per GPU (or per group of CPU cores) with ``torchrun``::

    torchrun --standalone --nproc_per_node=4 -m course_utils.train digits-ddpm

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; ``setup`` reads them, joins the
process group (NCCL on CUDA, gloo on the CPU) and picks this process's device.

How N processes train exactly as one does with the same global batch and seed: every process
holds the whole (small) data set and the same seeded generator, so each draws the *whole* batch
(indices, timesteps, noise, label dropout) and keeps only its own rows, ``shard(batch_size)``.
DDP averages the gradients of the N shard means, which is the gradient of the global batch mean
because the shards are the same size. What differs is only the order of floating-point sums.
The gradient averaging itself is DDP's (``torch.nn.parallel.DistributedDataParallel``).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from ..config import get_device

ALL = slice(None)  # the whole batch: one process


def launched() -> bool:
    """True when started by ``torchrun`` (or any launcher setting ``WORLD_SIZE``) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(prefer: str | None = None) -> torch.device:
    """Join the process group ``torchrun`` describes and return this process's device.

    ``prefer``: ``"cuda"`` or ``"cpu"`` (default: CUDA when available). On CUDA each process takes
    the GPU ``LOCAL_RANK`` and the NCCL backend; on the CPU the gloo backend.
    """
    if not launched():
        raise RuntimeError("distributed.setup() needs a launcher: run `torchrun --nproc_per_node=N -m "
                           "course_utils.train NAME` (WORLD_SIZE was not set above 1).")
    device = get_device(prefer or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"distributed training runs on 'cuda' or 'cpu', got {device.type!r}.")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def is_active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """The process that logs, saves checkpoints and evaluates (rank 0)."""
    return rank() == 0


def shard(batch_size: int) -> slice:
    """The rows of a global batch this process trains on: ``ALL`` in a single process."""
    n = world_size()
    if batch_size % n:
        raise ValueError(f"batch_size ({batch_size}) is the global batch and must divide evenly over the "
                         f"{n} processes: use a multiple of {n}, or another --nproc_per_node.")
    per = batch_size // n
    return ALL if n == 1 else slice(rank() * per, (rank() + 1) * per)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` inside DDP when a process group is active (it broadcasts rank 0's weights); else ``model``."""
    if not is_active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (a copy; ``value`` itself in a single process)."""
    if not is_active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def barrier() -> None:
    if is_active():
        dist.barrier()


def teardown() -> None:
    """Leave the process group (every process, at the end), once every process has arrived: the
    others finish their last step while rank 0 still writes the checkpoint and the card, and a
    process that dropped its connections then could take the group down with it (a 2-process test
    run under load once aborted at exit: "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
