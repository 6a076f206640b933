"""course_utils.recipes: how each shipped checkpoint is made: one valid recipe per name, family and method agreeing."""

import dataclasses

import pytest

from course_utils import pretrained
from course_utils.families import FAMILIES
from course_utils.models import DIT_PRESETS, UNET_PRESETS
from course_utils.recipes import DIFFUSION_METHODS, RECIPES, Recipe, get_recipe
from course_utils.training import TrainConfig

KINDS = ("diffusion", "classifier", "judge", "clip", "vae")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_under_its_own_name(name):
    recipe = get_recipe(name)
    assert recipe.name == name and recipe.kind in KINDS and recipe.dataset in ("digits", "shapes")
    assert dataclasses.replace(recipe) == recipe  # __post_init__ accepts it again
    if recipe.kind == "diffusion":
        assert recipe.arch in UNET_PRESETS or recipe.arch in DIT_PRESETS


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_family_is_the_objective_of_a_diffusion_recipe_and_none_otherwise(name):
    recipe = RECIPES[name]
    if recipe.kind == "diffusion":
        assert recipe.family == recipe.train.objective and recipe.family in FAMILIES
        assert recipe.method == DIFFUSION_METHODS[recipe.family]
        assert (recipe.schedule is None) == (recipe.family == "flow_matching")  # flow matching has no schedule
    else:
        assert recipe.family is None


def test_every_shipped_model_has_its_recipe():
    assert set(pretrained.list()) == set(RECIPES)


def test_the_linear_twin_differs_from_digits_class_only_in_its_schedule():
    twin, base = RECIPES["digits-class-linear"], RECIPES["digits-class"]
    assert twin.schedule == "linear" and base.schedule == "cosine"
    differ = {f.name for f in dataclasses.fields(Recipe) if getattr(twin, f.name) != getattr(base, f.name)}
    assert differ == {"name", "schedule", "description"}


def test_a_student_starts_from_a_diffusion_teacher():
    student = RECIPES["digits-student"]
    assert student.family == "consistency" and RECIPES[student.teacher].family == "diffusion"


@pytest.mark.parametrize("method, objective", [("ddpm", "flow_matching"), ("flow_matching", "diffusion"),
                                               ("consistency", "diffusion")])
def test_a_diffusion_recipe_whose_method_disagrees_with_its_objective_is_refused(method, objective):
    with pytest.raises(ValueError, match=f"recipe 'x': method '{method}' does not match its objective '{objective}'"):
        Recipe("x", "diffusion", "digits", "digits-tiny", method=method, train=TrainConfig(objective=objective))


def test_other_kinds_name_their_own_method():
    assert Recipe("x", "vae", "shapes", "shapes-vae", method="vae").family is None  # no diffusion method needed


def test_get_recipe_refuses_an_unknown_name_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="Unknown recipe 'digits-gan'. Accepted: .*'digits-ddpm'.*'tiny-clip'"):
        get_recipe("digits-gan")
