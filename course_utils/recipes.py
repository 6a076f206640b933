"""Recipes: how each shipped checkpoint is made, so ``python -m course_utils.train NAME`` can
reproduce it from scratch. One frozen record per checkpoint; no configuration files."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._validation import check_choice
from .training import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """A shipped model: what it learns from, its network, its schedule and its training run."""

    name: str
    kind: str  # "diffusion" or "classifier"
    dataset: str  # "digits" or "shapes"
    arch: str  # a U-Net preset name, or "digit-classifier"
    method: str = "ddpm"
    conditioning: str | None = None  # None, "class" or "text"
    schedule: str = "cosine"
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""


RECIPES: dict[str, Recipe] = {
    "digits-ddpm": Recipe(
        name="digits-ddpm", kind="diffusion", dataset="digits", arch="digits-small", method="ddpm",
        schedule="cosine",
        train=TrainConfig(steps=6000, batch_size=128, lr=5e-4, warmup_steps=200, ema_decay=0.999, checkpoint_every=500,
                          seed=0),
        description="Unconditional DDPM (epsilon-prediction) on the 1,797 scikit-learn digits at 16x16.",
    ),
    "digit-classifier": Recipe(
        name="digit-classifier", kind="classifier", dataset="digits", arch="digit-classifier", method="classifier",
        train=TrainConfig(steps=1500, batch_size=128, seed=0),
        description="CNN digit classifier for digits-FID / KID features and class adherence; held-out split.",
    ),
}


def get_recipe(name: str) -> Recipe:
    check_choice("recipe", name, RECIPES)
    return RECIPES[name]
