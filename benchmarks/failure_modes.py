"""Benchmark 5: notebook 10's failure-fix table and production notes at full size.

Runs every ``course_utils.course.failures.demo_*`` at the sizes of ``COURSE_MODE=cpu`` (898 digits per
row, all 90 captions, 300 fine-tuning steps), then the production measurements: one U-Net call's
time and peak memory by precision and batch (``production.step_costs``) and the latency bottleneck
order of ``shapes-latent`` (``production.latency_breakdown``); and the nearest-neighbour copy check
on every shipped digits model. Prints Markdown rows for
docs/BENCHMARKS.md.

``--write-finetune`` runs only the fine-tuning demo and stores it with the package
(``course_utils/course/recorded/finetune_collapse.safetensors``): notebook 10 shows that run in ``fast``
mode, where it fine-tunes only a few steps itself.

Usage: ``python benchmarks/failure_modes.py [--device cpu] [--skip-failures] [--skip-memorization] [--skip-production]
[--write-finetune]``
"""

from __future__ import annotations

import argparse
import time

import torch

from course_utils import pretrained
from course_utils.course import evaluation, failures, production
from course_utils.config import get_device
from course_utils.data import load_digits
from course_utils.data.shapes import BACKGROUNDS, COLORS, SHAPES, caption
from report import device_name, row

FINETUNE_CHECKPOINTS = (0, 40, 80, 120, 200, 300)


def failure_rows(device: torch.device) -> list[str]:
    prompts = [caption(s, c, b) for s in SHAPES for c in COLORS for b in BACKGROUNDS if c != b]
    demos, seconds = [], {}
    for name, run in (("schedule", lambda: [failures.demo_schedule(n=898, steps=20, device=device)]),
                      ("guidance", lambda: list(failures.demo_guidance(prompts, steps=15, device=device))),
                      ("finetune", lambda: [failures.demo_finetune(FINETUNE_CHECKPOINTS, device=device)]),
                      ("seed", lambda: [failures.demo_seed(n=8, steps=10, device=device)]),
                      ("precision", lambda: [failures.demo_precision(n=898, steps=20, device=device)])):
        start = time.perf_counter()
        demos += run()
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    print(failures.failure_table(demos))
    out = [row(f"failure-fix: {d.failure} ({d.cause} -> {d.fix}): {d.metric}, with the failure / with the fix",
               f"{d.broken:.4g} / {d.fixed:.4g} ({'fixed' if d.improved else 'no improvement'})", d.samples, device)
           for d in demos]
    guidance = demos[1].details
    out.append(row("failure-fix: shapes-latent guidance sweep, adherence (all four heads) at w = "
                   + " / ".join(f"{w:g}" for w in guidance["adherence"]),
                   " / ".join(f"{v:.1%}" for v in guidance["adherence"].values()), demos[1].samples, device))
    return out + collapse_rows(next(d for d in demos if d.failure == "Fine-tune collapse"), device)


def collapse_rows(demo: failures.Demo, device: torch.device) -> list[str]:
    s = demo.details["settings"]
    return [row(f"fine-tune collapse, {name}: samples copying one of the {s['k']} images after "
                + " / ".join(str(r["steps"]) for r in demo.details[name]) + " steps",
                " / ".join(f"{r['copy_share']:.1%}" for r in demo.details[name]),
                f"{s['n']} digits of class {s['label']} per point, w = 3, DDIM-{s['sample_steps']}, seed {s['seed']}; "
                f"lr {s['lr']:g}, batch {s['batch_size']}", device)
            for name in ("plain", "regularized")]


def write_finetune(device: torch.device) -> list[str]:
    """Run the fine-tuning demo at cpu mode's size and store it for notebook 10's fast mode."""
    start = time.perf_counter()
    demo = failures.demo_finetune(FINETUNE_CHECKPOINTS, device=device)
    seconds = time.perf_counter() - start
    path = failures.write_recorded_finetune(demo, device_name(device), seconds)
    print(f"wrote {path} ({seconds:.0f} s)", flush=True)
    return [row(f"fine-tune collapse, both curves ({seconds:.1f} s, {torch.get_num_threads()} threads), stored for "
                "notebook 10's fast mode", f"{demo.broken:.1%} / {demo.fixed:.1%} after {FINETUNE_CHECKPOINTS[-1]} "
                "steps, plain / regularised", demo.samples, device)] + collapse_rows(demo, device)


def memorization_rows(device: torch.device) -> list[str]:
    """The nearest-neighbour copy check on every shipped digits model (898 unconditional samples each)."""
    digits = load_digits()[0]  # every model here was trained on all 1,797
    out = []
    for name in ("digits-ddpm", "digits-class", "digits-class-linear", "digits-flow", "digits-student",
                 "dit-digits-b"):
        model = pretrained.load(name, device=device)
        steps = 2 if model.is_consistency else 20
        x = model.sample(898, steps=steps, generator=torch.Generator().manual_seed(0), batch_size=898)
        rep = evaluation.memorization_report(x, digits)
        out.append(row(f"copy check, {name} ({model.default_sampler}-{steps}): median RMS distance to the nearest "
                       "training digit (real held-out digits: yardstick) / share under the copy threshold",
                       f"{rep['median']:.3f} (yardstick {rep['yardstick_median']:.3f}) / {rep['copies']:.2%} "
                       f"(threshold {rep['threshold']:.3f})", "898 unconditional samples, seed 0", device))
        print(out[-1], flush=True)
    return out


def production_rows(device: torch.device) -> list[str]:
    net = pretrained.load("digits-class", device=device)
    out = []
    for r in production.step_costs(net, batches=(1, 16, 128, 512), precisions=("fp32", "bf16"), repeats=5):
        out.append(row(f"digits-class U-Net call, {r['precision']}, batch {r['batch']}: time / peak activation memory",
                       f"{r['ms']:.1f} ms ({r['ms_per_image']:.2f} ms per image) / {r['memory_mb']:.1f} MB",
                       "median of 5 calls", device))
    latent = pretrained.load("shapes-latent", device=device)
    rows = production.latency_breakdown(latent, steps=25, fast_steps=4, batch=1, repeats=10)
    order = ", ".join(f"{r['factor']} {r['ms']:.1f} ms ({r['share']:.0%})" for r in rows)
    out.append(row(f"shapes-latent latency bottleneck order, one image, 25 guided DDIM steps, fp32 "
                   f"(total {rows[0]['baseline_ms']:.0f} ms)", order, "median of 10 calls per part", device))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: the best available")
    parser.add_argument("--skip-failures", action="store_true")
    parser.add_argument("--skip-production", action="store_true")
    parser.add_argument("--skip-memorization", action="store_true")
    parser.add_argument("--write-finetune", action="store_true", help="only store the fine-tuning run (see above)")
    args = parser.parse_args(argv)
    device = get_device(args.device)
    if args.write_finetune:
        print("\n".join(write_finetune(device)))
        return
    lines = ([] if args.skip_failures else failure_rows(device)) + \
            ([] if args.skip_memorization else memorization_rows(device)) + \
            ([] if args.skip_production else production_rows(device))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
