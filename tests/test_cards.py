"""course_utils.cards: the quality figures a model card records for each kind of recipe, and the card file."""

import json

import pytest
import torch

from course_utils import cards, metrics
from course_utils.data import load_digits
from course_utils.recipes import RECIPES


class RealDigits:
    """Stands in for a DiffusionModel: "samples" real digits (of the labels asked for), so the figures are known."""

    default_sampler, is_consistency, is_flow = "ddim", False, False

    def __init__(self):
        self.images, self.labels = load_digits(split="test")
        self.calls = []

    def sample(self, n, steps=None, labels=None, guidance_scale=None, generator=None, prompts=None):
        self.calls.append({"n": n, "steps": steps, "guidance_scale": guidance_scale})
        if labels is None:
            return metrics.reference_split()[1][:n]  # half B of the real digits: the floor's own images
        return torch.stack([self.images[self.labels == int(k)][i % 20] for i, k in enumerate(labels)])


def test_digits_figures_of_real_digits_are_the_real_vs_real_floor():
    model = RealDigits()
    card = cards.evaluate_digits(model, steps=7)
    assert card["sampler"] == "ddim-7" and card["n"] == metrics.NUM_SAMPLES == model.calls[0]["n"]
    assert card["digits_fid"] == pytest.approx(metrics.floor()["fid"], rel=1e-6) and card["floor"] == metrics.floor()
    assert sum(card["class_distribution"]) == pytest.approx(1.0, abs=1e-3) and len(card["class_distribution"]) == 10


def test_adherence_is_measured_at_each_guidance_scale():
    model = RealDigits()
    card = cards.evaluate_adherence(model, scales=(0.0, 3.0), per_class=4, steps=5)
    assert [c["guidance_scale"] for c in model.calls] == [0.0, 3.0] and card["n"] == 40
    assert set(card["accuracy"]) == {"w=0", "w=3"} and min(card["accuracy"].values()) >= 0.9  # real digits


@pytest.mark.parametrize("name, keys", [
    ("digits-ddpm", {"metric"}),
    ("digits-class", {"metric", "adherence"}),
    ("digits-student", {"metric"}),
    ("shapes-text", {"adherence"}),
])
def test_each_recipe_gets_the_figures_of_its_data_and_condition(monkeypatch, name, keys):
    monkeypatch.setattr(cards, "evaluate_digits", lambda model, steps=50: f"digits-{steps}")
    monkeypatch.setattr(cards, "evaluate_adherence", lambda model: "labels")
    monkeypatch.setattr(cards, "evaluate_prompt_adherence", lambda model: "prompts")
    model = RealDigits()
    model.is_consistency = RECIPES[name].family == "consistency"
    card = cards.evaluate_recipe(RECIPES[name], model)
    assert set(card) == keys
    if name == "digits-student":  # a student is measured at 1, 2 and 4 steps
        assert card["metric"] == {f"consistency-{n}": f"digits-{n}" for n in (1, 2, 4)}
    if "adherence" in keys:
        assert card["adherence"] == ("prompts" if RECIPES[name].conditioning == "text" else "labels")


def test_the_card_file_holds_the_recipe_and_the_figures(tmp_path):
    recipe = RECIPES["digits-ddpm"]
    card = {"steps": 12, "metric": {"digits_fid": 1.5}}
    path = cards.write_card(recipe, card, tmp_path)
    text = path.read_text()
    assert path == tmp_path / "digits-ddpm.md" and text.startswith("# digits-ddpm\n")
    assert recipe.description in text and "`python -m course_utils.train digits-ddpm`" in text
    assert json.loads(text.split("```json\n")[1].split("```")[0]) == card


class RealShapes:
    """Stands in for a text model: "samples" real held-out shapes of the captions asked for, plus ``noise``."""

    default_sampler = "dpmsolver++"
    info = {"default_eta": 1.0}  # DDIM's: the card names it only when DDIM is the sampler

    def __init__(self, noise: float = 0.0):
        from course_utils.data import make_shapes

        data = make_shapes(2000, seed=1)
        self.by_caption = {c: data.images[i] for i, c in enumerate(data.captions)}
        self.noise, self.scales = noise, []

    def sample(self, n, steps=None, prompts=None, guidance_scale=None, generator=None):
        self.scales.append(guidance_scale)
        images = torch.stack([self.by_caption[p] for p in prompts])
        return (images + self.noise * torch.randn(images.shape, generator=generator)).clamp(-1, 1)


@pytest.mark.parametrize("noise, grainy", [(0.0, False), (0.2, True)])
def test_prompt_adherence_records_the_background_grain_the_judge_forgives(noise, grainy):
    card = cards.evaluate_prompt_adherence(RealShapes(noise), scales=(0.0, 3.0), per_caption=1, steps=20)
    assert card["sampler"] == "dpmsolver++-20" and card["n"] == 90 and set(card["adherence"]) == {"w=0", "w=3"}
    for figures in card["adherence"].values():
        assert figures["object"] >= 0.9  # the judge reads real shapes, grainy or not
        assert (figures["background_grain"] > 0.15) if grainy else (figures["background_grain"] < 0.03)
