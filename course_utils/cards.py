"""Model cards: the quality figures ``python -m course_utils.train`` measures and records for a
shipped model, and the card file itself."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import metrics
from .models.clip import all_captions
from .pipeline import DiffusionModel
from .recipes import Recipe


def evaluate_digits(model: DiffusionModel, steps: int = 50, seed: int = 0) -> dict:
    """digits-FID / KID at N = 898 and the class spread, sampling with DDIM."""
    samples = model.sample(metrics.NUM_SAMPLES, steps=steps, generator=torch.Generator().manual_seed(seed))
    kid, kid_std = metrics.digits_kid(samples)
    return {"sampler": f"{model.default_sampler}-{steps}", "n": len(samples), "digits_fid": metrics.digits_fid(samples),
            "digits_kid": kid, "digits_kid_std": kid_std, "floor": metrics.floor(),
            "class_distribution": [round(float(p), 4) for p in metrics.class_distribution(samples)]}


def evaluate_adherence(model: DiffusionModel, scales=(0.0, 1.0, 3.0), per_class: int = 30, steps: int = 25,
                       seed: int = 0) -> dict:
    """Fraction of samples the digit classifier reads as the digit asked for, per guidance scale."""
    labels = torch.arange(10).repeat_interleave(per_class)
    out = {}
    for w in scales:
        samples = model.sample(len(labels), steps=steps, labels=labels, guidance_scale=w,
                               generator=torch.Generator().manual_seed(seed))
        out[f"w={w:g}"] = round(float((metrics.predict_digits(samples) == labels).float().mean()), 4)
    return {"sampler": f"{model.default_sampler}-{steps}", "n": len(labels), "accuracy": out}


def evaluate_recipe(recipe: Recipe, model: DiffusionModel) -> dict:
    """The model card's quality figures: ``metric`` (digits) and ``adherence`` (class or text models)."""
    card = {}
    if model.is_consistency:
        card["metric"] = {f"consistency-{n}": evaluate_digits(model, steps=n) for n in (1, 2, 4)}
    elif recipe.dataset == "digits":
        card["metric"] = evaluate_digits(model)
    if recipe.conditioning == "class":
        card["adherence"] = evaluate_adherence(model)
    if recipe.conditioning == "text":
        card["adherence"] = evaluate_prompt_adherence(model)
    return card


def evaluate_prompt_adherence(model: DiffusionModel, scales=(0.0, 1.0, 3.0), per_caption: int = 2, steps: int = 25,
                              seed: int = 0) -> dict:
    """How often the shapes judge reads back the prompt, over all 90 captions, per guidance scale, and how
    grainy the samples' backgrounds are (``metrics.background_grain``; the judge forgives grain)."""
    prompts = [c for c in all_captions() for _ in range(per_caption)]
    out = {}
    for w in scales:
        samples = model.sample(len(prompts), steps=steps, prompts=prompts, guidance_scale=w,
                               generator=torch.Generator().manual_seed(seed))
        out[f"w={w:g}"] = {k: round(v, 4) for k, v in metrics.prompt_adherence(samples, prompts).items()}
        out[f"w={w:g}"]["background_grain"] = round(metrics.background_grain(samples), 4)
    eta = model.info.get("default_eta", 0.0) if model.default_sampler == "ddim" else 0.0  # what sample() used
    sampler = f"{model.default_sampler}-{steps}" + (f", eta {eta:g}" if eta else "")
    return {"sampler": sampler, "n": len(prompts), "judge": "shapes-judge", "adherence": out}


def write_card(recipe: Recipe, card: dict, out: Path) -> Path:
    lines = [f"# {recipe.name}", "", recipe.description, "",
             f"Reproduce: `python -m course_utils.train {recipe.name}`", "", "```json",
             json.dumps(card, indent=2, sort_keys=True), "```", ""]
    path = out / f"{recipe.name}.md"
    path.write_text("\n".join(lines))
    return path
