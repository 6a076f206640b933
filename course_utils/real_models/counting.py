"""Counting a network: parameters, the memory its weights take, and the FLOPs of one call.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts 2, and what is
counted is matrix multiplies (linear layers, attention's ``Q K^T`` and ``softmax(.) V``) and
convolutions. Normalisation, activations, softmax and additions are not counted: they are a few
percent of a diffusion network's work. Attention is counted on every device: on the meta device
``scaled_dot_product_attention`` runs as matrix multiplies, and for the CPU's fused kernel, which
``FlopCounterMode`` leaves out, the formula it uses for the GPU kernels is added
(``profiling.flop_counter``, which the course's own cost measurements share).

The counts work the same on meta modules (``real_models.build``: no weights, no memory) and on the
course's own small models with ordinary CPU tensors (``describe``), so both fit in one table.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..profiling import flop_counter

BYTES = {"fp32": 4, "fp16": 2}


def flops_of(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` (a module, or a method such as ``vae.decode``),
    without gradients."""
    return count(fn, args, kwargs)[0]


def count(fn: Callable, args: tuple = (), kwargs: dict | None = None, blocks: dict[str, nn.Module] | None = None):
    """``(flops, flops_by_block, output)`` of one call; ``flops_by_block`` gives the FLOPs spent inside
    each of ``blocks`` (name -> submodule), with the rest, if any, under ``"(outside the blocks)"``."""
    blocks = blocks or {}
    by_block = dict.fromkeys(blocks, 0)
    handles = []
    with torch.no_grad(), flop_counter() as counter:
        for block_name, block in blocks.items():
            start = {}
            handles.append(block.register_forward_pre_hook(
                lambda mod, inp, start=start: start.__setitem__("f", counter.get_total_flops())))
            handles.append(block.register_forward_hook(
                lambda mod, inp, out, start=start, k=block_name: by_block.__setitem__(
                    k, by_block[k] + counter.get_total_flops() - start["f"])))
        try:
            output = fn(*args, **(kwargs or {}))
        finally:
            for h in handles:
                h.remove()
    total = int(counter.get_total_flops())
    outside = total - sum(by_block.values())
    by_block = {k: int(v) for k, v in by_block.items() if v}
    if blocks and outside:
        by_block["(outside the blocks)"] = int(outside)
    return total, by_block, output


def params(module: nn.Module) -> int:
    """Parameters, each counted once (a weight shared by two layers, once)."""
    return sum(p.numel() for p in module.parameters())


def memory(n_params: int) -> dict[str, int]:
    """Bytes the weights take: ``{"fp32": 4 n, "fp16": 2 n}`` (bf16 takes what fp16 does)."""
    return {k: b * int(n_params) for k, b in BYTES.items()}


def block_modules(module: nn.Module, open_: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """The top-level blocks: ``module``'s children, a ``ModuleList`` opened into its items
    (``down_blocks.0``, ...), and the children named in ``open_`` (a text model's wrappers) opened."""
    out = {}

    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in parent.named_children():
            path = prefix + child_name
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)) or path in open_:
                visit(child, path + ".")
            else:
                out[path] = child

    visit(module, "")
    return out


def block_params(blocks: dict[str, nn.Module]) -> dict[str, int]:
    """Parameters per block, each parameter counted in the first block that holds it (T5 shares its
    token embedding between ``shared`` and ``encoder.embed_tokens``); blocks without any left out."""
    seen: set[int] = set()
    out = {}
    for block_name, block in blocks.items():
        fresh = [p for p in block.parameters() if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        if fresh:
            out[block_name] = sum(p.numel() for p in fresh)
    return out


def describe(module: nn.Module, example_inputs) -> dict:
    """``{"params", "flops", "memory"}`` of any module: its parameters, the FLOPs of one call on
    ``example_inputs`` (a tuple of positional arguments, a dict of keyword arguments, or one tensor),
    and the bytes of its weights in fp32 and fp16. Puts the course's own models on the same table as
    ``real_models.anatomy``'s real ones (same counting rules, see the module docstring)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, dict):
        flops = count(module, (), example_inputs)[0]
    elif isinstance(example_inputs, (tuple, list)):
        flops = count(module, tuple(example_inputs))[0]
    else:
        raise TypeError("example_inputs must be a tuple of positional arguments, a dict of keyword arguments or "
                        f"one tensor, got {type(example_inputs).__name__}.")
    n = params(module)
    return {"params": n, "flops": int(flops), "memory": memory(n)}
