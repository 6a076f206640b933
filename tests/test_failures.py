"""The failure-fix demos of notebook 10 (course_utils.course.failures) and the production measurements."""

import pytest
import torch

from course_utils import pretrained
from course_utils.course import failures, production
from course_utils.metrics import distances


def _digits(n, seed=0):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_pairwise_diversity_is_zero_for_copies_and_the_offset_for_shifted_images():
    x = _digits(1)
    assert distances.pairwise_diversity(x.repeat(5, 1, 1, 1)) == pytest.approx(0.0, abs=1e-9)
    pair = torch.cat([torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.3)])
    assert distances.pairwise_diversity(pair) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="N >= 2"):
        distances.pairwise_diversity(x)


def test_finetune_set_mixes_targets_to_the_share_asked():
    targets, reg = _digits(8), _digits(64, 1)
    mixed = failures.finetune_set(targets, reg, target_share=0.5)
    assert len(mixed) == 128 and torch.equal(mixed[:8], targets) and torch.equal(mixed[-64:], reg)
    assert torch.equal(failures.finetune_set(targets), targets)
    with pytest.raises(ValueError, match="target_share"):
        failures.finetune_set(targets, reg, target_share=1.0)
    with pytest.raises(ValueError, match="regularization"):
        failures.finetune_set(targets, torch.zeros(4, 3, 16, 16))


def test_collapse_report_flags_copies_and_not_fresh_images():
    real = _digits(300, 2)
    targets = real[:8]
    copies = targets.repeat(2, 1, 1, 1) + 0.001 * torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    assert failures.collapse_report(copies, targets, real)["copy_share"] == 1.0
    fresh = failures.collapse_report(_digits(16, 4), targets, real)
    assert fresh["copy_share"] == 0.0 and fresh["median_to_target"] > fresh["threshold"]


def test_finetune_returns_a_trained_copy_and_leaves_the_original_alone():
    model = pretrained.load("digits-class", device="cpu")
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    tuned = failures.finetune(model, _digits(4), steps=2, batch_size=4, label=3)
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, tuned.unet.state_dict()[k]) for k, v in before.items())
    assert tuned.sample(2, steps=2, labels=3, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="class-conditional"):
        failures.finetune(model, _digits(4), steps=2)
    with pytest.raises(ValueError, match="steps"):
        failures.finetune(model, _digits(4), steps=0, label=3)


def test_seed_demo_measures_irreproducible_runs_and_the_fix():
    demo = failures.demo_seed(n=2, steps=2)
    assert demo.broken > 0.1 and demo.fixed == 0.0 and demo.improved
    table = failures.failure_table([demo])
    assert "Different images on every run" in table and "| yes |" in table


def test_demo_improved_follows_the_direction_of_the_metric():
    kw = dict(failure="f", cause="c", fix="x", metric="m", samples="s")
    assert failures.Demo(better="lower", broken=2.0, fixed=1.0, **kw).improved
    assert not failures.Demo(better="higher", broken=2.0, fixed=1.0, **kw).improved


def test_peak_memory_grows_with_what_a_call_allocates():
    small = production.peak_memory(lambda: torch.ones(100, 1000))
    big = production.peak_memory(lambda: torch.ones(1000, 1000))
    assert small >= 100 * 1000 * 4 and big >= 1000 * 1000 * 4 and big > 5 * small
    with pytest.raises(ValueError, match="cpu"):
        production.peak_memory(lambda: None, "meta")


def test_step_costs_cover_every_precision_and_batch():
    model = pretrained.load("digits-class", device="cpu")
    rows = production.step_costs(model, batches=(1, 4), precisions=("fp32", "bf16"), repeats=1)
    assert [(r["precision"], r["batch"]) for r in rows] == [("fp32", 1), ("fp32", 4), ("bf16", 1), ("bf16", 4)]
    fp32 = {r["batch"]: r for r in rows if r["precision"] == "fp32"}
    assert fp32[4]["memory_mb"] > fp32[1]["memory_mb"] > 0
    with pytest.raises(ValueError, match="precision"):
        production.autocast(torch.device("cpu"), "fp8")


def test_precision_slowdown_is_the_autocast_time_over_the_fp32_time(monkeypatch):
    model = pretrained.load("digits-class", device="cpu")
    seen = []

    def fake_time_call(fn, repeats, device=None):  # 2 s for a call under bf16 autocast, 0.5 s otherwise
        fn()
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return 2.0 if seen[-1] else 0.5

    monkeypatch.setattr(production, "time_call", fake_time_call)
    assert production.precision_slowdown(model, "bf16", batch=2, repeats=1) == pytest.approx(4.0)
    assert seen == [False, True]
    with pytest.raises(ValueError, match="fp32.*bf16.*fp16"):
        production.precision_slowdown(model, "int8")
    with pytest.raises(ValueError, match="batch"):
        production.precision_slowdown(model, batch=0)


def test_latency_breakdown_names_every_knob_largest_first():
    model = pretrained.load("shapes-latent", device="cpu")
    rows = production.latency_breakdown(model, steps=3, fast_steps=1, repeats=1)
    assert {r["factor"] for r in rows} == {"sampling steps", "resolution", "precision", "VAE decode", "text encode"}
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)
    assert all(r["baseline_ms"] > 0 for r in rows)
    with pytest.raises(ValueError, match="latent text model"):
        production.latency_breakdown(pretrained.load("digits-class", device="cpu"), steps=3, fast_steps=1)
    with pytest.raises(ValueError, match="fast_steps"):
        production.latency_breakdown(model, steps=3, fast_steps=3)


def test_finetune_resumed_from_its_checkpoint_is_one_continuous_run(tmp_path):
    model, images = pretrained.load("digits-class", device="cpu"), _digits(4)
    state = tmp_path / "finetune.safetensors"
    failures.finetune(model, images, steps=2, batch_size=4, label=3, checkpoint_path=state)
    resumed = failures.finetune(model, images, steps=3, batch_size=4, label=3, checkpoint_path=state)
    straight = failures.finetune(model, images, steps=3, batch_size=4, label=3)
    assert all(torch.equal(v, straight.unet.state_dict()[k]) for k, v in resumed.unet.state_dict().items())


def test_finetune_curve_looks_at_one_run_at_each_checkpoint():
    model, targets, real = pretrained.load("digits-class", device="cpu"), _digits(4), _digits(64, 5)
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
