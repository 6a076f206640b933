"""Benchmark 7: the classifier-free guidance sweep of notebook 05, at benchmark sample counts.

For the shipped ``digits-class``: the same seeds at every scale w, the digit classifier's
adherence (the digit asked for, read back), the within-class feature spread (diversity) and the
share of pixels at full white; then three ways to keep x0 in range (diffusers' clamp, none, ours)
at w = 3 and 7 and several DDIM step counts. For the shipped ``shapes-text``: the shapes judge's
reading of all 90 captions per scale, and the distance to the data with and without the clamp.
Prints Markdown rows for docs/BENCHMARKS.md and stores the sweep's curves in
``benchmarks/results/guidance_sweep.json``; ``--plot`` then draws docs/figures/guidance_sweep.png
(``--plot-only``: draw it from the stored curves without running).

Usage: ``python benchmarks/guidance_sweep.py [--per-class 100] [--per-caption 2] [--steps 25] [--sweep-only] [--plot | --plot-only]``
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from course_utils import metrics, pretrained
from course_utils.data import load_digits, make_shapes
from course_utils.guidance import ClassifierFreeGuidance
from course_utils.models.clip import all_captions
from course_utils.metrics.distances import nearest_data, real_vs_real_distance
from course_utils.samplers import DDIMSampler, sample_loop

import report  # benchmarks/report.py, next to this script

STORED = Path(__file__).resolve().parent / "results" / "guidance_sweep.json"
DIGIT_SCALES = (0.0, 1.0, 3.0, 7.0, 12.0, 20.0)
TEXT_SCALES = (0.0, 1.0, 3.0, 7.0)


def row(what: str, value: str, samples: str) -> str:
    return report.row(what, value, samples, torch.device("cpu"))


def diffusers_style(model, labels: torch.Tensor, w: float, steps: int) -> torch.Tensor:
    """digits-class with DDIM clamping x0 and keeping the guided eps (diffusers' clip_sample=True)."""
    cfg = ClassifierFreeGuidance(model.denoiser, w)
    x = sample_loop(lambda x, t: cfg(x, t, class_labels=labels), DDIMSampler(model.schedule, clip_sample=True),
                    (len(labels), 1, 16, 16), steps, generator=torch.Generator().manual_seed(0))
    return x.clamp(-1, 1)


def digits_sweep(per_class: int, steps: int, curves: dict | None = None, clamps: bool = True) -> list[str]:
    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat_interleave(per_class)  # (10 * per_class,)
    n = f"{len(labels)} ({per_class} per digit), DDIM-{steps}, seed 0"
    images, real_labels = load_digits()
    curves = {} if curves is None else curves
    curves.update(w=[], adherence=[], diversity=[], saturation=[],
                  real_diversity=metrics.within_class_diversity(images, real_labels))
    out = [row("real digits: within-class diversity / pixels at full white",
               f"{curves['real_diversity']:.3f} / "
               f"{metrics.saturation(images, ends='high'):.2%}", f"{len(images)} digits")]
    for w in DIGIT_SCALES:
        x = model.sample(len(labels), steps=steps, labels=labels, guidance_scale=w, batch_size=len(labels),
                         generator=torch.Generator().manual_seed(0))
        point = (metrics.class_adherence(x, labels), metrics.within_class_diversity(x, labels),
                 metrics.saturation(x, ends="high"))
        for key, value in zip(("w", "adherence", "diversity", "saturation"), (w, *point)):
            curves[key].append(float(value))
        out.append(row(f"digits-class, w = {w:g}: adherence / within-class diversity / pixels at full white",
                       f"{point[0]:.1%} / {point[1]:.3f} / {point[2]:.2%}", n))
    for w in (3.0, 7.0) if clamps else ():
        for s in (10, 25, 50):
            acc = [metrics.class_adherence(diffusers_style(model, labels, w, s), labels)]
            for clip in (False, True):
                acc.append(metrics.class_adherence(
                    model.sample(len(labels), steps=s, labels=labels, guidance_scale=w, clip_sample=clip,
                                 batch_size=len(labels), generator=torch.Generator().manual_seed(0)), labels))
            out.append(row(f"digits-class, w = {w:g}, DDIM-{s}: adherence with diffusers' x0 clamp / no clamp / "
                           "consistent clamp (ours)", " / ".join(f"{a:.1%}" for a in acc),
                           f"{len(labels)} ({per_class} per digit), seed 0"))
    return out


def text_sweep(per_caption: int, steps: int, curves: dict | None = None, clamps: bool = True) -> list[str]:
    model = pretrained.load("shapes-text", device="cpu")
    prompts = [c for c in all_captions() for _ in range(per_caption)]
    data = make_shapes(2000, seed=1).images
    n = f"{len(prompts)} (all 90 captions x {per_caption}), seed 0"
    curves = {} if curves is None else curves
    curves.update(w=[], adherence=[])
    out = []
    for w in TEXT_SCALES:
        x = model.sample(len(prompts), steps=steps, prompts=prompts, guidance_scale=w,
                         generator=torch.Generator().manual_seed(0))
        a = metrics.prompt_adherence(x, prompts)
        curves["w"].append(w)
        curves["adherence"].append(float(a["object"]))
        out.append(row(f"shapes-text, w = {w:g}: colour and shape both right / all four right (+ background, "
                       "picture)", f"{a['object']:.1%} / {a['all']:.1%}", f"{n}, DDIM-{steps}"))
    for s in (25, 100) if clamps else ():
        dist = []
        for clip in (False, True):
            x = model.sample(len(prompts), steps=s, prompts=prompts, clip_sample=clip,
                             generator=torch.Generator().manual_seed(0))
            dist.append(float(nearest_data(x, data)[0].median()))
        out.append(row(f"shapes-text, w = 3, DDIM-{s}: median RMS distance to the nearest of 2,000 real images, "
                       "no clamp / consistent clamp", f"{dist[0]:.3f} / {dist[1]:.3f}", n))
    if clamps:
        real = float(real_vs_real_distance(data, 200, torch.Generator().manual_seed(0)).median())
        out.append(row("real held-out shapes: the same distance", f"{real:.3f}", "200 images"))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--per-caption", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--only", choices=("digits", "text"), default=None)
    parser.add_argument("--sweep-only", action="store_true", help="only the scales, not the x0-clamp comparisons")
    parser.add_argument("--plot", action="store_true", help="after the run, draw docs/figures/guidance_sweep.png")
    parser.add_argument("--plot-only", action="store_true", help="draw the figure from the stored curves; run nothing")
    args = parser.parse_args(argv)
    if args.plot_only:
        print(f"wrote {plot(json.loads(STORED.read_text()))}")
        return
    record = json.loads(STORED.read_text()) if STORED.exists() else {}
    record.update(device=report.device_name(torch.device("cpu")), torch=torch.__version__,
                  date=datetime.date.today().isoformat())
    print("| what | value | samples | device | torch | date |")
    print("|---|---|---|---|---|---|")
    if args.only in (None, "digits"):
        record["digits"] = {}
        record["samples"] = f"{10 * args.per_class} digits and {90 * args.per_caption} captions per scale, DDIM-{args.steps}"
        for line in digits_sweep(args.per_class, args.steps, record["digits"], not args.sweep_only):
            print(line, flush=True)
    if args.only in (None, "text"):
        record["text"] = {}
        for line in text_sweep(args.per_caption, args.steps, record["text"], not args.sweep_only):
            print(line, flush=True)
    report.write_json(STORED, record)
    if args.plot:
        print(f"wrote {plot(record)}")


def plot(record: dict) -> Path:
    import figures  # benchmarks/figures.py

    return figures.guidance(record)


if __name__ == "__main__":
    main()
