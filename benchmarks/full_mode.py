"""Benchmark 4: full mode on one GPU: every notebook that trains, end to end, with what it reached.

Runs the solution notebooks 04-10 (each trains something in ``full`` mode: the digits U-Net, the
class-conditional model, the VAE and latent model, the DiTs, flow matching, the consistency
student, the fine-tuning demo) top to bottom with ``COURSE_MODE=full``, each in its own kernel,
and prints per notebook: wall time, peak memory, the slowest cell, and the lines the notebook
printed about what it reached (digits-FID, adherence, accuracy, images/s), plus notebook 04's
check against its quality target: digits-FID within 3x the real-vs-real floor.

Meant for a GPU (``full`` mode sizes the runs for one); on a CPU it refuses unless ``--allow-cpu``
(hours). ``--to-target`` runs notebook 04 only up to the cell that scores digits-FID: its time to
the quality target, from a fresh kernel (imports, the short demo run, the training run, DDPM and
DDIM samples, the score), without the ablation and comparison that follow.

Usage: ``python benchmarks/full_mode.py [--only 04 05] [--mode full] [--to-target]`` (``--only`` runs
the notebooks in the order given).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_runtime import ROOT, run_one  # noqa: E402
from report import device_name, row  # noqa: E402

TRAINING_NOTEBOOKS = ("04", "05", "06", "07", "08", "09", "10")
TARGET_RATIO = 3.0  # notebook 04: digits-FID at most 3x the floor (its "good model" bar)
TARGET_CELL = r"metrics\.digits_fid\(samples\)"  # notebook 04's scoring cell: the end of --to-target


def fid_ratio(lines: list[str]) -> float | None:
    """The ``ratio R.Rx`` notebook 04 prints after its digits-FID, if present."""
    for line in lines:
        m = re.search(r"digits-FID.*ratio ([0-9.]+)x", line)
        if m:
            return float(m.group(1))
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NN", default=list(TRAINING_NOTEBOOKS))
    parser.add_argument("--mode", default="full", choices=("fast", "cpu", "full"),
                        help="full is the benchmark; fast checks the script itself in seconds")
    parser.add_argument("--allow-cpu", action="store_true", help="run full mode without a GPU (hours)")
    parser.add_argument("--to-target", action="store_true",
                        help="notebook 04 only, up to and including the cell that scores digits-FID")
    args = parser.parse_args(argv)
    if args.to_target:
        args.only = ["04"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.mode == "full" and device.type != "cuda" and not args.allow_cpu:
        parser.error("full mode is sized for a GPU and none is visible; pass --allow-cpu to run it anyway.")
    found = {p.name[:2]: p for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    paths = [found[n] for n in dict.fromkeys(args.only) if n in found]  # in the order asked for
    if not paths:
        parser.error(f"no solution notebook numbered {' '.join(args.only)}.")
    print(f"# Benchmark 4 ({args.mode} mode) on {device_name(device)}, torch {torch.__version__}\n")
    print("| what | value | samples | device | torch | date |\n|---|---|---|---|---|---|")
    scope = "up to its digits-FID cell" if args.to_target else "whole notebook"
    failed = []
    for path in paths:
        try:
            r = run_one(path, args.mode, stop_after=TARGET_CELL if args.to_target else "")
        except RuntimeError as err:  # one notebook's failure is reported, and the others still run
            failed.append(path.stem)
            reason = str(err).splitlines()[0][:300].replace("|", "/") if str(err) else type(err).__name__
            print(row(f"{path.stem}, {args.mode} mode, {scope}", f"failed: {reason}", "1 run", device), flush=True)
            continue
        print(row(f"{path.stem}, {args.mode} mode, {scope}",
                  f"{r['wall_s']:.0f} s (slowest cell #{r['slowest_cell']}: {r['slowest_cell_s']:.0f} s), "
                  f"kernel peak RSS {r['peak_mib']:.0f} MiB", "1 run", device), flush=True)
        for line in r["metric_lines"]:
            print(row(f"{path.stem}, {args.mode} mode, printed", line.replace("|", "/"), "1 run", device), flush=True)
        ratio = fid_ratio(r["metric_lines"]) if path.name.startswith("04") else None
        if ratio is not None:
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            print(row(f"{path.stem}, {args.mode} mode: quality target (digits-FID <= {TARGET_RATIO:g}x floor)",
                      f"{verdict}: {ratio:.1f}x in {r['wall_s']:.0f} s ({scope})", "N = 898", device),
                  flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
