"""What a sampling step costs: counted floating-point operations and measured wall time.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplies and
convolutions; a multiply-add counts 2), so they are exact for the network and the same on every
machine. Times are medians of repeated calls on whatever device the model lives on (CUDA calls are
synchronised), so they depend on the machine: print them, never assert them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ._validation import check_positive_int


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter():
    """A ``FlopCounterMode`` (2 FLOPs per multiply-add, in matrix products and convolutions) that also
    counts the CPU's fused attention kernel, which PyTorch's counter leaves out: the formula it uses
    for the GPU's attention kernels is added for it, so attention counts the same on every device."""
    from torch.utils.flop_counter import FlopCounterMode

    extra = {}
    cpu_attention = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_attention is not None:
        extra[cpu_attention] = _sdpa_flops
    return FlopCounterMode(display=False, custom_mapping=extra)


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (no gradients; ``flop_counter``'s rules)."""
    with torch.no_grad(), flop_counter() as counter:
        fn()
    return int(counter.get_total_flops())


def count_training_flops(model, x: torch.Tensor, t: torch.Tensor) -> int:
    """Floating-point operations of one training call: ``model(x, t)``'s forward and the backward
    of a mean-squared loss on it (about 3x the forward: the gradients for inputs and weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(x, t).float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: torch.device | None = None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    check_positive_int("repeats", repeats)
    sync = (lambda: torch.cuda.synchronize(device)) if device is not None and device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_call(model, n: int, side: int | None = None, prompt: str = "") -> Callable[[], torch.Tensor]:
    """One call of ``model``'s denoiser (a ``DiffusionModel``) on ``n`` random inputs at ``side`` x ``side``.

    The inputs are made once, outside the returned function: timestep 500, and the condition the
    model takes (``prompt`` for a text model, label 0 for a class model), so timing the function
    times the network alone. ``side`` defaults to the model's own ``sample_size``.
    """
    n = check_positive_int("n", n)
    net, cfg, dev = model.denoiser, model.denoiser.config, model.device
    side = side or cfg.sample_size
    x = torch.randn(n, cfg.in_channels, side, side, device=dev)
    t = torch.full((n,), 500, device=dev)
    kw = {}
    if model.info.get("conditioning") == "text":
        states, masks = model.text_encoder.token_states([prompt] * n)  # (n, L, D), (n, L)
        kw = {"encoder_hidden_states": states.to(dev), "encoder_attention_mask": masks.to(dev)}
    elif model.info.get("conditioning") == "class":
        kw = {"class_labels": torch.zeros(n, dtype=torch.long, device=dev)}
    return lambda: net(x, t, **kw)


def sampling_cost(model, batch: int = 16, steps: int = 25, guided: bool = True, repeats: int = 5) -> dict[str, float]:
    """The cost of drawing ``batch`` images with ``steps`` sampler steps, split into its parts.

    One step is one denoiser call on ``2 * batch`` inputs with guidance (conditional and
    unconditional halves), ``batch`` without; a latent model adds one decode of ``batch``
    latents at the end. Text conditioning, when the model has it, uses the empty prompt (the
    cost does not depend on the words).

    Returns a dict with ``step_flops`` and ``step_s`` (one step for the whole batch), ``decode_flops``
    and ``decode_s`` (0 for a pixel model), ``image_flops`` and ``image_s`` (per image, all steps and
    the decode: ``(steps * step + decode) / batch``), and the ``decode_share`` of ``image_s``.
    """
    check_positive_int("batch", batch)
    check_positive_int("steps", steps)
    dev = model.device
    step = network_call(model, 2 * batch if guided else batch)
    out = {"step_flops": count_flops(step), "step_s": time_call(step, repeats, device=dev)}
    if model.vae is not None:
        z = torch.randn(batch, *model.vae.latent_shape, device=dev)
        dec = lambda: model.vae.decode(z)  # noqa: E731
        out |= {"decode_flops": count_flops(dec), "decode_s": time_call(dec, repeats, device=dev)}
    else:
        out |= {"decode_flops": 0, "decode_s": 0.0}
    out["image_flops"] = (steps * out["step_flops"] + out["decode_flops"]) / batch
    out["image_s"] = (steps * out["step_s"] + out["decode_s"]) / batch
    out["decode_share"] = out["decode_s"] / batch / out["image_s"]
    return out
