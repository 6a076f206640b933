"""Benchmark 2: training throughput, our U-Net against diffusers' ``UNet2DModel`` of the same size.

Both networks are built from one of our presets (``diffusers_unet_like`` copies the widths, depth
and attention placement, so parameters and FLOPs are equal) and go through the course's own loop,
``course_utils.training.train``: the same data on the device, batch, optimiser, EMA and clipping.
Each setting is a cell:

- ``fp32``: eager, float32;
- ``bf16``: eager under bf16 autocast;
- ``bf16+compile``: ``torch.compile`` with fixed shapes; on CUDA with CUDA graphs
  (``mode="reduce-overhead"``), which is the course's ``TrainConfig(compile=True)``;
- ``fp32+graph``, ``bf16+graph`` (CUDA only): the whole eager step (draws, forward, backward,
  clipping, AdamW, EMA) recorded once as one CUDA graph and replayed, ``TrainConfig(cuda_graph=True)``.

Images/s leave out the first ``training.TIMED_AFTER`` steps (compiling, graph capture). TFLOP/s
are the counted training FLOPs per image (forward + backward, ``profiling.count_training_flops``)
times images/s; on a GPU whose dense peak is in ``PEAK_TFLOPS`` they are also shown as a share of
it (bf16 cells against the bf16 peak, fp32 cells against TF32, which cuDNN uses for fp32
convolutions by default). Prints Markdown rows for docs/BENCHMARKS.md.

``--profile`` adds, per network and setting, what limits a step on CUDA (``torch.profiler`` with CUDA
activity over the steps after the first ``TIMED_AFTER``): GPU kernels per step, the GPU's busy time
per step (kernel time summed) against the step's wall time, and the costliest kernels. A busy share
far under 100% means the GPU waits for the CPU to launch work (launch-bound).

Usage: ``python benchmarks/training_throughput.py [--device cuda] [--presets digits-small bench-32]
[--batch 128] [--steps 40] [--settings fp32 bf16 bf16+compile] [--profile]``; the default settings
are the first three on a CPU, all five on CUDA.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import device_name, row  # noqa: E402

from course_utils.config import get_device  # noqa: E402
from course_utils.models import UNet  # noqa: E402
from course_utils.models.diffusers_unet import diffusers_unet_like  # noqa: E402
from course_utils.models.unet import UNET_PRESETS, UNetConfig, get_unet_config  # noqa: E402
from course_utils.profiling import count_training_flops  # noqa: E402
from course_utils.schedules import get_schedule  # noqa: E402
from course_utils.training import STEP_MARK, TIMED_AFTER, TrainConfig, train  # noqa: E402

# A 32x32 RGB network of about 9M parameters (4 levels, attention at 16x16): the size where a GPU
# stops being launch-bound, beside the course's 16x16 digits presets.
EXTRA_PRESETS = {"bench-32": UNetConfig(sample_size=32, in_channels=3, base_channels=64, channel_mults=(1, 2, 2, 2),
                                        num_res_blocks=2, attention_levels=(1,))}
SETTINGS = {"fp32": ("fp32", {}), "bf16": ("bf16", {}), "bf16+compile": ("bf16", {"compile": True}),
            "fp32+graph": ("fp32", {"cuda_graph": True}), "bf16+graph": ("bf16", {"cuda_graph": True})}
# Dense (no sparsity) peaks from NVIDIA's data sheets, TFLOP/s: (TF32, BF16).
PEAK_TFLOPS = {"H100 PCIe": (378.0, 756.0), "H100": (494.7, 989.4), "H200": (494.7, 989.4), "A100": (156.0, 312.0)}


def preset_config(name: str) -> UNetConfig:
    if name in EXTRA_PRESETS:
        return EXTRA_PRESETS[name]
    if name not in UNET_PRESETS:
        raise SystemExit(f"unknown preset {name!r}; accepted: {', '.join(list(UNET_PRESETS) + list(EXTRA_PRESETS))}.")
    return get_unet_config(name)


def training_data(cfg: UNetConfig, n: int = 2048) -> torch.Tensor:
    """The real digits (1 x 16 x 16) for the digits presets; uniform noise in [-1, 1] otherwise
    (speed does not depend on what the pixels show)."""
    from course_utils.data import load_digits

    digits = load_digits()[0]
    if (cfg.in_channels, cfg.sample_size, cfg.sample_size) == tuple(digits.shape[1:]):
        return digits
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=g) * 2 - 1


def peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (tf32, bf16) in PEAK_TFLOPS.items():  # "H100 PCIe" is checked before "H100"
        if key in name:
            return bf16 if precision == "bf16" else tf32
    return None


def measure(network: str, cfg: UNetConfig, setting: str, data, device, batch: int, steps: int) -> dict:
    """One cell: images/s of the course's loop after its first steps."""
    precision, switches = SETTINGS[setting]
    torch.manual_seed(0)
    model = UNet(cfg) if network == "ours" else diffusers_unet_like(cfg)
    config = TrainConfig(steps=steps, batch_size=batch, lr=2e-4, warmup_steps=1, log_every=steps,
                         precision=precision, **switches)
    result = train(model, data, get_schedule("cosine"), config, device=device, progress=False)
    return {"images_per_s": result.steady_images_per_s, "warmup_s": result.warmup_s,
            "final_loss": result.losses[-1][1]}


def profile_cell(network: str, cfg: UNetConfig, setting: str, data, device, batch: int, steps: int = 20) -> dict:
    """Kernels per step and the GPU's busy share of a step, over ``steps`` steps after the first
    ``TIMED_AFTER`` (torch.profiler). The window opens where the loop's ``training.STEP_MARK`` range
    of step ``TIMED_AFTER`` begins (the loop has just synchronised: the GPU is idle) and closes when
    the last kernel ends, so a host that runs ahead of the GPU (a replayed CUDA graph) is timed right."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if SETTINGS[setting][1].get("compile"):  # compile outside the profiler (the profiled run reuses Dynamo's and Inductor's caches)
        measure(network, cfg, setting, data, device, batch, TIMED_AFTER + 1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        measure(network, cfg, setting, data, device, batch, TIMED_AFTER + steps)
    events = prof.events()
    starts = sorted(e.time_range.start for e in events if e.name == STEP_MARK and e.device_type == DeviceType.CPU)
    t0 = starts[TIMED_AFTER]  # microseconds, one clock for host and device events
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and e.time_range.start >= t0
               and not getattr(e, "is_user_annotation", False)]  # a record_function's span on the GPU is no kernel
    t1 = max([e.time_range.end for e in kernels]  # no GPU: the host's last step ends the window
             or [e.time_range.end for e in events if e.name == STEP_MARK and e.device_type == DeviceType.CPU])
    by_name = Counter()
    for e in kernels:
        by_name[e.name] += e.time_range.elapsed_us()
    n = len(starts) - TIMED_AFTER
    return {"kernels": len(kernels) / n, "busy_ms": sum(by_name.values()) / n / 1e3, "wall_ms": (t1 - t0) / n / 1e3,
            "top": by_name.most_common(3), "steps": n}


def profile_rows(name: str, args, device: torch.device) -> None:
    """Print one row per network and setting: what a training step spends its time on."""
    cfg = preset_config(name)
    data = training_data(cfg)
    for network in ("ours", "diffusers"):
        for setting in args.settings:
            label = "our UNet" if network == "ours" else "diffusers UNet2DModel"
            try:
                p = profile_cell(network, cfg, setting, data, device, args.batch)
            except Exception as err:  # one cell's failure (say, the profiler and CUDA graphs) spares the others
                print(row(f"profile, {label}, {name}, {setting}", f"failed: {type(err).__name__}: {err}"[:300],
                          "-", device), flush=True)
                continue
            top = "; ".join(f"{k[:60]} {v / p['steps'] / 1e3:.2f} ms" for k, v in p["top"])
            print(row(f"profile, {label}, {name}, {setting}, batch {args.batch}",
                      f"{p['kernels']:.0f} kernels per step; GPU busy {p['busy_ms']:.2f} ms of a {p['wall_ms']:.2f} ms "
                      f"step under the profiler ({100 * p['busy_ms'] / p['wall_ms']:.0f}%); costliest: {top}",
                      f"{p['steps']} profiled steps", device), flush=True)


def training_flops_per_image(cfg: UNetConfig, network: str, batch: int = 4) -> tuple[int, int]:
    """(parameters, forward + backward FLOPs per image)."""
    model = UNet(cfg) if network == "ours" else diffusers_unet_like(cfg)
    x = torch.randn(batch, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    t = torch.randint(0, 1000, (batch,))
    return model.num_parameters(), count_training_flops(model, x, t) // batch


def run_preset(name: str, args, device: torch.device) -> list[str]:
    cfg = preset_config(name)
    data = training_data(cfg)
    lines, best = [], {}
    for network in ("ours", "diffusers"):
        params, flops = training_flops_per_image(cfg, network)
        for setting in args.settings:
            cell = measure(network, cfg, setting, data, device, args.batch, args.steps)
            tflops = flops * cell["images_per_s"] / 1e12
            p = peak(device, SETTINGS[setting][0])
            share = f", {100 * tflops / p:.2f}% of {p:g} peak" if p else ""
            label = "our UNet" if network == "ours" else "diffusers UNet2DModel"
            lines.append(row(f"training, {label}, {name} ({params:,} parameters, {flops / 1e6:.1f} MFLOP per image), "
                             f"{setting}, batch {args.batch}",
                             f"{cell['images_per_s']:,.0f} images/s ({tflops:.3f} TFLOP/s{share}); first "
                             f"{TIMED_AFTER} steps {cell['warmup_s']:.1f} s",
                             f"{args.steps - TIMED_AFTER} timed steps", device))
            print(lines[-1], flush=True)
            best.setdefault(network, {})[setting] = cell["images_per_s"]
    ours, theirs = best["ours"], best["diffusers"]
    o_set, t_set = max(ours, key=ours.get), max(theirs, key=theirs.get)
    summary = [row(f"training, {name}: our best ({o_set}) / diffusers' best ({t_set})",
                   f"{ours[o_set] / theirs[t_set]:.2f}x", "the cells above", device)]
    if "fp32" in ours:
        summary.append(row(f"training, {name}: our best ({o_set}) / our eager fp32",
                           f"{ours[o_set] / ours['fp32']:.2f}x", "the cells above", device))
    for line in summary:
        print(line, flush=True)
    return lines + summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: the best available")
    parser.add_argument("--presets", nargs="+", help="our U-Net presets or 'bench-32' (default: digits-small on "
                        "the CPU; digits-small, digits and bench-32 on CUDA)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help=f"steps per cell, the first {TIMED_AFTER} untimed")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS),
                        help="default: every setting on CUDA; fp32, bf16 and bf16+compile on a CPU")
    parser.add_argument("--profile", action="store_true", help="what limits a step (CUDA only), instead of images/s")
    args = parser.parse_args(argv)
    if args.steps <= TIMED_AFTER:
        parser.error(f"--steps must be more than {TIMED_AFTER}: the first {TIMED_AFTER} steps are not timed.")
    device = get_device(args.device)
    if args.profile and device.type != "cuda":
        parser.error("--profile reads GPU kernel times: it needs --device cuda.")
    on_cpu = [s for s in SETTINGS if not SETTINGS[s][1].get("cuda_graph")]
    args.settings = args.settings or (list(SETTINGS) if device.type == "cuda" else on_cpu)
    if device.type != "cuda" and set(args.settings) - set(on_cpu):
        parser.error(f"{sorted(set(args.settings) - set(on_cpu))} record CUDA graphs: they need --device cuda "
                     f"(on a CPU choose from {on_cpu}).")
    presets = args.presets or (["digits-small", "digits", "bench-32"] if device.type == "cuda" else ["digits-small"])
    for name in presets:
        preset_config(name)  # unknown names fail before any training
    print(f"# Benchmark 2 on {device_name(device)}, torch {torch.__version__}\n")
    print("| what | value | samples | device | torch | date |\n|---|---|---|---|---|---|")
    for name in presets:
        if args.profile:
            profile_rows(name, args, device)
        else:
            run_preset(name, args, device)


if __name__ == "__main__":
    main()
