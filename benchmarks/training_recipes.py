"""Benchmark 9: the training recipes of 2023-24, each against the plain recipe on one network, one
data set, one budget and one seed, so that the recipe is the only difference.

- ``min-snr``: min-SNR-gamma loss weighting (Hang et al. 2023, gamma = 5) on the digits U-Net
  (epsilon prediction, cosine schedule): digits-FID of the EMA weights every ``--every`` steps (the
  learning curve), and the first milestone at which each run reaches ``--target`` x the
  real-vs-real floor.
- ``flow-times``: SD3's logit-normal time sampling (Esser et al. 2024, ``rf/lognorm(0, 1)``), with
  and without its timestep shift (3.0), against uniform times, for flow matching on the same U-Net;
  Euler at 4, 8 and 16 steps at the end, each sampled with the shift it was trained with.
- ``zero-snr``: zero terminal SNR (Lin et al. 2024). Two classes built from the digits, "dark" (the
  digit at a quarter of its contrast on black, mean brightness -0.85) and "bright" (inverted, the same
  contrast on white, +0.85); a class-conditional U-Net trained on them with Stable Diffusion's
  scaled-linear schedule and noise prediction, sampled with DDIM's leading grid (the problem the
  paper names: its noisiest step keeps 6.8% of the image, so training never shows pure noise), and
  with the paper's fix: the schedule rescaled to zero terminal SNR, v-prediction, the trailing grid.
  Measured: the mean brightness of each class's samples against the real images'.

Every run trains ``digits-small`` (unconditional) on the 1,797 digits with the budget below, and
scores N = 898 samples (DPM-Solver++-20 for the diffusion curves, Euler for flows) against the
digits' features (``course_utils.metrics``). Runs resume from ``runs/bench9/`` when interrupted.

Writes ``benchmarks/results/training_recipes.json`` (merged: each experiment replaces its own
entry), prints Markdown rows for docs/BENCHMARKS.md, and ``--plot`` draws
docs/figures/training_recipes.png from the stored results.

Usage: ``python benchmarks/training_recipes.py {min-snr,flow-times,zero-snr} [--steps 2000] [--every 500]``
or ``python benchmarks/training_recipes.py --plot``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from course_utils import metrics
from course_utils.data import load_dark_and_bright_digits, load_digits
from course_utils.families import FLOW_PREDICTION
from course_utils.models import UNet, build_denoiser, get_unet_config
from course_utils.pipeline import DiffusionModel
from course_utils.denoisers import ClampX0, WithCondition
from course_utils.guidance import ClassifierFreeGuidance
from course_utils.samplers import DDIMSampler, sample_loop
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train
from report import device_name, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "training_recipes.json"
FIGURE = ROOT / "docs" / "figures" / "training_recipes.png"
RUNS = ROOT / "runs" / "bench9"
# The shared budget: digits-class's optimiser settings on digits-ddpm's unconditional network.
BASE = TrainConfig(steps=2000, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.995, seed=0, log_every=50)
EXPERIMENTS = {
    "min-snr": {"plain": {}, "min-SNR-5": {"snr_gamma": 5.0}},
    "zero-snr": {"scaled-linear, epsilon": {"schedule": "scaled_linear", "prediction_type": "epsilon"},
                 "zero terminal SNR, v": {"schedule": "scaled_linear", "rescale": True,
                                          "prediction_type": "v_prediction"}},
    "flow-times": {"uniform": {"objective": "flow_matching"},
                   "logit-normal": {"objective": "flow_matching", "time_sampling": "logit_normal"},
                   "logit-normal + shift 3": {"objective": "flow_matching", "time_sampling": "logit_normal",
                                              "time_shift": 3.0}},
}


def score(model: DiffusionModel, sampler: str, steps: int, sampler_options: dict | None = None) -> dict:
    """digits-FID and KID of N = 898 samples from seed 0."""
    samples = model.sample(metrics.NUM_SAMPLES, steps=steps, sampler=sampler, sampler_options=sampler_options,
                           generator=torch.Generator().manual_seed(0))
    kid, kid_std = metrics.digits_kid(samples)
    return {"fid": metrics.digits_fid(samples), "kid": kid, "kid_std": kid_std}


def run(experiment: str, label: str, options: dict, steps: int, every: int, device) -> dict:
    """Train one arm in segments of ``every`` steps (resuming its checkpoint) and score each segment's EMA."""
    images, _ = load_digits()
    config = replace(BASE, steps=steps, **options)
    flow = config.objective == "flow_matching"
    schedule = None if flow else get_schedule("cosine")
    torch.manual_seed(config.seed)  # the same initial weights in every arm
    net = build_denoiser("digits-small")
    path = RUNS / f"{experiment}-{label.replace(' ', '').replace('+', '_')}.train.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    curve, start = [], time.perf_counter()
    milestones = list(range(every, steps, every)) + [steps]
    for k in milestones if not flow else [steps]:
        result = train(net, images, schedule, replace(config, steps=k), device=device, checkpoint_path=path,
                       progress=False)
        model = DiffusionModel(result.ema_model.eval(), schedule, FLOW_PREDICTION if flow else "epsilon",
                               {"name": f"{experiment}/{label}", "conditioning": None})
        if not flow:
            curve.append({"step": k, **score(model, "dpmsolver++", 20)})
            print(f"  {label} step {k}: digits-FID {curve[-1]['fid']:.3f}", flush=True)
    out = {"label": label, "options": options, "wall_time_s": time.perf_counter() - start,
           "final_loss": result.losses[-1][1] if result.losses else None}
    if flow:
        shift = {"shift": config.time_shift} if config.time_shift != 1.0 else None
        out["euler"] = {str(n): score(model, "euler", n, shift) for n in (4, 8, 16)}
        print(f"  {label}: Euler-4/8/16 digits-FID " + " / ".join(f"{v['fid']:.3f}" for v in out["euler"].values()),
              flush=True)
    else:
        out["curve"] = curve
    return out


# zero-snr: the two classes, the class-conditional budget (digits-class's) and how samples are drawn
ZERO_SNR_TRAIN = TrainConfig(steps=1500, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.995,
                             label_dropout=0.1, seed=0, log_every=50)
ZERO_SNR_SAMPLES, ZERO_SNR_STEPS, ZERO_SNR_SCALES = 200, 25, (1.0, 3.0)


def brightness(net, schedule, prediction_type: str, spacing: str, device) -> dict:
    """Mean brightness of ``ZERO_SNR_SAMPLES`` samples per class (DDIM, ``spacing``) at each guidance scale."""
    out = {}
    for w in ZERO_SNR_SCALES:
        for cls, name in enumerate(("dark", "bright")):
            labels = torch.full((ZERO_SNR_SAMPLES,), cls, device=device)
            guided = ClassifierFreeGuidance(net, w) if w != 1.0 else net
            # as DiffusionModel.sample steps: x0 clamped and the prediction re-derived from it (diffusers'
            # clamp, which keeps the guided prediction, breaks guidance: docs/BENCHMARKS.md, Guidance)
            denoiser = ClampX0(WithCondition(guided, device, class_labels=labels), schedule, prediction_type)
            sampler = DDIMSampler(schedule, prediction_type=prediction_type, timestep_spacing=spacing,
                                  clip_sample=False)
            x = sample_loop(denoiser, sampler,
                            (ZERO_SNR_SAMPLES, 1, 16, 16), ZERO_SNR_STEPS, generator=torch.Generator().manual_seed(cls),
                            device=device)
            out[f"{name}, w = {w:g}"] = float(x.clamp(-1, 1).mean())
    return out


def run_zero_snr(label: str, options: dict, steps: int, device) -> dict:
    """Train one arm of ``zero-snr`` (resuming its checkpoint) and measure its samples' brightness."""
    images, labels = load_dark_and_bright_digits()
    schedule = get_schedule(options["schedule"], rescale_betas_zero_snr=options.get("rescale", False))
    config = replace(ZERO_SNR_TRAIN, steps=steps, prediction_type=options["prediction_type"])
    torch.manual_seed(config.seed)
    net = UNet(get_unet_config("digits-class", num_classes=2))
    path = RUNS / f"zero-snr-{label.replace(' ', '').replace(',', '_')}.train.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = train(net, images, schedule, config, labels=labels, device=device, checkpoint_path=path, progress=False)
    net = result.ema_model.eval()
    out = {"label": label, "options": options, "final_loss": result.losses[-1][1] if result.losses else None,
           "terminal_sqrt_alpha_bar": float(schedule.alphas_cumprod[-1].sqrt()),
           "brightness": {spacing: brightness(net, schedule, options["prediction_type"], spacing, device)
                          for spacing in ("leading", "trailing")}}
    out["wall_time_s"] = time.perf_counter() - start
    print(f"  {label}: " + "; ".join(f"{sp}: " + ", ".join(f"{k} {v:+.3f}" for k, v in b.items())
                                     for sp, b in out["brightness"].items()), flush=True)
    return out


def steps_to(curve: list[dict], target: float) -> int | None:
    """The first milestone whose FID is at most ``target`` (None: not within the budget)."""
    return next((p["step"] for p in curve if p["fid"] <= target), None)


def row(what: str, value: str, entry: dict) -> str:
    """One Markdown row of docs/BENCHMARKS.md from a stored entry (its device, torch and date)."""
    return f"| {what} | {value} | {entry['budget']} | {entry['device']} | {entry['torch']} | {entry['date']} |"


def markdown(name: str, entry: dict) -> list[str]:
    floor = entry["floor_fid"]
    lines = []
    for arm in entry["arms"]:
        if "brightness" in arm:
            for spacing, b in arm["brightness"].items():
                lines.append(row(f"{name}, {arm['label']}, DDIM-{ZERO_SNR_STEPS} {spacing}: mean brightness per class "
                                 f"(real: dark {entry['real']['dark']:+.2f}, bright {entry['real']['bright']:+.2f})",
                                 ", ".join(f"{k} {v:+.3f}" for k, v in b.items()), entry))
            continue
        if "curve" in arm:
            reached = steps_to(arm["curve"], entry["target"] * floor)
            curve = ", ".join(f"{p['step']}: {p['fid']:.3f}" for p in arm["curve"])
            lines.append(row(f"{name}, {arm['label']}: digits-FID by step (DPM-Solver++-20, N = 898); steps to "
                             f"<= {entry['target']:g}x floor", f"{curve}; {reached or 'not reached'}", entry))
        else:
            figs = " / ".join(f"{v['fid']:.3f} ({v['fid'] / floor:.1f}x)" for v in arm["euler"].values())
            lines.append(row(f"{name}, {arm['label']}: Euler-4 / 8 / 16 digits-FID (x floor)", figs, entry))
    return lines


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def plot() -> Path:
    """docs/figures/training_recipes.png from the stored results (``figures.training_recipes``)."""
    import figures  # benchmarks/figures.py

    return figures.training_recipes(load(), FIGURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS))
    parser.add_argument("--steps", type=int, default=BASE.steps)
    parser.add_argument("--every", type=int, default=500, help="score the EMA every this many steps (min-snr)")
    parser.add_argument("--target", type=float, default=3.0, help="min-snr: steps to this many times the floor")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", action="store_true", help="draw the figure from the stored results")
    args = parser.parse_args()
    if args.experiment is None and not args.plot:
        parser.error("name an experiment, or --plot")
    if args.experiment:
        device = torch.device(args.device)
        if args.experiment == "zero-snr":
            steps = ZERO_SNR_TRAIN.steps if args.steps == BASE.steps else args.steps
            arms = [run_zero_snr(label, options, steps, device) for label, options in EXPERIMENTS["zero-snr"].items()]
        else:
            arms = [run(args.experiment, label, options, args.steps, args.every, device)
                    for label, options in EXPERIMENTS[args.experiment].items()]
        entry = {"arms": arms, "device": device_name(device), "threads": torch.get_num_threads(),
                 "date": datetime.date.today().isoformat(),
                 "torch": torch.__version__, "floor_fid": metrics.floor()["fid"], "target": args.target,
                 "budget": f"digits-small, {args.steps} steps of batch {BASE.batch_size}, lr {BASE.lr:g}, seed 0"}
        if args.experiment == "zero-snr":
            images, labels = load_dark_and_bright_digits()
            entry["real"] = {"dark": float(images[labels == 0].mean()), "bright": float(images[labels == 1].mean())}
            steps = ZERO_SNR_TRAIN.steps if args.steps == BASE.steps else args.steps
            entry["budget"] = (f"digits-class U-Net (2 classes), {steps} steps of batch {ZERO_SNR_TRAIN.batch_size}, "
                               f"lr {ZERO_SNR_TRAIN.lr:g}, label dropout {ZERO_SNR_TRAIN.label_dropout:g}, seed 0; "
                               f"{ZERO_SNR_SAMPLES} samples per class, DDIM-{ZERO_SNR_STEPS}")
        stored = load() | {args.experiment: entry}
        write_json(RESULTS, stored)
        print("\n".join(markdown(args.experiment, entry)))
    if args.plot:
        print(f"wrote {plot()}")


if __name__ == "__main__":
    main()
