"""Failure modes you can cause on purpose, and the measurements that show the fix (notebook 10).

The course text's failure-fix table lists what goes wrong in practice. Most rows need no new code
to reproduce (a different schedule, a guidance scale, a missing generator); this module holds the
parts that do:

- **Fine-tune collapse** (DreamBooth-style fine-tuning gone wrong): ``finetune`` continues training a
  shipped model on a handful of images; ``finetune_set`` mixes in *regularisation images* (the
  prior-preservation idea of Ruiz et al. 2023, DreamBooth, Sec. 3.3: samples of the same class from
  the model before fine-tuning); ``collapse_report`` measures what collapses: the variety of the
  samples and how many of them are copies of the fine-tuning images.
- **Variety** in general: ``metrics.distances.pairwise_diversity``, the mean distance between samples.

Each ``demo_*`` function reproduces one row of the table on the shipped models and returns a
``Demo``: the metric with the failure and with its fix, and the images behind both. Notebook 10
runs them at its mode's size; ``benchmarks/failure_modes.py`` runs them at full size for
docs/BENCHMARKS.md. ``failure_table`` prints the rows side by side. The fine-tuning run is the one
too long for CI: ``write_recorded_finetune`` stores a full-size run with the package, and
``recorded_finetune`` reads it back for ``fast`` mode.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch

from .._deprecation import moved_names
from .._validation import check_positive_int
from ..metrics import distances
from ..training import TrainConfig, train


def finetune_set(target: torch.Tensor, regularization: torch.Tensor | None = None,
                 target_share: float = 0.5) -> torch.Tensor:
    """The images to fine-tune on: ``target`` alone, or mixed with ``regularization`` images.

    With regularisation, ``target`` is repeated so that it makes up ``target_share`` of the set (a
    training batch drawn from the set then holds that share of target images on average), and the
    rest are the regularisation images. Shapes ``(K, C, H, W)`` and ``(R, C, H, W)``; returns
    ``(M, C, H, W)``.
    """
    if target.ndim != 4 or len(target) == 0:
        raise ValueError(f"target must be a non-empty (K, C, H, W) tensor, got shape {tuple(target.shape)}.")
    if regularization is None:
        return target.clone()
    if regularization.shape[1:] != target.shape[1:] or len(regularization) == 0:
        raise ValueError(f"regularization must be a non-empty (R, {', '.join(map(str, target.shape[1:]))}) tensor, "
                         f"got shape {tuple(regularization.shape)}.")
    if not 0 < target_share < 1:
        raise ValueError(f"target_share must lie in (0, 1), got {target_share}.")
    repeats = max(1, round(target_share / (1 - target_share) * len(regularization) / len(target)))
    return torch.cat([target.repeat(repeats, 1, 1, 1), regularization])


def finetune(model, images: torch.Tensor, steps: int, lr: float = 5e-4, batch_size: int = 32,
             label: int | None = None, seed: int = 0, progress: bool = False,
             checkpoint_path: str | Path | None = None):
    """A fine-tuned copy of ``model`` (a ``DiffusionModel``; the original is left untouched).

    Continues the diffusion loss on ``images`` ``(K, C, H, W)`` in [-1, 1] up to ``steps`` updates
    (Adam, constant ``lr`` after 10 warm-up steps, no EMA: the weights as trained). For a
    class-conditional model pass the ``label`` every image belongs to (no label dropout, as a
    DreamBooth run fine-tunes with its prompt). With ``checkpoint_path`` the run's state (weights,
    optimiser, random state) is saved there at the end, and a later call with the same path and a
    larger ``steps`` resumes it: one continuous run, looked at in between.
    """
    check_positive_int("steps", steps)
    if model.schedule is None:
        raise ValueError("finetune needs a diffusion model with a noise schedule (not flow matching).")
    cond = model.info.get("conditioning")
    if (label is not None) != (cond == "class"):
        raise ValueError(f"pass label= exactly when the model is class-conditional (this one: conditioning={cond!r}).")
    if cond == "text":
        raise ValueError("finetune handles unconditional and class-conditional models, not text models.")
    tuned = copy.copy(model)
    tuned.denoiser = copy.deepcopy(model.denoiser).requires_grad_(True)
    labels = None if label is None else torch.full((len(images),), int(label), dtype=torch.long)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=10, ema_decay=0.0,
                         log_every=max(1, min(50, steps)), seed=seed, precision="fp32")
    result = train(tuned.denoiser, images, model.schedule, config, labels=labels, device=model.device,
                   checkpoint_path=checkpoint_path, progress=progress)
    tuned.denoiser = result.model.eval().requires_grad_(False)
    return tuned


def collapse_report(samples: torch.Tensor, targets: torch.Tensor, real: torch.Tensor,
                    quantile: float = 0.01, seed: int = 0) -> dict:
    """How far fine-tuning has collapsed: variety, and copies of the fine-tuning images.

    Args:
        samples: ``(N, C, H, W)`` drawn from the fine-tuned model.
        targets: ``(K, C, H, W)`` the images it was fine-tuned on.
        real: real images of the same kind (hundreds), for the yardstick: a sample closer to a target
            than the ``quantile`` of real-to-nearest-real distances counts as a copy.
    Returns:
        ``{"diversity", "copy_share", "median_to_target", "threshold"}``.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}.")
    n_held_out = min(200, len(real) // 2)
    yardstick = distances.real_vs_real_distance(real, n_held_out, torch.Generator().manual_seed(seed))
    threshold = float(torch.quantile(yardstick.double(), quantile))
    to_target = distances.nearest_data_distance(samples, targets)  # (N,)
    return {"diversity": distances.pairwise_diversity(samples), "copy_share": float((to_target < threshold).float().mean()),
            "median_to_target": float(to_target.median()), "threshold": threshold}


@dataclass
class Demo:
    """One row of the failure-fix table, measured.

    ``broken`` and ``fixed`` are the ``metric`` with the failure and with the fix (``better``: "lower"
    or "higher"); ``images`` holds the samples behind both, ``details`` any other numbers measured.
    """

    failure: str
    cause: str
    fix: str
    metric: str
    better: str
    broken: float
    fixed: float
    samples: str
    images: dict = field(default_factory=dict, repr=False)
    details: dict = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        """Did the fix move the metric the right way?"""
        return self.fixed < self.broken if self.better == "lower" else self.fixed > self.broken


def _load(name: str, device):
    from .. import pretrained

    return pretrained.load(name, device=device)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fid(images: torch.Tensor) -> float:
    from .. import metrics

    return metrics.digits_fid(images, require_n=len(images) == metrics.NUM_SAMPLES)


def demo_schedule(n: int = 898, steps: int = 20, seed: int = 0, device=None) -> Demo:
    """Blurry, poor samples from an aggressive schedule: digits-class-linear against digits-class.

    The two models share network, data, budget and seed; only the noise schedule differs (DDPM's
    linear one against the cosine one). Both draw ``n`` unconditional digits (the null label) from
    the same noise with DDIM-``steps``; the metric is digits-FID (comparable across rows only at the
    same ``n``).
    """
    imgs = {k: _load(name, device).sample(n, steps=steps, generator=_gen(seed), batch_size=n)
            for k, name in (("broken", "digits-class-linear"), ("fixed", "digits-class"))}
    return Demo("Blurry, poor samples", "a noise schedule that destroys the image too early (linear)",
                "the cosine schedule", "digits-FID", "lower", _fid(imgs["broken"]), _fid(imgs["fixed"]),
                f"{n} unconditional digits each, DDIM-{steps}, seed {seed}", imgs)


def demo_guidance(prompts, steps: int = 15, seed: int = 0, low: float = 0.5, good: float = 3.0,
                  high: float = 20.0, device=None) -> tuple[Demo, Demo]:
    """Two rows from one sweep of shapes-latent: the prompt ignored at ``low`` guidance, and
    over-saturated colours at ``high``, both fixed by ``good``. (At ``w = 1``, the plain conditional model,
    shapes-latent already follows most prompts with its default sampler, DDIM with fresh noise each step: 93% of
    90 captions at 15 steps; deterministic DDIM, ``eta = 0``, 71%.)

    Every scale draws one image per prompt from the same noise (DDIM-``steps``). Metrics: prompt
    adherence (all four heads of the shapes judge right) and the share of pixels within 2% of the
    ends of [-1, 1] (``metrics.saturation``).
    """
    from .. import metrics

    model = _load("shapes-latent", device)
    prompts = list(prompts)
    imgs = {w: model.sample(len(prompts), steps=steps, prompts=prompts, guidance_scale=w, generator=_gen(seed))
            for w in (low, good, high)}
    adherence = {w: metrics.prompt_adherence(x, prompts)["all"] for w, x in imgs.items()}
    saturation = {w: metrics.saturation(x) for w, x in imgs.items()}
    details = {"adherence": adherence, "saturation": saturation}
    what = f"{len(prompts)} prompts, one image each, DDIM-{steps}, seed {seed}"
    ignored = Demo("Prompt ignored", f"guidance too weak (w = {low:g})", f"w = {good:g}",
                   "prompt adherence (all four judge heads)", "higher", adherence[low], adherence[good], what,
                   {"broken": imgs[low], "fixed": imgs[good]}, details)
    burnt = Demo("Over-saturated colours", f"guidance too strong (w = {high:g})", f"w = {good:g}",
                 "pixels within 2% of -1 or +1", "lower", saturation[high], saturation[good], what,
                 {"broken": imgs[high], "fixed": imgs[good]}, details)
    return ignored, burnt


def _check_checkpoints(checkpoints) -> None:
    if not checkpoints or list(checkpoints) != sorted(set(checkpoints)) or checkpoints[0] < 0:
        raise ValueError(f"checkpoints must be increasing step counts >= 0, got {tuple(checkpoints)}.")


def finetune_curve(model, targets: torch.Tensor, label: int, real: torch.Tensor, checkpoints, regularization=None,
                   lr: float = 5e-4, batch_size: int = 32, n: int = 64, sample_steps: int = 10, seed: int = 0):
    """Fine-tune ``model`` on ``targets`` (class ``label``) and measure the collapse at each step count.

    ``checkpoints``: increasing step counts. One run (one optimiser, one random stream) trains up to
    each in turn, resuming from its own checkpoint in a temporary folder, and ``n`` digits of ``label``
    (w = 3, DDIM-``sample_steps``, seed ``seed``) are drawn at each. With ``regularization`` images
    the set mixes them half and half with the targets. Returns ``([{"steps", **collapse_report}],
    last samples)``.
    """
    checkpoints = tuple(checkpoints)
    _check_checkpoints(checkpoints)
    data = finetune_set(targets, regularization)
    rows, tuned, samples = [], model, None
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "finetune.safetensors"
        for stop in checkpoints:
            if stop > 0:
                tuned = finetune(model, data, stop, lr=lr, batch_size=batch_size, label=label, seed=seed,
                                 checkpoint_path=state)
            samples = tuned.sample(n, steps=sample_steps, labels=label, guidance_scale=3.0, generator=_gen(seed))
            rows.append({"steps": stop, **collapse_report(samples, targets, real)})
    return rows, samples


RECORDED_FINETUNE = Path(__file__).parent / "recorded" / "finetune_collapse.safetensors"


def demo_finetune(checkpoints=(0, 40, 80, 120), k: int = 4, label: int = 3, lr: float = 1e-3, batch_size: int = 32,
                  n: int = 64, sample_steps: int = 10, seed: int = 0, device=None) -> Demo:
    """Fine-tune collapse: digits-class fine-tuned on ``k`` training digits of one class.

    Plain fine-tuning against fine-tuning with regularisation images (64 digits of the same class
    drawn from the model before fine-tuning, DreamBooth's prior preservation), same steps and seed.
    Metric: the share of ``n`` samples that are copies of a fine-tuning image. The plain run's
    curve (``details["plain"]``) also shows the other fix, stopping early; ``details["settings"]``
    holds the arguments.
    """
    from ..data import load_digits

    checkpoints = tuple(checkpoints)
    _check_checkpoints(checkpoints)
    model = _load("digits-class", device)
    real, labels = load_digits(split="train")
    targets = real[labels == label][:k]
    reg = model.sample(64, steps=sample_steps, labels=label, guidance_scale=3.0, generator=_gen(seed + 1))
    plain, plain_x = finetune_curve(model, targets, label, real, checkpoints, None, lr, batch_size, n, sample_steps, seed)
    shared = 1 if checkpoints[0] == 0 else 0  # at 0 steps both runs are the model as shipped: drawn once
    regd, reg_x = plain[:shared], plain_x
    if len(checkpoints) > shared:
        rest, reg_x = finetune_curve(model, targets, label, real, checkpoints[shared:], reg, lr, batch_size, n,
                                     sample_steps, seed)
        regd += rest
    settings = {"checkpoints": list(checkpoints), "k": k, "label": label, "lr": lr, "batch_size": batch_size, "n": n,
                "sample_steps": sample_steps, "seed": seed}
    return _finetune_demo(plain, regd, {"broken": plain_x, "fixed": reg_x, "targets": targets}, settings)


def _finetune_demo(plain: list, regd: list, images: dict, settings: dict, recorded: dict | None = None) -> Demo:
    s = settings
    samples = f"{s['n']} digits of class {s['label']}, DDIM-{s['sample_steps']}, seed {s['seed']}"
    details = {"plain": plain, "regularized": regd, "settings": s}
    if recorded is not None:
        samples += f"; recorded on {recorded['device']}, {recorded['date']}"
        details["recorded"] = recorded
    return Demo("Fine-tune collapse", f"{plain[-1]['steps']} steps on {s['k']} images, no regularisation",
                "regularisation images (or stopping early)", "samples that copy a fine-tuning image", "lower",
                plain[-1]["copy_share"], regd[-1]["copy_share"], samples, images, details)


def write_recorded_finetune(demo: Demo, device: str, seconds: float | None = None,
                            path: str | Path = RECORDED_FINETUNE) -> Path:
    """Store a ``demo_finetune`` run (both curves, the last samples, the four images) atomically.

    ``device`` names the machine it ran on. ``benchmarks/failure_modes.py --write-finetune`` writes
    the shipped one, at ``COURSE_MODE=cpu``'s size; ``recorded_finetune`` reads it back.
    """
    if demo.failure != "Fine-tune collapse" or "settings" not in demo.details:
        raise ValueError("write_recorded_finetune stores what demo_finetune returns.")
    from ..checkpoints import save_checkpoint

    recorded = {"device": device, "torch": torch.__version__, "date": str(date.today()), "seconds": seconds}
    meta = {"plain": demo.details["plain"], "regularized": demo.details["regularized"],
            "settings": demo.details["settings"], "recorded": recorded}
    return save_checkpoint(path, {k: demo.images[k] for k in ("broken", "fixed", "targets")}, meta)


def recorded_finetune(path: str | Path = RECORDED_FINETUNE) -> Demo:
    """The stored ``demo_finetune`` run as a ``Demo``; ``details["recorded"]`` says where and when it ran.

    ``fast`` mode shows this run (300 steps, 64 digits per checkpoint) and fine-tunes only a few
    steps itself, to prove the loop.
    """
    from ..checkpoints import load_checkpoint

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} is missing; run `python benchmarks/failure_modes.py --write-finetune`.")
    images, meta = load_checkpoint(path)
    return _finetune_demo(meta["plain"], meta["regularized"], images, meta["settings"], meta["recorded"])


def demo_seed(n: int = 8, steps: int = 10, seed: int = 0, device=None) -> Demo:
    """Irreproducible batches: two runs of the same call without a generator, against two with one.

    Metric: the largest pixel difference between the two runs' images (0 means the same images).
    """
    model = _load("digits-class", device)
    runs = {"broken": [model.sample(n, steps=steps) for _ in range(2)],
            "fixed": [model.sample(n, steps=steps, generator=_gen(seed)) for _ in range(2)]}
    diff = {k: float((a - b).abs().max()) for k, (a, b) in runs.items()}
    return Demo("Different images on every run", "no seed control (the global random state moves on)",
                "a seeded torch.Generator per call", "largest pixel difference between two runs", "lower",
                diff["broken"], diff["fixed"], f"{n} digits, DDIM-{steps}, two runs each",
                {k: torch.cat(v) for k, v in runs.items()})


def demo_precision(n: int = 898, steps: int = 20, seed: int = 0, precision: str = "bf16", device=None) -> Demo:
    """Reduced precision: the U-Net under ``precision`` autocast against fp32, same noise and sampler.

    The sampler's arithmetic stays in fp32 in both (``DiffusionModel.sample`` casts the network's
    output back), which is the fix for the failures half precision causes elsewhere; the row
    measures what the network's own rounding costs. Metric: digits-FID.
    """
    from .production import autocast

    model = _load("digits-class", device)
    with autocast(model.device, precision):
        low = model.sample(n, steps=steps, generator=_gen(seed), batch_size=n)
    full = model.sample(n, steps=steps, generator=_gen(seed), batch_size=n)
    return Demo(f"Quality lost to {precision}", f"the U-Net in {precision}", "fp32", "digits-FID", "lower",
                _fid(low), _fid(full), f"{n} unconditional digits each, DDIM-{steps}, seed {seed}",
                {"broken": low, "fixed": full}, {"largest pixel difference": float((low - full).abs().max())})


def failure_table(demos) -> str:
    """The measured failure-fix table as Markdown, one row per ``Demo``."""
    lines = ["| failure | cause | fix | metric | with the failure | with the fix | fix helps? | samples |",
             "|---|---|---|---|---|---|---|---|"]
    for d in demos:
        lines.append(f"| {d.failure} | {d.cause} | {d.fix} | {d.metric} ({d.better} is better) | {d.broken:.4g} | "
                     f"{d.fixed:.4g} | {'yes' if d.improved else 'no'} | {d.samples} |")
    return "\n".join(lines)


__all__ = ["RECORDED_FINETUNE", "Demo", "collapse_report", "demo_finetune", "demo_guidance", "demo_precision",
           "demo_schedule", "demo_seed", "failure_table", "finetune", "finetune_curve", "finetune_set",
           "recorded_finetune", "write_recorded_finetune"]


__getattr__ = moved_names(__name__)  # distances moved to course_utils.metrics.distances
