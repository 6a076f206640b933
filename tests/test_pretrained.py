"""course_utils.pretrained: shipped checkpoints: manifest, hashes, cards, loading, and refusal of damaged files."""

import shutil

import pytest
import torch

from course_utils import pretrained
from course_utils.checkpoints import CheckpointError, sha256_file

REQUIRED = {"dataset", "method", "arch", "conditioning", "sha256", "file", "card", "kind"}


def test_manifest_lists_every_file_with_its_hash_and_card():
    names = pretrained.list()
    assert "digit-classifier" in names
    files = {p.name for p in pretrained.WEIGHTS.glob("*.safetensors")}
    assert files == {pretrained.info(n)["file"] for n in names}, "every shipped file is in the manifest and back"
    # Colab installs the package from git, weights included: about two small models per notebook,
    # none over 8 MiB, 60 MiB for the series (raised from 30 MiB when notebooks 06-08 added five).
    sizes = {f: (pretrained.WEIGHTS / f).stat().st_size for f in files}
    assert max(sizes.values()) <= 8 * 2**20, {f: round(b / 2**20, 1) for f, b in sizes.items()}
    total = sum(sizes.values())
    assert total <= 60 * 2**20, f"shipped checkpoints total {total / 2**20:.1f} MiB > 60 MiB"
    for n in names:
        entry = pretrained.info(n)
        assert REQUIRED <= set(entry), n
        assert entry["dataset"] in ("digits", "shapes") and entry["conditioning"] in (None, "class", "text")
        assert sha256_file(pretrained.path(n)) == entry["sha256"]
        assert {"device", "torch", "date", "train_config"} <= set(entry["card"])


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Accepted"):
        pretrained.info("digits-gan")


def test_tampered_or_truncated_file_is_refused(tmp_path, monkeypatch):
    name = "digit-classifier"
    fake = tmp_path / "weights"
    fake.mkdir()
    for f in pretrained.WEIGHTS.iterdir():
        shutil.copy(f, fake / f.name)
    monkeypatch.setattr(pretrained, "WEIGHTS", fake)
    target = fake / pretrained.info(name)["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        pretrained.load(name, device="cpu")
    target.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        pretrained.load(name, device="cpu")


def test_classifier_loads_as_a_network():
    model = pretrained.load("digit-classifier", device="cpu")
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


def test_shipped_models_are_the_expected_ones():
    assert {"digit-classifier", "digits-ddpm"} <= set(pretrained.list())
    assert pretrained.list(kind="diffusion") == [
        "digits-class", "digits-class-linear", "digits-ddpm", "digits-flow", "digits-student",
        "dit-digits-b", "dit-digits-s", "shapes-latent", "shapes-text"]
    assert pretrained.list(kind="vae") == ["shapes-vae"]
    assert pretrained.info("shapes-latent")["conditioning"] == "text"
    assert pretrained.info("digits-class")["conditioning"] == "class"
    assert pretrained.info("shapes-text")["conditioning"] == "text"


def test_digits_class_draws_the_digit_asked_for():
    # Issue 5's bar: at the default guidance scale the classifier reads the digit asked for >= 90%.
    from course_utils import metrics

    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat_interleave(20)  # (200,)
    samples = model.sample(len(labels), steps=10, labels=labels, generator=torch.Generator().manual_seed(3))
    assert model.info["default_guidance_scale"] == 3.0
    assert metrics.class_adherence(samples, labels) >= 0.9
    # A strong scale and more steps: where diffusers-style x0 clamping drifts off the digit (12%).
    samples = model.sample(100, steps=25, labels=labels[::2], guidance_scale=7.0,
                           generator=torch.Generator().manual_seed(3))
    assert metrics.class_adherence(samples, labels[::2]) >= 0.9


def test_shapes_text_draws_the_colour_and_shape_asked_for():
    # Issue 5's bar: colour and shape both right >= 80% by the shapes judge, at the default guidance.
    from course_utils import metrics
    from course_utils.models.clip import all_captions

    model = pretrained.load("shapes-text", device="cpu")
    prompts = all_captions()  # all 90
    samples = model.sample(len(prompts), steps=10, prompts=prompts, generator=torch.Generator().manual_seed(3))
    both = metrics.prompt_adherence(samples, prompts)["object"]  # colour and shape both right
    assert both >= 0.8, both


def _grain_of_samples(name: str) -> tuple[float, float, float]:
    """(samples' background grain, the real images' grain, colour and shape right) for a shipped text model as a
    user samples it: its default guidance and DDIM noise (``info["default_eta"]``), DDIM-25, each of the 90
    captions twice, seed 0 (the card's draw, ``cards.evaluate_prompt_adherence``)."""
    from course_utils import metrics
    from course_utils.data import make_shapes
    from course_utils.models.clip import all_captions

    model = pretrained.load(name, device="cpu")
    prompts = [c for c in all_captions() for _ in range(2)]
    samples = model.sample(len(prompts), steps=25, prompts=prompts, generator=torch.Generator().manual_seed(0))
    real = metrics.background_grain(make_shapes(2000, seed=1).images)  # held-out shapes: 0.0116
    return metrics.background_grain(samples), real, metrics.prompt_adherence(samples, prompts)["object"]


@pytest.mark.parametrize("name", ["shapes-text", "shapes-latent"])
def test_shipped_text_models_are_as_clean_as_the_data(name):
    # The judge was trained on noised images and forgives grain, so cleanliness is measured on its own: the spread
    # of each sample's 3-pixel border frame, flat background in the data (issue 34). Deterministic DDIM (eta 0)
    # leaves shapes-text at 3.9x the data's grain and shapes-latent at 2.7x: each step commits the denoiser's error
    # and later steps keep it as picture. With fresh noise each step (their default eta 1) later steps wash it out.
    grain, real, right = _grain_of_samples(name)
    assert grain <= 2 * real, f"{name}: background grain {grain:.4f}, {grain / real:.1f}x the data's {real:.4f}"
    assert right >= 0.95, f"{name}: colour and shape right on {right:.1%} of 180 samples"


@pytest.mark.parametrize("name, eta", [("shapes-text", 1.0), ("shapes-latent", 1.0), ("digits-class", 0.0)])
def test_sample_uses_the_models_default_ddim_noise(name, eta):
    model = pretrained.load(name, device="cpu")
    assert model.info.get("default_eta", 0.0) == eta
    cond = {"prompts": "a red circle on a blue background"} if name.startswith("shapes") else {"labels": 3}
    draw = {"n": 2, "steps": 4, "generator": None, **cond}
    default = model.sample(**draw | {"generator": torch.Generator().manual_seed(0)})
    assert torch.equal(default, model.sample(**draw | {"generator": torch.Generator().manual_seed(0), "eta": eta}))
    if eta:  # the default is not deterministic DDIM, and other samplers take no eta
        assert not torch.equal(default, model.sample(**draw | {"generator": torch.Generator().manual_seed(0),
                                                                "eta": 0.0}))
        assert model.sample(**draw | {"sampler": "dpmsolver++"}).shape[0] == 2


def test_shipped_vae_is_its_recipe_with_the_decoder_fine_tuned():
    # The card and the file record the recipe's second stage (decoder alone, encoder frozen: the latents that
    # shapes-latent was trained on stay the same), and its reconstruction loss fell over it.
    from dataclasses import asdict

    from course_utils.recipes import get_recipe

    f = asdict(get_recipe("shapes-vae").decoder_finetune)
    card = pretrained.info("shapes-vae")["card"]["decoder_finetune"]
    assert {k: card[k] for k in ("steps", "batch_size", "lr", "seed", "precision")} == {
        k: f[k] for k in ("steps", "batch_size", "lr", "seed", "precision")}
    meta = pretrained.load_tensors("shapes-vae")[1]
    rows = meta["decoder_finetune_losses"]
    assert rows[-1][0] == f["steps"] and rows[-1][2] < 0.6 * rows[0][2]
    assert meta["losses"][-1][0] == pretrained.info("shapes-vae")["card"]["train_config"]["steps"]  # stage one


def test_shapes_vae_reconstructs_held_out_shapes():
    # Issue 6's bar: a measured, documented reconstruction error on held-out shapes (seed 1; training
    # used seed 0). The card records PSNR 42.1 dB on 2,000 (35.2 before the decoder's fine-tune); the judge reads
    # every reconstruction right.
    from course_utils import metrics
    from course_utils.data import make_shapes
    from course_utils.latent import decode, encode, reconstruction_error

    vae = pretrained.load("shapes-vae", device="cpu")
    held_out = make_shapes(300, seed=1)
    err = reconstruction_error(vae, held_out.images)
    assert err["psnr_db"] > 40 and err["worst_mse"] < 0.002, err
    recon = decode(vae, encode(vae, held_out.images))
    judged = metrics.judge_accuracy(metrics.shapes_judge(), type(held_out)(recon, held_out.captions, held_out.shape,
                                                                           held_out.color, held_out.background))
    assert judged["all"] >= 0.98, judged
    # The scale factor gives the latents of training shapes a standard deviation of about 1.
    assert encode(vae, make_shapes(500, seed=0).images).std().item() == pytest.approx(1.0, abs=0.05)


def test_shapes_latent_draws_the_colour_and_shape_asked_for():
    # The latent model is held to the pixel model's bar (colour and shape both right >= 80%).
    from course_utils import metrics
    from course_utils.models.clip import all_captions

    model = pretrained.load("shapes-latent", device="cpu")
    assert model.vae is not None and model.unet.config.sample_size == 8
    prompts = all_captions()
    samples = model.sample(len(prompts), steps=10, prompts=prompts, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (90, 3, 32, 32)
    both = metrics.prompt_adherence(samples, prompts)["object"]
    assert both >= 0.8, both


def test_dit_draws_the_digit_asked_for():
    # The shipped DiTs are held to digits-class's bar at the default guidance scale.
    from course_utils import metrics
    from course_utils.models import DiT

    labels = torch.arange(10).repeat_interleave(20)  # (200,)
    for name, bar in (("dit-digits-b", 0.9), ("dit-digits-s", 0.8)):
        model = pretrained.load(name, device="cpu")
        assert isinstance(model.unet, DiT)
        samples = model.sample(len(labels), steps=10, labels=labels, generator=torch.Generator().manual_seed(3))
        assert metrics.class_adherence(samples, labels) >= bar, name


def test_flow_model_reaches_the_data_in_eight_euler_steps():
    # digits-ddpm's recipe trained with flow matching and logit-normal times; issue 32's bar: Euler-8 within
    # 2x the real-vs-real floor (its card: Euler-50 1.01x; measured Euler-8 1.46x).
    from course_utils import metrics

    model = pretrained.load("digits-flow", device="cpu")
    assert model.is_flow and model.schedule is None and model.default_sampler == "euler"
    samples = model.sample(metrics.NUM_SAMPLES, steps=8, generator=torch.Generator().manual_seed(0))
    assert metrics.digits_fid(samples) <= 2.0 * metrics.floor()["fid"]
    assert metrics.class_distribution(samples).min() > 0.03  # every digit drawn
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=3)


STUDENT_TWO_STEP_FID_BAR = 2.0  # x the real-vs-real floor (issue 32); its card: 0.88x at 2 steps, 6.2x at 1


def test_consistency_student_draws_digits_in_two_calls():
    # digits-ddpm distilled into a 1-4 step student; its card holds FID at 1, 2, 4 steps.
    from course_utils import metrics

    model = pretrained.load("digits-student", device="cpu")
    assert model.is_consistency and model.samplers == ("consistency",)
    assert model.sampler_config == {"original_inference_steps": 50, "timestep_scaling": 10.0, "min_alpha_bar": 0.005}
    samples = model.sample(metrics.NUM_SAMPLES, steps=2, generator=torch.Generator().manual_seed(0))
    assert metrics.digits_fid(samples) <= STUDENT_TWO_STEP_FID_BAR * metrics.floor()["fid"]
    assert metrics.class_distribution(samples).min() > 0.03  # every digit drawn
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=3)


def test_digits_ddpm_meets_the_quality_bar():
    # Issue 3's bar: digits-FID within 3x the real-vs-real floor at the same N (898), all ten digits drawn.
    # DDIM-10 keeps the test short; the card records DDIM-50 (better).
    from course_utils import metrics

    model = pretrained.load("digits-ddpm", device="cpu")
    samples = model.sample(metrics.NUM_SAMPLES, steps=10, generator=torch.Generator().manual_seed(0))
    assert metrics.digits_fid(samples) <= 3 * metrics.floor()["fid"]
    assert metrics.class_distribution(samples).min() > 0.03


def test_diffusion_model_samples_images_in_range_reproducibly():
    model = pretrained.load("digits-ddpm", device="cpu")
    info = pretrained.info("digits-ddpm")
    assert info["method"] == "ddpm" and info["conditioning"] is None and info["dataset"] == "digits"
    a = model.sample(4, steps=10, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, steps=10, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 16, 16) and torch.equal(a, b) and a.abs().max() <= 1
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="Accepted"):
        model.sample(2, sampler="consistency")
    with pytest.raises(ValueError, match="positive integer"):
        model.sample(0)


def test_manifest_is_re_read_when_another_process_installs(tmp_path, monkeypatch):
    # A long training run evaluates with the shipped judge; if the judge was reinstalled meanwhile,
    # the run must see the new hash, not a stale copy of the manifest.
    import json
    import os

    manifest = tmp_path / "manifest.json"
    entries = json.loads(pretrained.MANIFEST.read_text())
    manifest.write_text(json.dumps({"digits-ddpm": entries["digits-ddpm"]}))
    monkeypatch.setattr(pretrained, "MANIFEST", manifest)
    assert pretrained.list() == ["digits-ddpm"]
    manifest.write_text(json.dumps(entries))
    os.utime(manifest, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert pretrained.list() == sorted(entries)


def test_the_linear_schedule_twin_draws_worse_digits_than_digits_class():
    # Notebook 10's first failure row: same network, data and budget; only the schedule differs.
    from course_utils import metrics

    linear, cosine = pretrained.load("digits-class-linear", device="cpu"), pretrained.load("digits-class", device="cpu")
    assert linear.schedule.name == "linear" and cosine.schedule.name == "cosine"
    fids = [metrics.digits_fid(m.sample(898, steps=20, generator=torch.Generator().manual_seed(0), batch_size=128))
            for m in (linear, cosine)]
    assert fids[0] > 1.15 * fids[1], fids  # measured: 2.14 against 1.67


def test_the_readme_picture_draws_only_shipped_models():
    # tools/sample_grid.py draws docs/samples.png; a renamed checkpoint once broke it unnoticed.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sample_grid", Path(__file__).parents[1] / "tools" / "sample_grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    assert {name for name, *_ in grid.ROWS} <= set(pretrained.list("diffusion"))


@pytest.mark.parametrize("sampler", ["dpmsolver++", "euler", "heun"])
def test_every_sampler_a_latent_model_lists_draws_the_prompt(sampler):
    # Unclamped latents on the cosine schedule: started at its last timestep (sigma 20,291) these drew 20%, 20% and
    # 0% of the pictures right; from the first "leading" timestep (pipeline.STARTS_AT_THE_TOP), all of them.
    from course_utils import metrics
    from course_utils.models.clip import all_captions

    model = pretrained.load("shapes-latent", device="cpu")
    prompts = all_captions()[::5]
    samples = model.sample(len(prompts), steps=10, sampler=sampler, prompts=prompts,
                           generator=torch.Generator().manual_seed(0))
    assert metrics.prompt_adherence(samples, prompts)["object"] >= 0.9
    assert metrics.background_grain(samples) <= 3 * 0.0116


def test_heun_follows_the_label_on_the_cosine_schedule_and_a_chosen_spacing_is_kept():
    from course_utils import metrics

    model = pretrained.load("digits-class", device="cpu")
    labels = torch.arange(10).repeat(5)
    samples = model.sample(50, steps=10, sampler="heun", labels=labels, generator=torch.Generator().manual_seed(0))
    assert metrics.class_adherence(samples, labels) >= 0.9  # 8.5% from the last timestep (Heun-20, 200 digits)
    assert model.make_sampler("heun").timestep_spacing == "leading"
    assert model.make_sampler("euler").timestep_spacing == "linspace"  # clamped: diffusers' default start is fine
    assert model.make_sampler("euler", clip_sample=False).timestep_spacing == "leading"
    chosen = model.make_sampler("heun", sampler_options={"timestep_spacing": "trailing"})
    assert chosen.timestep_spacing == "trailing"
