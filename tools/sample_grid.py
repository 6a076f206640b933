"""Draw the README's picture: samples of the shipped models, one row each, from fixed seeds.

Usage: ``python tools/sample_grid.py [--out docs/samples.png]`` (about half a minute on a laptop CPU,
offline: the checkpoints ship with the package).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from course_utils import pretrained  # noqa: E402
from course_utils.viz import show_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = torch.arange(10)  # one of each digit, 0 to 9
PROMPTS = ["a red circle on a blue background", "a green square on a white background",
           "a yellow triangle on a purple background", "a blue circle on a yellow background",
           "a purple square on a green background", "a white triangle on a red background"]
# (checkpoint, what it is given, sampler and steps, the row's label)
ROWS = [
    ("digits-class", {"labels": DIGITS}, {"sampler": "ddim", "steps": 50}, "U-Net, class-conditional (DDIM-50)"),
    ("dit-digits-b", {"labels": DIGITS}, {"steps": 50}, "DiT-B, class-conditional (DDIM-50)"),
    ("digits-flow", {}, {"steps": 16}, "flow matching, unconditional (Euler-16)"),
    ("digits-student", {}, {"steps": 2}, "consistency student, unconditional (2 steps)"),
    ("shapes-text", {"prompts": PROMPTS}, {}, "text-conditioned U-Net (prompts)"),
    ("shapes-latent", {"prompts": PROMPTS}, {}, "latent diffusion (prompts)"),
]


def draw(out: Path) -> Path:
    fig, axes = plt.subplots(len(ROWS), 1, figsize=(7.5, 1.05 * len(ROWS)))
    for ax, (name, condition, options, label) in zip(axes, ROWS):
        model = pretrained.load(name)
        n = len(next(iter(condition.values()))) if condition else 10
        x = model.sample(n, generator=torch.Generator().manual_seed(0), **condition, **options)
        show_images(x, nrow=n, ax=ax)
        ax.set_title(f"{name}: {label}", fontsize=9, loc="left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "samples.png")
    args = parser.parse_args(argv)
    print(f"wrote {draw(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
