"""Benchmark 3: the speed table of notebook 09 (the seed's Exercise 5) on the shipped models.

Every row of ``course_utils.course.speed.TABLE`` (on ``digits-ddpm``: DDPM-1000, DDIM-10/20/50,
DPM-Solver++-5/10/20, Euler and Heun on Karras sigmas at 10/20 and 5/10 steps; flow Euler-4/8/16 on
``digits-flow``; the consistency student of digits-ddpm at 1/2/4 steps) draws the same N = 898
unconditional digits from seed 0 on one machine in one run; each is timed and scored (digits-FID and
KID) and judged against the data: issue #32's targets are multiples of the real-vs-real floor (and
flow Euler-8 also of DDPM-1000's FID).
Then the production notes: time per image against batch size, bf16 autocast, and torch.compile.

Writes ``course_utils/course/recorded/speed_table.json`` (the reference run notebook 09 shows next to
its own) with ``--write``, and prints Markdown rows for docs/BENCHMARKS.md.

``--plot`` draws docs/figures/sampler_speed_quality.png from the stored reference run (after
storing this one, with ``--write``; alone, without running anything).

Usage: ``python benchmarks/fast_sampling.py [--n 898] [--device cpu] [--write] [--skip-notes] [--plot]``
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from course_utils import metrics, pretrained
from course_utils.course import speed
from course_utils.config import get_device
from course_utils.profiling import time_call
from report import device_name, row

FLOOR_TARGETS = {"DDIM-50": 1.5, "DPM-Solver++-10": 1.6, "Heun-Karras-10": 1.6, "flow Euler-8": 2.0,
                 "student-2": 2.0}  # x the real-vs-real digits-FID (issue #32)
TARGETS = {"flow Euler-8": 1.2}  # x DDPM-1000's digits-FID (digits-ddpm)


def table(n: int, device: torch.device) -> tuple[list[dict], list[str]]:
    rows = speed.measure(speed.TABLE, n=n, device=device,
                         progress=lambda i, s: print(f"[{i + 1}/{len(speed.TABLE)}] {s.label}", flush=True))
    rel = speed.ratios(rows, "DDPM-1000")
    ref_fid = next(r["fid"] for r in rows if r["label"] == "DDPM-1000")
    print(speed.markdown_table(rows, reference="DDPM-1000"))
    out = []
    floor = metrics.floor()["fid"]
    for r in rows:
        verdicts = []
        if r["label"] in FLOOR_TARGETS:
            ok = speed.within(r["fid"], floor, FLOOR_TARGETS[r["label"]])
            verdicts.append(f"{r['fid'] / floor:.2f}x the floor {floor:.3f}, target <= {FLOOR_TARGETS[r['label']]:.1f}x: "
                            f"{'met' if ok else 'missed'}")
        if r["label"] in TARGETS:
            ok = speed.within(r["fid"], ref_fid, TARGETS[r["label"]])
            verdicts.append(f"target <= {TARGETS[r['label']]:.1f}x DDPM-1000: {'met' if ok else 'missed'}")
        verdict = "".join(f"; {v}" for v in verdicts)
        out.append(row(f"{r['label']} ({r['model']}): digits-FID / KID / FID vs DDPM-1000 / wall time",
                       f"{r['fid']:.3f} / {r['kid']:.4f} / {rel[r['label']]:.2f}x / {r['seconds']:.1f} s "
                       f"({r['ms_per_image']:.2f} ms per image, NFE {r['nfe']}){verdict}",
                       f"{n} unconditional, seed 0, batch {n}", device))
    return rows, out


def notes(device: torch.device) -> tuple[dict, list[str]]:
    """Production notes measured on one U-Net call: batch size, bf16 autocast and torch.compile."""
    net = pretrained.load("digits-ddpm", device=device).denoiser
    t = torch.tensor(500, device=device)
    rec: dict = {"batch_ms_per_image": {}}
    for b in (1, 16, 128, 898):
        x = torch.randn(b, 1, 16, 16, device=device)
        rec["batch_ms_per_image"][b] = 1000 * time_call(lambda: net(x, t), repeats=5, device=device) / b
    x = torch.randn(128, 1, 16, 16, device=device)
    rec["fp32_ms"] = 1000 * time_call(lambda: net(x, t), repeats=5, device=device)

    def bf16():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(x, t)

    rec["bf16_ms"] = 1000 * time_call(bf16, repeats=5, device=device)
    with torch.no_grad():
        rec["bf16_max_abs_diff"] = (bf16().float() - net(x, t)).abs().max().item()
    try:
        start = time.perf_counter()
        compiled = torch.compile(net)
        with torch.no_grad():
            compiled(x, t)
        rec["compile_first_call_s"] = time.perf_counter() - start
        rec["compiled_ms"] = 1000 * time_call(lambda: compiled(x, t), repeats=5, device=device)
    except Exception as exc:  # compile needs a C++ toolchain on CPU; report, do not fail the benchmark
        rec["compile_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    lines = [row(f"digits-ddpm, one U-Net call at batch {b}: ms per image", f"{ms:.3f}", "median of 5", device)
             for b, ms in rec["batch_ms_per_image"].items()]
    lines.append(row("digits-ddpm at batch 128: fp32 / bf16-autocast ms per call; max abs difference of the output",
                     f"{rec['fp32_ms']:.1f} / {rec['bf16_ms']:.1f} ({rec['fp32_ms'] / rec['bf16_ms']:.2f}x); "
                     f"{rec['bf16_max_abs_diff']:.3f}", "median of 5", device))
    if "compiled_ms" in rec:
        lines.append(row("digits-ddpm at batch 128: eager / torch.compile ms per call (first call incl. compiling)",
                         f"{rec['fp32_ms']:.1f} / {rec['compiled_ms']:.1f} ({rec['fp32_ms'] / rec['compiled_ms']:.2f}x; "
                         f"first call {rec['compile_first_call_s']:.1f} s)", "median of 5", device))
    else:
        lines.append(row("digits-ddpm: torch.compile", f"failed: {rec['compile_error']}", "-", device))
    return rec, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=898)
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"))
    parser.add_argument("--write", action="store_true", help="store the run as notebook 09's reference table")
    parser.add_argument("--skip-notes", action="store_true")
    parser.add_argument("--plot", action="store_true", help="draw the figure from the stored reference run")
    args = parser.parse_args()
    if args.plot and not args.write:
        print(f"wrote {plot()}")
        return
    device = get_device(args.device)
    torch.manual_seed(0)
    rows, lines = table(args.n, device)
    record = {"device": device_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "date": datetime.date.today().isoformat(),
              "n": args.n, "seed": 0, "rows": [{k: v for k, v in r.items() if k != "samples"} for r in rows]}
    if not args.skip_notes:
        record["notes"], more = notes(device)
        lines += more
    if args.write:
        if speed.REFERENCE.exists():  # keep what other runs added to the record (the Karras sweep of notebook 09)
            record = {**speed.reference_table(), **record}
        speed.write_reference(record)
    print("\n".join(lines))
    if args.plot:
        print(f"wrote {plot()}")


def plot():
    import figures  # benchmarks/figures.py

    return figures.speed_quality(speed.reference_table())


if __name__ == "__main__":
    main()
