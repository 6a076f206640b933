"""The second catalogue of bad input (issue 30): across the public API, each class of mistake a new
user or a careless script makes is refused with the right exception and a message that names the
argument and what is accepted. Each row fails if the call returns instead of raising.

Classes: numbers (numpy scalars are fine; bools, strings, fractions, NaN and inf are not), random
generators, options the chosen sampler or objective would ignore, images into metrics and judges,
sizes beyond the machine's memory, devices that are not there, resuming another run, checkpoint
paths, shipped files and widgets. The first catalogue is tests/test_bad_input.py.
"""

import re

import numpy as np
import pytest
import torch

from course_utils import config, metrics, pretrained
from course_utils.checkpoints import CheckpointError, check_writable, load_checkpoint
from course_utils.course.widgets import ForwardExplorer, LatentExplorer, PatchExplorer, PromptExplorer, SamplerExplorer
from course_utils.data import load_digits, make_shapes, make_toy2d
from course_utils.metrics import distances
from course_utils.metrics.frechet import gaussian_stats, kernel_inception_distance
from course_utils.samplers import (ConsistencySampler, DDIMSampler, DDPMSampler, DPMSolverSampler, FlowMatchEulerSampler,
                                   FlowMatchHeunSampler, sample_loop)
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train
from tests.helpers import read_only_folder

COSINE = get_schedule("cosine")
X = torch.zeros(2, 1, 16, 16)
NAN_DIGITS = torch.full((4, 1, 16, 16), float("nan"))


def _model(name="digits-class"):
    return pretrained.load(name, device="cpu")


def _stepped(sampler, n=2, **step_kwargs):
    """A sampler after set_timesteps(n), stepped once at its first timestep."""
    sampler.set_timesteps(n)
    t = sampler.timesteps[0]
    return sampler.step(torch.zeros(2, 3), t, torch.zeros(2, 3), **step_kwargs)


def _resume(tmp_path, first: dict, second: dict, net_first=None, net_second=None, schedule_second=COSINE):
    """Train 2 steps to a checkpoint, then try to resume it with other settings."""
    from course_utils.models import UNet

    ckpt = tmp_path / "run.safetensors"
    base = dict(steps=2, batch_size=4, log_every=1)
    data = load_digits()[0][:8]
    objective = first.get("objective", "diffusion")
    train(net_first or UNet("digits-tiny"), data, None if objective == "flow_matching" else COSINE,
          TrainConfig(**base | first), device="cpu", checkpoint_path=ckpt, progress=False)
    objective = second.get("objective", "diffusion")
    return train(net_second or UNet("digits-tiny"), data, None if objective == "flow_matching" else schedule_second,
                 TrainConfig(**base | second), device="cpu", checkpoint_path=ckpt, progress=False)


def _manifest_damaged(tmp_path, monkeypatch, text):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    monkeypatch.setattr(pretrained, "MANIFEST", path)
    return pretrained.list()


# (what, call, exception, the argument the message names, what the message says is accepted)
CASES = [
    # --- numbers: bools, strings, fractions, NaN and inf are refused, naming the argument ----------------
    ("a bool as the step count", lambda: TrainConfig(steps=True), TypeError, "steps", "positive integer"),
    ("a string batch size", lambda: TrainConfig(batch_size="64"), TypeError, "batch_size", "positive integer"),
    ("a fractional warm-up", lambda: TrainConfig(warmup_steps=2.5), TypeError, "warmup_steps", "integer >= 0"),
    ("a negative checkpoint interval", lambda: TrainConfig(checkpoint_every=-1), ValueError, "checkpoint_every", ">= 0"),
    ("a negative seed", lambda: TrainConfig(seed=-3), ValueError, "seed", ">= 0"),
    ("a NaN learning rate", lambda: TrainConfig(lr=float("nan")), ValueError, "lr", "positive number"),
    ("an infinite learning rate", lambda: TrainConfig(lr=float("inf")), ValueError, "lr", "positive number"),
    ("a negative weight decay", lambda: TrainConfig(weight_decay=-0.1), ValueError, "weight_decay", ">= 0"),
    ("a NaN weight decay", lambda: TrainConfig(weight_decay=float("nan")), ValueError, "weight_decay", ">= 0"),
    ("an infinite gradient clip", lambda: TrainConfig(grad_clip=float("inf")), ValueError, "grad_clip", ">= 0"),
    ("an EMA decay of 1", lambda: TrainConfig(ema_decay=1.0), ValueError, "ema_decay", r"\[0, 1\)"),
    ("a NaN EMA decay", lambda: TrainConfig(ema_decay=float("nan")), ValueError, "ema_decay", r"\[0, 1\)"),
    ("a string label dropout", lambda: TrainConfig(label_dropout="0.1"), TypeError, "label_dropout", r"\[0, 1\)"),
    ("a string as the compile flag", lambda: TrainConfig(compile="no"), TypeError, "compile", "True or False"),
    ("a number as the CUDA-graph flag", lambda: TrainConfig(cuda_graph=1), TypeError, "cuda_graph", "True or False"),
    ("a fractional step count to sample", lambda: _model().sample(2, steps=2.5), TypeError, "steps", "positive integer"),
    ("a bool sample count", lambda: _model().sample(True), TypeError, r"\bn\b", "positive integer"),
    ("a zero sample batch size", lambda: _model().sample(2, batch_size=0), ValueError, "batch_size", "positive integer"),
    ("a negative sample batch size", lambda: _model().sample(2, batch_size=-4), ValueError, "batch_size",
     "positive integer"),
    ("a NaN eta", lambda: _model().sample(1, steps=2, eta=float("nan")), ValueError, "eta", r"\[0, 1\]"),
    ("an eta above 1", lambda: _model().sample(1, steps=2, eta=2.0), ValueError, "eta", r"\[0, 1\]"),
    ("a string as clip_sample", lambda: _model().sample(1, steps=2, clip_sample="no"), TypeError, "clip_sample",
     "True or False"),
    ("a NaN flow shift", lambda: FlowMatchEulerSampler(shift=float("nan")), ValueError, "shift", "positive number"),
    ("an infinite Heun shift", lambda: FlowMatchHeunSampler(shift=float("inf")), ValueError, "shift", "positive number"),
    ("a NaN clip range", lambda: DDPMSampler(COSINE, clip_sample_range=float("nan")), ValueError, "clip_sample_range",
     "positive number"),
    ("a string as a sampler's clip_sample", lambda: DDIMSampler(COSINE, clip_sample="yes"), TypeError, "clip_sample",
     "True or False"),
    ("a NaN timestep scaling", lambda: ConsistencySampler(COSINE, timestep_scaling=float("nan")), ValueError,
     "timestep_scaling", "positive number"),
    ("a zero timestep scaling", lambda: ConsistencySampler(COSINE, timestep_scaling=0), ValueError, "timestep_scaling",
     "positive number"),
    ("a min alpha_bar of 1", lambda: ConsistencySampler(COSINE, min_alpha_bar=1.0), ValueError, "min_alpha_bar",
     r"\[0, 1\)"),
    ("a string eta into a DDIM step", lambda: _stepped(DDIMSampler(COSINE), eta="0.5"), TypeError, "eta", r"\[0, 1\]"),
    ("a fractional number of inference steps", lambda: DPMSolverSampler(COSINE).set_timesteps(7.5), TypeError,
     "num_inference_steps", "positive integer"),
    ("a billion Euler steps", lambda: FlowMatchEulerSampler().set_timesteps(10**9), ValueError, "num_inference_steps",
     "at most 100,000"),
    ("a NaN toy noise", lambda: make_toy2d("moons", noise=float("nan")), ValueError, "noise", ">= 0"),
    ("a string toy noise", lambda: make_toy2d("swiss_roll", noise="0.1"), TypeError, "noise", ">= 0"),
    ("a negative data seed", lambda: make_shapes(4, seed=-1), ValueError, "seed", ">= 0"),
    ("a fractional shapes count", lambda: make_shapes(4.5), TypeError, r"\bn\b", "positive integer"),
    ("a NaN schedule parameter", lambda: get_schedule("linear", beta_end=float("nan")), ValueError, "beta_end",
     r"\(0, 1\]"),
    ("a negative cosine offset", lambda: get_schedule("cosine", s=-0.1), ValueError, r"\bs\b", r"\[0, 1\]"),
    ("a NaN saturation threshold", lambda: metrics.saturation(X, threshold=float("nan")), ValueError, "threshold",
     r"\(0, 1\]"),
    ("a fractional KID subset count", lambda: kernel_inception_distance(torch.randn(8, 4), torch.randn(8, 4),
                                                                        num_subsets=2.5), TypeError, "num_subsets",
     "integer"),
    # --- randomness: a generator must be a torch.Generator ------------------------------------------------
    ("an int seed as the generator", lambda: _model().sample(1, steps=2, generator=0), TypeError, "generator",
     r"torch\.Generator"),
    ("a numpy generator", lambda: _model().sample(1, steps=2, generator=np.random.default_rng(0)), TypeError,
     "generator", r"torch\.Generator"),
    ("a seed into the sampling loop", lambda: sample_loop(lambda x, t: x, DDIMSampler(COSINE), (2, 3), 2, generator=7),
     TypeError, "generator", r"manual_seed"),
    ("a seed into a DDPM step", lambda: _stepped(DDPMSampler(COSINE), generator=3), TypeError, "generator",
     r"torch\.Generator"),
    ("a seed into a deterministic Euler step", lambda: _stepped(FlowMatchEulerSampler(), generator=3), TypeError,
     "generator", r"torch\.Generator"),
    ("a seed into a consistency step", lambda: _stepped(ConsistencySampler(COSINE), generator=3), TypeError,
     "generator", r"torch\.Generator"),
    # --- options that would be ignored are refused ---------------------------------------------------------
    ("eta with DDPM", lambda: _model().sample(1, steps=2, sampler="ddpm", eta=0.5), ValueError, "eta", "ddim"),
    ("eta with DPM-Solver++", lambda: _model().sample(1, steps=2, sampler="dpmsolver++", eta=1.0), ValueError, "eta",
     "ddim"),
    ("eta with a flow model", lambda: _model("digits-flow").sample(1, steps=2, eta=0.3), ValueError, "eta",
     "ddim"),
    ("a prediction type flow matching ignores", lambda: TrainConfig(objective="flow_matching",
                                                                    prediction_type="v_prediction"),
     ValueError, "prediction_type", "epsilon"),
    ("a teacher grid a diffusion run ignores", lambda: TrainConfig(original_inference_steps=20), ValueError,
     "original_inference_steps", "consistency"),
    ("noise for the Gaussian mixture", lambda: make_toy2d("gaussian_mixture", noise=0.1), ValueError, "noise",
     "moons"),
    # --- images into metrics and judges ---------------------------------------------------------------------
    ("NaN digits into the classifier", lambda: metrics.predict_digits(NAN_DIGITS), ValueError, "images", "NaN"),
    ("NaN digits into class adherence", lambda: metrics.class_adherence(NAN_DIGITS, 3), ValueError, "images", "NaN"),
    ("digits outside [-1, 1] into KID", lambda: metrics.digits_kid(torch.full((8, 1, 16, 16), 2.0)), ValueError,
     "images", r"\[-1, 1\]"),
    ("RGB images into a digit metric", lambda: metrics.class_distribution(torch.zeros(4, 3, 16, 16)), ValueError,
     "images", r"\(N, 1, 16, 16\)"),
    ("too few labels for the images", lambda: metrics.class_adherence(torch.zeros(4, 1, 16, 16), [1, 2]), ValueError,
     "labels", "n = 4"),
    ("a label past the classes", lambda: metrics.within_class_diversity(torch.zeros(4, 1, 16, 16), [1, 2, 3, 10]),
     ValueError, "labels", r"\[0, 9\]"),
    ("fractional labels", lambda: metrics.class_adherence(torch.zeros(2, 1, 16, 16), [0.5, 1.5]), ValueError,
     "labels", "ints"),
    ("NaN shapes into prompt adherence", lambda: metrics.prompt_adherence(torch.full((2, 3, 32, 32), float("nan")),
                                                                        "a red circle on a blue background"),
     ValueError, "images", "NaN"),
    ("digits into the shapes judge", lambda: metrics.shapes_judge().read(torch.zeros(2, 1, 16, 16)), ValueError, r"\bx\b",
     r"\(B, 3, 32, 32\)"),
    ("a NaN image into the shapes judge", lambda: metrics.shapes_judge().read(torch.full((1, 3, 32, 32), float("nan"))),
     ValueError, r"\bx\b", "NaN"),
    ("NaN features into FID's statistics", lambda: gaussian_stats(torch.full((4, 3), float("nan"))), ValueError,
     "features", "NaN"),
    ("NaN images into pairwise diversity", lambda: distances.pairwise_diversity(NAN_DIGITS), ValueError, "images",
     "NaN"),
    ("a NaN point cloud", lambda: distances.sliced_wasserstein(torch.full((4, 2), float("nan")), torch.zeros(4, 2)),
     ValueError, r"x and y", "finite"),
    ("a diverged trajectory", lambda: distances.straightness(torch.full((3, 2, 2), float("inf"))), ValueError,
     "trajectory", "NaN or inf"),
    # --- sizes beyond the machine's memory are refused up front, with the estimate -------------------------
    ("ten million shapes", lambda: make_shapes(10_000_000), ValueError, r"\bn\b", "GiB"),
    ("a 4,096-pixel digit", lambda: load_digits(size=4096), ValueError, "size", "GiB"),
    ("a ten-billion-step schedule", lambda: get_schedule("linear", 10_000_000_000), ValueError, "num_timesteps", "GiB"),
    ("ten billion toy points", lambda: make_toy2d("moons", 10_000_000_000), ValueError, r"\bn\b", "GiB"),
    ("a billion samples", lambda: _model().sample(10**10), ValueError, r"\bn\b", "GiB"),
    # --- devices that are not there ---------------------------------------------------------------------------
    ("a missing GPU for a shipped model", lambda: pretrained.load("digits-ddpm", device="cuda"), RuntimeError, "cuda",
     "'cpu'"),
    ("a missing GPU for training", lambda: train(torch.nn.Conv2d(1, 1, 1), X, COSINE, TrainConfig(steps=1),
                                                 device="cuda:0", progress=False), RuntimeError, "cuda", "'cpu'"),
    ("a missing GPU for the sampling loop", lambda: sample_loop(lambda x, t: x, DDIMSampler(COSINE), (2, 3), 2,
                                                                device="cuda"), RuntimeError, "cuda", "'cpu'"),
    ("a missing Apple GPU", lambda: config.get_device(torch.device("mps")), RuntimeError, "mps", "'cpu'"),
    ("a device that is not a name", lambda: config.get_device(0), TypeError, "device", "'cuda'"),
    ("a misspelt device", lambda: config.get_device("gpu"), ValueError, "device", "'cuda', 'mps', 'cpu'"),
    # --- resuming another run --------------------------------------------------------------------------------
    ("resuming with another objective",
     lambda tmp_path: _resume(tmp_path, {}, {"objective": "flow_matching"}), ValueError, "objective", "resume=False"),
    ("resuming with another prediction type",
     lambda tmp_path: _resume(tmp_path, {}, {"prediction_type": "v_prediction"}), ValueError, "prediction_type",
     "resume=False"),
    ("resuming with another schedule",
     lambda tmp_path: _resume(tmp_path, {}, {}, schedule_second=get_schedule("linear")), ValueError, "schedule",
     "resume=False"),
    ("resuming a longer run", lambda tmp_path: _resume(tmp_path, {"steps": 3}, {"steps": 2}), ValueError, "step",
     "resume=False"),
    ("resuming with another network", lambda tmp_path: _resume_preset(tmp_path), ValueError, "network",
     "resume=False"),
    # --- checkpoint paths ------------------------------------------------------------------------------------
    ("a checkpoint path that is a folder", lambda tmp_path: check_writable(tmp_path), CheckpointError, str,
     "file name"),
    ("a checkpoint under a file", lambda tmp_path: _under_a_file(tmp_path), CheckpointError, "not a folder",
     "folder"),
    ("a read-only output folder", lambda tmp_path: _read_only(tmp_path), CheckpointError, "not writable",
     "another path"),
    # --- shipped files -----------------------------------------------------------------------------------------
    ("a truncated manifest", lambda tmp_path, monkeypatch: _manifest_damaged(tmp_path, monkeypatch, '{"digits'),
     CheckpointError, "manifest.json", "reinstall"),
    ("a manifest that is a list", lambda tmp_path, monkeypatch: _manifest_damaged(tmp_path, monkeypatch, "[1, 2]"),
     CheckpointError, "manifest.json", "reinstall"),
    ("a manifest entry without its hash",
     lambda tmp_path, monkeypatch: _entry_without(tmp_path, monkeypatch, "sha256"), CheckpointError, "sha256",
     "reinstall"),
    ("a missing manifest", lambda tmp_path, monkeypatch: _manifest_missing(tmp_path, monkeypatch), CheckpointError,
     "manifest.json", "reinstall"),
    ("a missing weights file", lambda tmp_path, monkeypatch: _weights_missing(tmp_path, monkeypatch), CheckpointError,
     "digits-ddpm", "reinstall"),
    ("weights that do not fit the preset", lambda tmp_path, monkeypatch: _misfit(tmp_path, monkeypatch),
     CheckpointError, "does not fit", "reinstall"),
    # --- widgets ------------------------------------------------------------------------------------------------
    ("a tensor instead of a dict of images", lambda: ForwardExplorer(X), TypeError, "images", "dict"),
    ("NaN images into the forward explorer", lambda: ForwardExplorer({"x": NAN_DIGITS}), ValueError, "images", "NaN"),
    ("a negative explorer seed", lambda: ForwardExplorer({"x": X}, seed=-1), ValueError, "seed", ">= 0"),
    ("a guidance scale off the slider", lambda: PromptExplorer(_model("shapes-text"), guidance_scale=30.0),
     ValueError, "guidance_scale", r"\[0, 20\]"),
    ("a prompt that is not text", lambda: PromptExplorer(_model("shapes-text"), prompt=3), TypeError, "prompt",
     "string"),
    ("zero samples per press", lambda: PromptExplorer(_model("shapes-text"), n=0), ValueError, r"\bn\b",
     "positive integer"),
    ("a start step past the slider", lambda: SamplerExplorer(steps=80), ValueError, "steps", r"<= 50"),
    ("one row name as a string", lambda: SamplerExplorer(rows="DDIM"), TypeError, "rows", "list"),
    ("a fractional patch size", lambda: PatchExplorer(torch.zeros(1, 16, 16), patch_size=2.5), TypeError,
     "patch_size", "integer"),
    ("a list instead of images", lambda: LatentExplorer(_model("shapes-latent").vae, [[0.0]]), TypeError, "images",
     "tensor"),
]


def _resume_preset(tmp_path):
    from course_utils.models import UNet

    return _resume(tmp_path, {}, {}, net_first=UNet("digits-tiny"), net_second=UNet("digits-small"))


def _under_a_file(tmp_path):
    (tmp_path / "runs").write_text("a file where a folder should be")
    return check_writable(tmp_path / "runs" / "run.safetensors")


def _read_only(tmp_path):
    with read_only_folder(tmp_path / "ro") as folder:
        if folder is None:
            pytest.skip("no read-only folder can be made here (root without mount)")
        return check_writable(folder / "run.safetensors")


def _entry_without(tmp_path, monkeypatch, field):
    import json

    manifest = json.loads(pretrained.MANIFEST.read_text())
    del manifest["digits-ddpm"][field]
    _manifest_damaged(tmp_path, monkeypatch, json.dumps(manifest))
    return pretrained.info("digits-ddpm")


def _manifest_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "manifest.json")
    return pretrained.list()


def _weights_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    return pretrained.load("digits-ddpm", device="cpu")


def _misfit(tmp_path, monkeypatch):
    """digits-ddpm's manifest entry pointing at a file of another network, with its right hash."""
    import json
    import shutil

    from course_utils.checkpoints import sha256_file

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(pretrained.path("digits-class"), weights / "digits-ddpm.safetensors")
    tensors, meta = load_checkpoint(weights / "digits-ddpm.safetensors")
    from course_utils.checkpoints import save_checkpoint

    meta["model_config"] = pretrained.load_tensors("digits-ddpm")[1]["model_config"]  # says: the unconditional U-Net
    save_checkpoint(weights / "digits-ddpm.safetensors", tensors, meta)
    manifest = json.loads(pretrained.MANIFEST.read_text())
    manifest["digits-ddpm"]["sha256"] = sha256_file(weights / "digits-ddpm.safetensors")
    _manifest_damaged(tmp_path, monkeypatch, json.dumps(manifest))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    return pretrained.load("digits-ddpm", device="cpu")


def _call(call, tmp_path, monkeypatch):
    names = call.__code__.co_varnames[:call.__code__.co_argcount]
    return call(**{k: v for k, v in (("tmp_path", tmp_path), ("monkeypatch", monkeypatch)) if k in names})


@pytest.mark.parametrize("what, call, error, argument, accepted", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument_and_what_is_accepted(what, call, error, argument, accepted, tmp_path,
                                                                      monkeypatch):
    if "GPU" in what and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(error) as info:
        result = _call(call, tmp_path, monkeypatch)
        pytest.fail(f"{what}: no error; returned {type(result).__name__}")
    message = str(info.value)
    name = str(tmp_path) if argument is str else argument
    assert re.search(name if argument is not str else re.escape(name), message), \
        f"{what}: {message!r} does not name {name!r}"
    assert re.search(accepted, message, re.IGNORECASE), f"{what}: {message!r} does not say what is accepted ({accepted!r})"


def test_the_second_catalogue_has_at_least_sixty_kinds():
    assert len({c[0] for c in CASES}) == len(CASES) >= 60
