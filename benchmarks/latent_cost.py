"""Benchmark 6: pixel against latent diffusion, and the DiT against the U-Net, at equal settings.

For each pair (``shapes-text`` vs ``shapes-latent``; ``digits-class`` vs ``dit-digits-b`` and
``dit-digits-s``) and each batch size: counted GFLOPs and measured milliseconds per sampling step
(guided: two network passes per image), the latent model's decode, and the totals per image at
25 steps (``course_utils.profiling.sampling_cost``). Then the quality each reaches with the same
seeds: the shapes judge over all 90 captions, or the digit classifier's adherence and digits-FID.
Prints Markdown rows for docs/BENCHMARKS.md. Runs on the GPU when there is one (``--device``).

Usage: ``python benchmarks/latent_cost.py [--device cpu] [--batches 1 16 64] [--steps 25] [--quality]``
"""

from __future__ import annotations

import argparse

import torch

from course_utils import metrics, pretrained
from course_utils.config import get_device
from course_utils.models.clip import all_captions
from course_utils.profiling import sampling_cost
from report import row

PAIRS = {"pixel vs latent": ("shapes-text", "shapes-latent"), "U-Net vs DiT": ("digits-class", "dit-digits-b",
                                                                               "dit-digits-s")}


def cost_rows(names, batches, steps: int, device: torch.device) -> list[str]:
    rows = []
    for batch in batches:
        costs = {}
        for name in names:
            model = pretrained.load(name, device=device)
            c = costs[name] = sampling_cost(model, batch=batch, steps=steps, repeats=10 if device.type == "cuda" else 5)
            rows.append(row(f"`{name}` ({model.denoiser.num_parameters() / 1e6:.2f}M), guided step, batch {batch}: "
                            "GFLOP / ms per step; decode ms; ms per image at "
                            f"{steps} steps", f"{c['step_flops'] / 1e9:.2f} / {1e3 * c['step_s']:.2f}; "
                            f"{1e3 * c['decode_s']:.2f}; {1e3 * c['image_s']:.3f}", "median of 5-10 calls", device))
        base, *others = names
        for other in others:
            b, o = costs[base], costs[other]
            rows.append(row(f"`{base}` / `{other}`, batch {batch}, {steps} steps: operations ratio, time ratio "
                            "per image", f"{b['image_flops'] / o['image_flops']:.2f}x / {b['image_s'] / o['image_s']:.2f}x",
                            "from the rows above", device))
    return rows


def quality_rows(device: torch.device, steps: int) -> list[str]:
    rows = []
    prompts = [c for c in all_captions() for _ in range(2)]
    for name in PAIRS["pixel vs latent"]:
        model = pretrained.load(name, device=device)
        x = model.sample(len(prompts), steps=steps, prompts=prompts, generator=torch.Generator().manual_seed(0))
        a = metrics.prompt_adherence(x, prompts)
        rows.append(row(f"`{name}`, w = 3, DDIM-{steps}: shapes judge, colour & shape right / all four heads right",
                        f"{a['object']:.1%} / {a['all']:.1%}", f"{len(prompts)} (90 captions x 2), seed 0", device))
    labels = torch.arange(10).repeat_interleave(90)[: metrics.NUM_SAMPLES]
    for name in PAIRS["U-Net vs DiT"]:
        model = pretrained.load(name, device=device)
        x = model.sample(len(labels), steps=steps, labels=labels, generator=torch.Generator().manual_seed(0))
        kid, _ = metrics.digits_kid(x)
        rows.append(row(f"`{name}`, w = 3, DDIM-{steps}: class adherence / digits-FID / KID",
                        f"{metrics.class_adherence(x, labels):.1%} / {metrics.digits_fid(x):.2f} / {kid:.4f}",
                        f"{len(labels)}, seed 0", device))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--quality", action="store_true", help="also sample and score every model")
    args = parser.parse_args(argv)
    device = get_device(args.device)
    torch.manual_seed(0)
    for title, names in PAIRS.items():
        print(f"\n### {title}\n")
        print("\n".join(cost_rows(names, args.batches, args.steps, device)))
    if args.quality:
        print("\n### quality at the same seeds\n")
        print("\n".join(quality_rows(device, args.steps)))


if __name__ == "__main__":
    main()
