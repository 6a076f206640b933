"""Benchmark 7b: guidance that does not saturate. Plain CFG against adaptive projected guidance (APG,
Sadat et al. 2024) on the shipped ``digits-class``, each with and without a guidance interval
(Kynkaanniemi et al. 2024), at w = 1, 3, 7, 10, 15, 20.

Every method draws the same digits from the same noise (seed 0) with the sampler of
``guidance_sweep.py`` (DDIM-25, the consistent x0 clamp); w = 1 is the plain conditional model for
all four, drawn once. Measured per point, as the sweep measures them: adherence (the digit
classifier reads the digit asked for), the share of pixels at full white (>= 0.98), the mean
brightness, the within-class diversity, and digits-FID at the run's N (``require_n=False``: only
comparable with the real-vs-real floor at the same N, which is stored too). Prints Markdown rows,
stores the run in ``benchmarks/results/guidance_apg.json``; ``--plot`` draws
docs/figures/guidance_apg.png (``--plot-only``: from the stored run, without sampling).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/guidance_apg.py [--per-class 20] [--steps 25] [--plot | --plot-only]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from course_utils import metrics, pretrained
from course_utils.data import load_digits
from course_utils.guidance import APG_NORM_THRESHOLD

import report  # benchmarks/report.py, next to this script
from guidance_sweep import row  # benchmarks/guidance_sweep.py: the sweep's Markdown rows

STORED = Path(__file__).resolve().parent / "results" / "guidance_apg.json"
SCALES = (1.0, 3.0, 7.0, 10.0, 15.0, 20.0)
INTERVAL = (0, 500)  # guide in the less noisy half of the 1,000 timesteps only
APG = {"eta": 0.0, "norm_threshold": APG_NORM_THRESHOLD, "momentum": -0.5}
METHODS = {  # label: (guidance, guidance_options)
    "CFG": ("cfg", {}),
    "APG": ("apg", APG),
    "CFG, interval": ("cfg", {"interval": INTERVAL}),
    "APG, interval": ("apg", APG | {"interval": INTERVAL}),
}
KEYS = ("adherence", "white", "mean", "diversity", "fid")


def measure(x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The five numbers of one point (module docstring)."""
    return {"adherence": metrics.class_adherence(x, labels), "white": metrics.saturation(x, ends="high"),
            "mean": float(x.mean()), "diversity": metrics.within_class_diversity(x, labels),
            "fid": metrics.digits_fid(x, require_n=False)}


def real_reference(n: int) -> dict[str, float]:
    """The same numbers for real digits: all 1,797 (FID: the first ``n`` of half B against half A)."""
    images, labels = load_digits()
    out = measure(images, labels)
    out["fid"] = metrics.digits_fid(metrics.reference_split()[1][:n], require_n=False)
    return out


def run(per_class: int, steps: int) -> dict:
    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat_interleave(per_class)  # (10 * per_class,)
    curves = {name: {"w": [], **{k: [] for k in KEYS}} for name in METHODS}
    conditional = None
    for w in SCALES:
        for name, (guidance, options) in METHODS.items():
            if w == 1.0 and conditional is not None:  # every method is the conditional model at w = 1
                point = conditional
            else:
                x = model.sample(len(labels), steps=steps, labels=labels, guidance_scale=w, guidance=guidance,
                                 guidance_options=options, batch_size=len(labels),
                                 generator=torch.Generator().manual_seed(0))
                point = measure(x, labels)
                conditional = conditional or point
            curves[name]["w"].append(w)
            for k in KEYS:
                curves[name][k].append(float(point[k]))
            print(f"w = {w:g}, {name}: " + ", ".join(f"{k} {point[k]:.4f}" for k in KEYS), flush=True)
    return curves


def rows(record: dict) -> list[str]:
    n, real = record["n"], record["real"]
    out = [row(f"real digits: full white / mean brightness / diversity; digits-FID of {n} real vs half A",
               f"{real['white']:.2%} / {real['mean']:.3f} / {real['diversity']:.3f}; {real['fid']:.3f}",
               f"1,797 digits; FID: first {n} of half B")]
    for name, c in record["methods"].items():
        for i, w in enumerate(c["w"]):
            out.append(row(f"digits-class, {name}, w = {w:g}: adherence / full white / mean / diversity / digits-FID",
                           f"{c['adherence'][i]:.1%} / {c['white'][i]:.2%} / {c['mean'][i]:.3f} / "
                           f"{c['diversity'][i]:.3f} / {c['fid'][i]:.3f}", record["samples"]))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--plot", action="store_true", help="after the run, draw docs/figures/guidance_apg.png")
    parser.add_argument("--plot-only", action="store_true", help="draw the figure from the stored run; run nothing")
    args = parser.parse_args(argv)
    if args.plot_only:
        print(f"wrote {plot(json.loads(STORED.read_text()))}")
        return
    start, cpu_start = time.perf_counter(), time.process_time()
    n = 10 * args.per_class
    record = {"device": report.device_name(torch.device("cpu")), "torch": torch.__version__,
              "date": datetime.date.today().isoformat(), "n": n, "steps": args.steps,
              "samples": f"{n} digits ({args.per_class} per digit) per point, DDIM-{args.steps}, seed 0",
              "apg": APG, "interval": list(INTERVAL), "methods": run(args.per_class, args.steps),
              "real": real_reference(n)}
    record["wall_s"] = round(time.perf_counter() - start, 1)
    record["cpu_s"] = round(time.process_time() - cpu_start, 1)  # below wall_s when other work shares the cores
    print("| what | value | samples | device | torch | date |")
    print("|---|---|---|---|---|---|")
    for line in rows(record):
        print(line)
    print(f"wall time {record['wall_s']:.0f} s, CPU time {record['cpu_s']:.0f} s")
    report.write_json(STORED, record)
    if args.plot:
        print(f"wrote {plot(record)}")


def plot(record: dict) -> Path:
    import figures  # benchmarks/figures.py

    return figures.guidance_apg(record)


if __name__ == "__main__":
    main()
