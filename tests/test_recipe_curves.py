"""Each diffusion recipe's settings are held by its loss curve: the first 50 steps of a run from scratch log the
losses recorded in ``tests/fixtures/recipe_curves.json`` (every 10 steps), and their mean is the one the shipped
checkpoint logged for the same steps (issue 34).

The warm-up's learning rate, ``lr * (step + 1) / warmup``, does not depend on the run's length or its decay, so a
run cut to 50 steps inside the warm-up draws the same batches and noise and makes the same updates as the shipped
run's first 50. A changed setting (learning rate, batch size, warm-up, label dropout, precision, time sampling,
objective, loss weighting, data, network or seed) moves the curve. Nothing here is timed.

After a deliberate change, record the curves again (and retrain the shipped model it changes):
``COURSE_RECORD_CURVES=1 pytest tests/test_recipe_curves.py``.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from course_utils import pretrained
from course_utils.checkpoints import load_checkpoint
from course_utils.recipes import RECIPES
from course_utils.train import train_diffusion

FIXTURE = Path(__file__).parent / "fixtures" / "recipe_curves.json"
RECORD = os.environ.get("COURSE_RECORD_CURVES") == "1"
DIFFUSION = sorted(name for name, r in RECIPES.items() if r.kind == "diffusion")
STEPS, EVERY = 50, 10  # the shipped runs log every 50 steps: their first point is the mean of these five
REL_TOL = 0.01  # another CPU's kernels (and bf16's rounding) move a 10-step mean loss by far less
SHIPPED_TOL = 0.03  # models trained before a refactor of the loop drew in another order (digits-class: 0.6% off)


def _curves() -> dict:
    return json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}


def test_every_diffusion_recipe_has_a_recorded_curve():
    assert DIFFUSION == sorted(pretrained.list("diffusion"))
    if not RECORD:
        assert sorted(_curves()) == DIFFUSION


@pytest.mark.parametrize("name", DIFFUSION)
def test_a_short_run_follows_the_recipes_loss_curve(name, tmp_path):
    recipe = RECIPES[name]
    assert recipe.train.warmup_steps >= STEPS, f"{name}: its first {STEPS} steps are not all warm-up"
    recipe = replace(recipe, train=replace(recipe.train, steps=STEPS, log_every=EVERY, checkpoint_every=0))
    path, _ = train_diffusion(recipe, tmp_path, device="cpu", progress=False, evaluate=False)
    got = [loss for _, loss in load_checkpoint(path)[1]["losses"]]
    assert len(got) == STEPS // EVERY
    if RECORD:
        FIXTURE.write_text(json.dumps(_curves() | {name: got}, indent=1, sort_keys=True) + "\n")
    assert got == pytest.approx(_curves()[name], rel=REL_TOL), (
        f"{name}: its recipe's first {STEPS} steps log {got}, the recorded curve is {_curves()[name]}: a setting, "
        "the data, the network or the loop changed")
    shipped = dict(pretrained.load_tensors(name)[1]["losses"])[STEPS]
    assert sum(got) / len(got) == pytest.approx(shipped, rel=SHIPPED_TOL), (
        f"{name}: its recipe's first {STEPS} steps average {sum(got) / len(got):.4f}, the shipped run's "
        f"{shipped:.4f}: the shipped model is no longer what its recipe makes (retrain it: "
        f"python -m course_utils.train {name} --install)")
