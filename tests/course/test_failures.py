"""course_utils.course.failures: notebook 10's failure-fix demos (fine-tuning collapse, seeds) and their records."""

import pytest
import torch

from course_utils import pretrained
from course_utils.course import failures
from tests.helpers import random_digits


def test_finetune_set_mixes_targets_to_the_share_asked():
    targets, reg = random_digits(8), random_digits(64, 1)
    mixed = failures.finetune_set(targets, reg, target_share=0.5)
    assert len(mixed) == 128 and torch.equal(mixed[:8], targets) and torch.equal(mixed[-64:], reg)
    assert torch.equal(failures.finetune_set(targets), targets)
    with pytest.raises(ValueError, match="target_share"):
        failures.finetune_set(targets, reg, target_share=1.0)
    with pytest.raises(ValueError, match="regularization"):
        failures.finetune_set(targets, torch.zeros(4, 3, 16, 16))


def test_collapse_report_flags_copies_and_not_fresh_images():
    real = random_digits(300, 2)
    targets = real[:8]
    copies = targets.repeat(2, 1, 1, 1) + 0.001 * torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    assert failures.collapse_report(copies, targets, real)["copy_share"] == 1.0
    fresh = failures.collapse_report(random_digits(16, 4), targets, real)
    assert fresh["copy_share"] == 0.0 and fresh["median_to_target"] > fresh["threshold"]


def test_finetune_returns_a_trained_copy_and_leaves_the_original_alone():
    model = pretrained.load("digits-class", device="cpu")
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    tuned = failures.finetune(model, random_digits(4), steps=2, batch_size=4, label=3)
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, tuned.unet.state_dict()[k]) for k, v in before.items())
    assert tuned.sample(2, steps=2, labels=3, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="class-conditional"):
        failures.finetune(model, random_digits(4), steps=2)
    with pytest.raises(ValueError, match="steps"):
        failures.finetune(model, random_digits(4), steps=0, label=3)


def test_seed_demo_measures_irreproducible_runs_and_the_fix():
    demo = failures.demo_seed(n=2, steps=2)
    assert demo.broken > 0.1 and demo.fixed == 0.0 and demo.improved
    table = failures.failure_table([demo])
    assert "Different images on every run" in table and "| yes |" in table


def test_demo_improved_follows_the_direction_of_the_metric():
    kw = dict(failure="f", cause="c", fix="x", metric="m", samples="s")
    assert failures.Demo(better="lower", broken=2.0, fixed=1.0, **kw).improved
    assert not failures.Demo(better="higher", broken=2.0, fixed=1.0, **kw).improved


def test_finetune_resumed_from_its_checkpoint_is_one_continuous_run(tmp_path):
    model, images = pretrained.load("digits-class", device="cpu"), random_digits(4)
    state = tmp_path / "finetune.safetensors"
    failures.finetune(model, images, steps=2, batch_size=4, label=3, checkpoint_path=state)
    resumed = failures.finetune(model, images, steps=3, batch_size=4, label=3, checkpoint_path=state)
    straight = failures.finetune(model, images, steps=3, batch_size=4, label=3)
    assert all(torch.equal(v, straight.unet.state_dict()[k]) for k, v in resumed.unet.state_dict().items())


def test_finetune_curve_looks_at_one_run_at_each_checkpoint():
    model, targets, real = pretrained.load("digits-class", device="cpu"), random_digits(4), random_digits(64, 5)
    rows, last = failures.finetune_curve(model, targets, 3, real, (0, 1, 3), batch_size=4, n=2, sample_steps=2)
    assert [r["steps"] for r in rows] == [0, 1, 3]
    straight = failures.finetune(model, targets, steps=3, batch_size=4, label=3)
    expected = straight.sample(2, steps=2, labels=3, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(last, expected)
    with pytest.raises(ValueError, match="increasing"):
        failures.finetune_curve(model, targets, 3, real, (0, 3, 1), batch_size=4, n=2, sample_steps=2)


def test_finetune_demo_draws_the_shared_start_once_checks_its_checkpoints_and_round_trips(tmp_path):
    demo = failures.demo_finetune((0, 2), n=2, batch_size=4, sample_steps=2)
    plain, regularized = demo.details["plain"], demo.details["regularized"]
    assert [r["steps"] for r in plain] == [r["steps"] for r in regularized] == [0, 2]
    assert regularized[0] == plain[0]  # 0 steps: the shipped model in both runs, same seed
    assert not torch.equal(demo.images["broken"], demo.images["fixed"])
    assert demo.details["settings"]["checkpoints"] == [0, 2] and demo.details["settings"]["n"] == 2
    for bad in ((), (2, 1), (-1, 2), (0, 0, 2)):
        with pytest.raises(ValueError, match="increasing step counts"):
            failures.demo_finetune(bad, n=2)

    path = failures.write_recorded_finetune(demo, "test machine", seconds=1.5, path=tmp_path / "run.safetensors")
    back = failures.recorded_finetune(path)
    assert (back.broken, back.fixed, back.cause) == (demo.broken, demo.fixed, demo.cause)
    assert back.details["plain"] == plain and back.details["regularized"] == regularized
    assert all(torch.equal(back.images[k], demo.images[k]) for k in ("broken", "fixed", "targets"))
    assert back.details["recorded"]["device"] == "test machine" and back.details["recorded"]["seconds"] == 1.5
    assert back.samples.startswith(demo.samples) and "recorded on test machine" in back.samples
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed into place
    with pytest.raises(ValueError, match="what demo_finetune returns"):
        failures.write_recorded_finetune(failures.Demo("Other", "", "", "", "lower", 1.0, 0.0, ""), "x",
                                         path=tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="--write-finetune"):
        failures.recorded_finetune(tmp_path / "missing.safetensors")


def test_the_shipped_finetune_run_shows_what_notebook_10_says_about_it():
    run = failures.recorded_finetune()
    s, plain, regularized = run.details["settings"], run.details["plain"], run.details["regularized"]
    assert s["checkpoints"] == [r["steps"] for r in plain] == [r["steps"] for r in regularized]
    assert s["checkpoints"][0] == 0 and plain[0]["copy_share"] == 0.0  # the shipped model copies nothing
    shares = [r["copy_share"] for r in plain]
    assert shares == sorted(shares) and shares[-1] >= 0.5  # collapse grows with training
    assert regularized[-1]["copy_share"] < shares[-1] / 2 and run.improved  # regularisation images help
    assert run.images["broken"].shape == run.images["fixed"].shape == (s["n"], 1, 16, 16)
    assert run.images["targets"].shape == (s["k"], 1, 16, 16)
    assert {"device", "torch", "date"} <= set(run.details["recorded"])
