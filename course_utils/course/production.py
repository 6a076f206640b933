"""Production notes, measured: memory and time by precision and batch, and where latency goes.

The course text's production notes give Stable Diffusion's numbers on an A10G. This module measures
the same quantities on our own models, on whatever device they live on:

- ``peak_memory``: the most memory a call holds at once (CUDA: the caching allocator's peak; CPU:
  the allocations PyTorch's profiler records, replayed in time order).
- ``step_costs``: time and peak memory of one network call for each precision and batch size.
- ``precision_slowdown``: how many times as long a call takes in reduced precision as in fp32 (on a
  CPU without bf16 instructions, 8-20x: worth knowing before sampling hundreds of images in bf16).
- ``latency_breakdown``: for a latent text-to-image model, the latency each production knob controls
  (sampling steps, resolution, precision, VAE decode, text encode), largest first: the text's
  "latency bottleneck order", measured rather than quoted.

Times and memory depend on the machine: print them, never assert them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from .._validation import check_choice, check_positive_int
from ..config import get_device
from ..profiling import network_call, time_call

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """A context that runs the network in ``precision`` (autocast) on ``device``; fp32 is a no-op."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def _cpu_peak(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)  # allocations (+) and frees (-) in order
    live = peak = 0
    for e in events:
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Bytes: the most memory ``fn()`` holds at once beyond what was allocated before it (no gradients)."""
    device = get_device(device)
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        if device.type != "cpu":
            raise ValueError(f"peak_memory measures 'cpu' and 'cuda' devices, got {device.type!r}.")
        return _cpu_peak(fn)


def step_costs(model, batches=(1, 16, 128), precisions=("fp32", "bf16"), repeats: int = 5) -> list[dict]:
    """Time and peak memory of one network call for every ``(precision, batch)``.

    Returns rows ``{"precision", "batch", "ms", "ms_per_image", "memory_mb", "mb_per_image"}``
    (memory: what the call holds beyond the weights and inputs).
    """
    batches = [check_positive_int("batch", b) for b in batches]
    rows = []
    for precision in precisions:
        for b in batches:
            call = network_call(model, b)
            with autocast(model.device, precision):
                seconds = time_call(call, repeats, device=model.device)
                memory = peak_memory(call, model.device)
            rows.append({"precision": precision, "batch": b, "ms": 1000 * seconds, "ms_per_image": 1000 * seconds / b,
                         "memory_mb": memory / 2**20, "mb_per_image": memory / 2**20 / b})
    return rows


def precision_slowdown(model, precision: str = "bf16", batch: int = 4, repeats: int = 3) -> float:
    """How many times as long one network call takes under ``precision`` autocast as in fp32.

    Above 1 means slower. On a GPU bf16 is about as fast as fp32 or faster; on a CPU without bf16
    instructions PyTorch emulates it: digits-class took 8-9x as long at batch 4 and 16x at batch 16
    on a 2-core AMD EPYC without AVX-512 (docs/BENCHMARKS.md). Notebook 10 measures this before it
    sizes its reduced-precision demo.
    """
    check_choice("precision", precision, PRECISIONS)
    call = network_call(model, check_positive_int("batch", batch))
    fp32 = time_call(call, repeats, device=model.device)
    with autocast(model.device, precision):
        low = time_call(call, repeats, device=model.device)
    return low / fp32


def latency_breakdown(model, steps: int = 25, fast_steps: int = 4, batch: int = 1, repeats: int = 5,
                      prompt: str = "a red circle on a blue background") -> list[dict]:
    """How much of one image's latency each production knob controls, largest first.

    For a latent text model (``model.vae`` and ``model.text_encoder`` set) with classifier-free
    guidance (each step is one call on ``2 * batch`` inputs), at ``steps`` sampler steps in fp32:

    - ``sampling steps``: the time ``steps - fast_steps`` steps take (what a 4-step model saves);
    - ``resolution``: the time ``steps`` calls at twice the latent side (4x the pixels) take beyond
      ``steps`` calls at the model's own side;
    - ``precision``: the time bf16 autocast saves over ``steps`` fp32 calls (negative: it costs);
    - ``VAE decode``: one decode; ``text encode``: encoding the prompt once (cacheable).

    Returns rows ``{"factor", "change", "ms", "share", "baseline_ms"}`` sorted by ``ms``, largest first:
    ``ms`` per image, ``share`` of ``baseline_ms``, the fp32 pipeline's latency per image (``steps``
    guided calls, one decode, one prompt encoding).
    """
    steps, fast_steps, batch = (check_positive_int(k, v) for k, v in
                                (("steps", steps), ("fast_steps", fast_steps), ("batch", batch)))
    if fast_steps >= steps:
        raise ValueError(f"fast_steps must be smaller than steps, got {fast_steps} >= {steps}.")
    if model.vae is None or model.text_encoder is None:
        raise ValueError("latency_breakdown needs a latent text model (a VAE and a text encoder), such as "
                         "pretrained.load('shapes-latent').")
    dev, side = model.device, model.denoiser.config.sample_size
    call = time_call(network_call(model, 2 * batch, prompt=prompt), repeats, device=dev)
    call_2x = time_call(network_call(model, 2 * batch, 2 * side, prompt), repeats, device=dev)
    with autocast(dev, "bf16"):
        call_bf16 = time_call(network_call(model, 2 * batch, prompt=prompt), repeats, device=dev)
    z = torch.randn(batch, *model.vae.latent_shape, device=dev)
    decode = time_call(lambda: model.vae.decode(z), repeats, device=dev)
    encode = time_call(lambda: model.text_encoder.token_states([prompt] * batch), repeats, device=dev)
    ms = 1000 / batch
    rows = [
        {"factor": "sampling steps", "change": f"{steps} -> {fast_steps} steps", "ms": (steps - fast_steps) * call * ms},
        {"factor": "resolution", "change": f"latents {2 * side}x{2 * side} -> {side}x{side} (a quarter of the pixels)",
         "ms": steps * (call_2x - call) * ms},
        {"factor": "precision", "change": "fp32 -> bf16 autocast", "ms": steps * (call - call_bf16) * ms},
        {"factor": "VAE decode", "change": "a cheaper decoder (its whole cost)", "ms": decode * ms},
        {"factor": "text encode", "change": "cache the prompt encoding", "ms": encode * ms},
    ]
    baseline = (steps * call + decode + encode) * ms
    for r in rows:
        r |= {"share": r["ms"] / baseline, "baseline_ms": baseline}
    return sorted(rows, key=lambda r: r["ms"], reverse=True)


__all__ = ["PRECISIONS", "autocast", "latency_breakdown", "peak_memory", "precision_slowdown", "step_costs"]
