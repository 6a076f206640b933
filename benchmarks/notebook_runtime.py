"""Benchmark 1: wall time and peak memory of every notebook, executed top to bottom.

Each notebook runs in its own Python process (so the kernel's peak resident memory is measured
per notebook) with ``COURSE_MODE`` set. Prints a Markdown table for docs/BENCHMARKS.md and stores
the run in ``benchmarks/results/runtime_MODE.json`` (a run with ``--only`` updates just those
notebooks there). ``--plot`` draws docs/figures/notebook_runtimes.png from every stored mode,
without running anything.

Usage: ``python benchmarks/notebook_runtime.py [--mode fast|cpu|full] [--folders notebooks solutions] [--plot]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import datetime, json, re, resource, sys, time
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
if sys.argv[4]:  # stop after the first code cell whose source matches this pattern
    end = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(sys.argv[4], c.source))
    nb.cells = nb.cells[:end + 1]
start = time.perf_counter()
def progress(cell, cell_index, execute_reply):  # to stderr as each cell ends: what a cut-off run still shows
    printed = [l.strip() for out in cell.get("outputs", []) if out.get("name") == "stdout"
               for l in out.get("text", "").splitlines() if re.search(sys.argv[3], l)]
    print(f"  cell {cell_index} done at {time.perf_counter() - start:.0f} s", *printed, sep="  |  ", file=sys.stderr, flush=True)
NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}},
               on_cell_executed=progress).execute()
wall = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, a child of this process
cells, lines = [], []
for i, cell in enumerate(nb.cells):
    ex = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
        t = [datetime.datetime.fromisoformat(ex[k].replace("Z", "+00:00")) for k in ("iopub.execute_input", "shell.execute_reply")]
        cells.append(((t[1] - t[0]).total_seconds(), i))
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            lines += [l.strip() for l in out["text"].splitlines() if re.search(sys.argv[3], l)]
slowest = max(cells, default=(0.0, -1))
print(json.dumps({"wall_s": wall, "peak_mib": peak_kib / 1024, "slowest_cell_s": slowest[0],
                  "slowest_cell": slowest[1], "metric_lines": lines}))
"""
# Printed lines that report what a notebook reached (kept by benchmark 4).
METRIC_PATTERN = r"FID|KID|accuracy|adherence|right|trained|images/s|PSNR"


def run_one(path: Path, mode: str, stop_after: str = "") -> dict:
    """Execute ``path`` in a fresh kernel with ``COURSE_MODE=mode``; with ``stop_after`` (a regular
    expression), only up to and including the first code cell whose source matches it. Progress
    (each cell's end time and what it printed about its results) goes to stderr as it happens."""
    env = dict(os.environ, COURSE_MODE=mode, MPLBACKEND="agg")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(path.parent), METRIC_PATTERN, stop_after],
                         env=env, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{path.name} failed in {mode} mode (its error is printed above).")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="fast", choices=("fast", "cpu", "full"))
    parser.add_argument("--folders", nargs="+", default=["notebooks", "solutions"])
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers to run (default: all), e.g. 09 10")
    parser.add_argument("--plot", action="store_true", help="only draw the figure from the stored runs")
    args = parser.parse_args(argv)
    if args.plot:
        print(f"wrote {plot()}")
        return
    import torch

    from report import cpu_name  # benchmarks/report.py; imports torch, so not at module level

    device = cpu_name()
    print("| notebook | mode | wall time (s) | kernel peak RSS (MiB) | runs | device | torch | date |")
    print("|---|---|---|---|---|---|---|---|")
    total, stored = 0.0, load(args.mode)
    stored.update({"device": device, "torch": torch.__version__, "date": datetime.date.today().isoformat()})
    for folder in args.folders:
        for path in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
            if args.only and path.name[:2] not in args.only:
                continue
            r = run_one(path, args.mode)
            total += r["wall_s"]
            stored["notebooks"][f"{folder}/{path.name}"] = {"wall_s": round(r["wall_s"], 1),
                                                            "peak_mib": round(r["peak_mib"])}
            print(f"| {folder}/{path.name} | {args.mode} | {r['wall_s']:.1f} | {r['peak_mib']:.0f} | 1 | {device} | "
                  f"{torch.__version__} | {datetime.date.today()} |", flush=True)
    print(f"\nTotal: {total:.1f} s")
    print(f"stored in {save(args.mode, stored)}")


def stored_path(mode: str) -> Path:
    return ROOT / "benchmarks" / "results" / f"runtime_{mode}.json"


def load(mode: str) -> dict:
    """The stored run of ``mode`` (empty when there is none)."""
    path = stored_path(mode)
    return json.loads(path.read_text()) if path.exists() else {"mode": mode, "notebooks": {}}


def save(mode: str, record: dict) -> Path:
    from report import write_json  # benchmarks/report.py; imports torch, so not at module level

    return write_json(stored_path(mode), record, sort_keys=True)


def plot() -> Path:
    import figures  # benchmarks/figures.py

    records = {m: load(m) for m in ("fast", "cpu", "full") if stored_path(m).exists()}
    if not records:
        raise FileNotFoundError("no stored runs in benchmarks/results/; run benchmark 1 first.")
    return figures.runtimes(records)


if __name__ == "__main__":
    main()
