"""course_utils.train: the command line that reproduces a shipped checkpoint refuses what it cannot do."""

import dataclasses

import pytest

from course_utils import pretrained, train
from course_utils.recipes import RECIPES
from course_utils.training import TrainConfig


def test_a_recipe_with_its_own_loop_is_refused_under_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="only the diffusion recipes train data-parallel.*digits-class"):
        train.main(["digit-classifier", "--out", str(tmp_path)])


def test_cuda_graph_is_refused_for_a_recipe_with_its_own_loop(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["digit-classifier", "--cuda-graph", "--out", str(tmp_path)])
    assert "--cuda-graph records the diffusion loop's step; 'digit-classifier' is a classifier" in capsys.readouterr().err


def test_an_unknown_recipe_is_refused_with_the_accepted_names(capsys):
    with pytest.raises(SystemExit):
        train.main(["digits-gan"])
    err = capsys.readouterr().err
    assert "invalid choice: 'digits-gan'" in err and "digits-ddpm" in err and "tiny-clip" in err


def test_every_kind_of_recipe_has_a_trainer_and_own_loops_record_real_fields():
    assert set(train.TRAINERS) == {r.kind for r in RECIPES.values()}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(set(used) <= fields for used in train.OWN_LOOP_FIELDS.values())
    assert set(train.OWN_LOOP_FIELDS) == set(train.TRAINERS) - {"diffusion"}  # the diffusion loop records all


def test_a_student_is_sampled_as_the_shipped_student_was_saved():
    _, meta = pretrained.load_tensors("digits-student")
    assert train.student_sampler_config(RECIPES["digits-student"]) == meta["sampler_config"]


def test_from_shipped_fine_tunes_only_the_shipped_vaes_decoder(monkeypatch, tmp_path):
    # The path that made the shipped shapes-vae's second stage, cut to 3 steps: the encoder (so every latent, and
    # shapes-latent trained on them) comes out as shipped, the decoder changed, stage one's record carried over.
    import torch

    from course_utils.checkpoints import load_checkpoint, strip_prefix

    recipe = RECIPES["shapes-vae"]
    monkeypatch.setitem(RECIPES, "shapes-vae", dataclasses.replace(
        recipe, decoder_finetune=dataclasses.replace(recipe.decoder_finetune, steps=3)))
    train.main(["shapes-vae", "--from-shipped", "--out", str(tmp_path), "--no-progress"])
    tensors, meta = load_checkpoint(tmp_path / "shapes-vae.safetensors")
    shipped, shipped_meta = pretrained.load_tensors("shapes-vae")
    new, old = strip_prefix(tensors), strip_prefix(shipped)
    assert all(torch.equal(v, old[k]) for k, v in new.items() if k.startswith("encoder."))
    assert not all(torch.equal(v, old[k]) for k, v in new.items() if k.startswith("decoder."))
    assert meta["losses"] == shipped_meta["losses"] and [r[0] for r in meta["decoder_finetune_losses"]] == [3]
    card = (tmp_path / "shapes-vae.md").read_text()
    assert '"steps": 3' in card and '"psnr_db"' in card


def test_from_shipped_is_refused_for_a_recipe_without_a_decoder_fine_tune(tmp_path):
    with pytest.raises(ValueError, match="--from-shipped.*'digits-ddpm' has none.*shapes-vae"):
        train.main(["digits-ddpm", "--from-shipped", "--out", str(tmp_path)])
