"""Seeded outputs that a refactor must not change, bit for bit.

Recorded before the package was reorganised (issue 29), from the code as it was then: samples of
every shipped diffusion model through every sampler it takes (and the options that change the
path: guidance, eta, clipping, batching, latents, attention maps), every sampler class on a fixed
stand-in model, 20-step training runs for each objective, and the small training loops of the
classifier, the judge, tiny CLIP, the VAE and reflow.

Floating-point results depend on the CPU's instruction set (oneDNN picks kernels by it), so the
SHA-256 of each case is stored per platform (torch version, machine, CPU capability). On a
recorded platform the hashes must match exactly. On any other platform the test compares against
the stored tensors themselves, to float tolerance, so it still fails if behaviour changed; then
``COURSE_RECORD_GOLDEN=1 pytest tests/test_golden.py`` adds that platform's hashes, and only after
those tolerance checks pass.

A change of behaviour that is meant (and named in its commit) is recorded anew with
``COURSE_RECORD_GOLDEN=1 COURSE_GOLDEN_RESET=<case prefix> pytest -p no:xdist tests/test_golden.py``,
which drops the named cases' stored values and hashes first. Done so far: ``sample.`` when
``DiffusionModel.sample`` began to count DDIM and DDPM below 10 steps down from t = 953 (trailing
spacing; issue 30: one step gave back the noise). The flow, student, sampler-class and training
cases were unchanged by it, bit for bit. Then (issue 32) the ``sample.`` cases of the models on a
DDPM schedule, which gained the Euler and Heun samplers, of digits-student (re-distilled from
digits-ddpm) and of the new digits-flow (which replaced digits-class-flow); the flow models' Euler and
Heun outputs were unchanged. Then (issue 34) ``sample.shapes-text``, ``sample.shapes-latent`` and
``sample.latent-and-attention``, when the text models began to sample DDIM with ``eta = 1`` by default;
and the Heun outputs of the models on the cosine schedule, with the unclamped DPM-Solver++, Euler and
Heun ones (``sample.shapes-latent``, ``noclip.dpm``), when those began at the first "leading" timestep
(``pipeline.STARTS_AT_THE_TOP``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).parent / "fixtures"
HASHES = FIXTURES / "golden_hashes.json"
VALUES = FIXTURES / "golden_values.safetensors"
RECORD = os.environ.get("COURSE_RECORD_GOLDEN") == "1"
RESET = tuple(p for p in os.environ.get("COURSE_GOLDEN_RESET", "").split(",") if p)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "asimd", "sve")


def platform_key() -> str:
    """What decides the exact bits of a CPU float result: torch, the machine, the kernels' ISA."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = "+".join(f for f in CPU_FLAGS if f in flags) or "unknown"
    return f"torch {torch.__version__} | {platform.machine()} | {torch.backends.cpu.get_cpu_capability()} | {isa}"


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        v = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def summary(name: str, key: str, v: torch.Tensor) -> torch.Tensor:
    """What the tolerance check keeps of an output: all of a small one; of a large one, its first and
    last quarter-limit numbers and its sum, absolute sum and sum of squares, in float64. Weights
    after training keep less (limit 256) than samples (4,096)."""
    limit = 256 if name.startswith("train.") and not key.endswith("losses") else 4096
    v = v.detach().cpu()
    if v.numel() <= limit or not v.is_floating_point():
        return v.contiguous().clone()
    flat, q = v.double().flatten(), limit // 4
    return torch.cat([flat[:q], flat[-q:], torch.stack([flat.sum(), flat.abs().sum(), (flat**2).sum()])])


def assert_near(what: str, have: torch.Tensor, want: torch.Tensor, tol: float = 3e-4, worst: float = 0.05) -> None:
    """Another platform's result against the recording: the mean difference at most ``tol`` and the
    worst at most ``worst``, each relative to max(1, |recorded|) (a summary's sums are large).

    Another CPU's kernels change last bits, and some paths amplify them in a few numbers: a value
    near DPM-Solver++'s x0 clip lands on the other side (0.02 in 1.7% of one shapes-text sample on an
    AMD EPYC without AMX, mean 3e-5), a training run compounds them over its steps (tiny CLIP's
    attention biases, 2.4e-4), and so does a DiT's Euler trajectory (dit-digits-b, mean 1.1e-4 on an
    Intel Xeon with AMX against the EPYC's recording). A change of behaviour moves the mean further."""
    if not have.is_floating_point():
        assert torch.equal(have, want), f"{what}: integer outputs differ."
        return
    err = (have - want.to(have.dtype)).abs() / want.to(have.dtype).abs().clamp_min(1.0)
    assert err.mean() <= tol and err.max() <= worst, (
        f"{what}: relative difference mean {err.mean():.2e} (at most {tol:g}), worst {err.max():.2e} "
        f"(at most {worst:g}) against the recording.")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- Shipped models through DiffusionModel.sample ----------------------------------------------

def _load(name: str):
    from course_utils import pretrained

    return pretrained.load(name, device="cpu")


def _condition(model) -> dict:
    from course_utils.models.clip import all_captions

    cond = model.info.get("conditioning")
    if cond == "class":
        return {"labels": [3, 7]}
    if cond == "text":
        return {"prompts": all_captions()[:2]}
    return {}


def _shipped_cases():
    from course_utils import pretrained

    cases = {}
    for name in pretrained.list("diffusion"):
        def run(name=name):
            model = _load(name)
            out = {}
            for sampler in model.samplers:
                steps = 2 if sampler == "consistency" else 3
                out[sampler] = model.sample(2, steps=steps, sampler=sampler, generator=_gen(), **_condition(model))
                if model.info.get("conditioning"):
                    out[f"{sampler}.unconditional"] = model.sample(2, steps=steps, sampler=sampler, generator=_gen(1))
            return out
        cases[f"sample.{name}"] = run

    def digits_class_options():
        m = _load("digits-class")
        return {
            "w0": m.sample(2, steps=3, labels=[1, 2], guidance_scale=0.0, generator=_gen()),
            "w1": m.sample(2, steps=3, labels=[1, 2], guidance_scale=1.0, generator=_gen()),
            "w7": m.sample(2, steps=3, labels=5, guidance_scale=7.0, generator=_gen()),
            "eta": m.sample(2, steps=4, labels=[0, 9], eta=0.5, generator=_gen()),
            "noclip.ddim": m.sample(2, steps=3, labels=[0, 9], clip_sample=False, generator=_gen()),
            "noclip.ddpm": m.sample(2, steps=3, sampler="ddpm", clip_sample=False, generator=_gen()),
            "noclip.dpm": m.sample(2, steps=3, sampler="dpmsolver++", clip_sample=False, generator=_gen()),
            "batches": m.sample(3, steps=3, sampler="ddpm", labels=[4, 5, 6], batch_size=2, generator=_gen()),
        }

    def default_steps():
        ddpm, flow, student = _load("digits-ddpm"), _load("digits-flow"), _load("digits-student")
        return {
            "ddim": ddpm.sample(1, generator=_gen()),
            "dpmsolver++": ddpm.sample(1, sampler="dpmsolver++", generator=_gen()),
            "ddpm": ddpm.sample(1, sampler="ddpm", generator=_gen()),
            "euler": flow.sample(1, generator=_gen()),
            "heun": flow.sample(1, sampler="heun", generator=_gen()),
            "heun.noclip": flow.sample(1, sampler="heun", steps=4, clip_sample=False, generator=_gen()),
            "consistency": student.sample(2, generator=_gen()),
            "consistency.clip": student.sample(2, steps=4, clip_sample=False, generator=_gen()),
        }

    def latent_and_attention():
        from course_utils.models.clip import all_captions

        latent, text = _load("shapes-latent"), _load("shapes-text")
        images, maps, _ = text.attention_maps(all_captions()[5:7], steps=3, generator=_gen())
        return {
            "latents": latent.sample(2, steps=3, prompts=all_captions()[3], output="latents", generator=_gen()),
            "latents.clip": latent.sample(2, steps=3, clip_sample=True, generator=_gen()),
            "attention.images": images,
            **{f"attention.{r}": v for r, v in maps.items()},
        }

    cases["sample.digits-class.options"] = digits_class_options
    cases["sample.default-steps"] = default_steps
    cases["sample.latent-and-attention"] = latent_and_attention
    return cases


# --- Every sampler class on a fixed stand-in model ---------------------------------------------

def _stand_in(x: torch.Tensor, t) -> torch.Tensor:
    """A smooth, deterministic 'model' that depends on both x and t."""
    return 0.3 * x + 0.2 * torch.sin(x + float(t) / 97.0)


def _loop(sampler, steps: int, shape=(2, 1, 4, 4), **kw) -> dict:
    sampler.set_timesteps(steps)
    g = _gen(3)
    x = torch.randn(shape, generator=g)
    xs, x0s = [], []
    for t in sampler.timesteps:
        out = sampler.step(_stand_in(x, t), t, x, generator=g, **kw)
        x = out.prev_sample
        xs.append(x)
        x0s.append(out.pred_original_sample)
    return {"prev": torch.stack(xs), "x0": torch.stack(x0s), "timesteps": sampler.timesteps.clone()}


def _sampler_cases():
    from course_utils.samplers import (ConsistencySampler, DDIMSampler, DDPMSampler, DPMSolverSampler,
                                       FlowMatchEulerSampler, FlowMatchHeunSampler)
    from course_utils.schedules import get_schedule

    def prefixed(prefix, d):
        return {f"{prefix}.{k}": v for k, v in d.items()}

    def discrete():
        out = {}
        for sched in ("linear", "cosine", "scaled_linear"):
            s = get_schedule(sched)
            for pt in ("epsilon", "sample", "v_prediction"):
                for spacing in ("leading", "trailing", "linspace"):
                    out |= prefixed(f"ddpm.{sched}.{pt}.{spacing}",
                                    _loop(DDPMSampler(s, prediction_type=pt, timestep_spacing=spacing), 5))
                    out |= prefixed(f"ddim.{sched}.{pt}.{spacing}",
                                    _loop(DDIMSampler(s, prediction_type=pt, timestep_spacing=spacing), 5))
                out |= prefixed(f"ddim-eta.{sched}.{pt}", _loop(DDIMSampler(s, prediction_type=pt), 6, eta=0.7))
                out |= prefixed(f"dpm2.{sched}.{pt}", _loop(DPMSolverSampler(s, prediction_type=pt), 6))
                out |= prefixed(f"dpm1.{sched}.{pt}", _loop(DPMSolverSampler(s, prediction_type=pt, solver_order=1), 6))
            out |= prefixed(f"ddpm-large-noclip.{sched}",
                            _loop(DDPMSampler(s, variance_type="fixed_large", clip_sample=False), 7))
            out |= prefixed(f"ddim-alpha0-range.{sched}",
                            _loop(DDIMSampler(s, set_alpha_to_one=False, clip_sample_range=0.5), 4))
            out |= prefixed(f"ddpm-all.{sched}", _loop(DDPMSampler(s), 1000, shape=(1, 3)))
            for mab in (0.0, 0.005):
                for n in (1, 2, 4):
                    out |= prefixed(f"lcm.{sched}.{mab}.{n}", _loop(ConsistencySampler(s, min_alpha_bar=mab), n))
            out |= prefixed(f"lcm-grid.{sched}",
                            _loop(ConsistencySampler(s, original_inference_steps=20, timestep_scaling=5.0,
                                                     clip_sample=True), 3))
        return out

    def flow():
        out = {}
        for shift in (1.0, 3.0):
            for n in (1, 4, 9):
                out |= prefixed(f"euler.{shift}.{n}", _loop(FlowMatchEulerSampler(shift=shift), n))
                out |= prefixed(f"heun.{shift}.{n}", _loop(FlowMatchHeunSampler(shift=shift), n))
        out |= prefixed("euler.T500", _loop(FlowMatchEulerSampler(num_train_timesteps=500), 5))
        return out

    def loop():
        from course_utils.samplers import sample_loop

        s = get_schedule("cosine")
        x, path = sample_loop(_stand_in, DDIMSampler(s), (2, 3), 5, generator=_gen(), return_trajectory=True)
        return {"ddim": x, "path": path,
                "ddpm": sample_loop(_stand_in, DDPMSampler(s), (2, 3), 4, generator=_gen()),
                "euler": sample_loop(_stand_in, FlowMatchEulerSampler(), (2, 3), 4, generator=_gen()),
                "eta": sample_loop(_stand_in, DDIMSampler(s), (2, 3), 4, generator=_gen(), eta=1.0)}

    return {"samplers.discrete": discrete, "samplers.flow": flow, "samplers.loop": loop}


# --- Training ----------------------------------------------------------------------------------

def _train_run(objective: str, prediction_type: str = "epsilon", labels: bool = False, arch: str = "unet") -> dict:
    from course_utils.data import load_digits
    from course_utils.models import DiT, UNet, get_dit_config, get_unet_config
    from course_utils.schedules import get_schedule
    from course_utils.training import TrainConfig, train

    images, digit_labels = load_digits()
    images, digit_labels = images[:64], digit_labels[:64]
    classes = 10 if labels else None
    torch.manual_seed(0)
    net = (UNet(get_unet_config("digits-tiny", num_classes=classes)) if arch == "unet"
           else DiT(get_dit_config("dit-digits-s", depth=1, num_classes=classes)))
    teacher = None
    if objective == "consistency":
        torch.manual_seed(1)
        teacher = UNet(get_unet_config("digits-tiny", num_classes=classes))
        net.load_state_dict(teacher.state_dict())
    config = TrainConfig(steps=20, batch_size=8, lr=1e-3, warmup_steps=5, ema_decay=0.9, log_every=1, seed=0,
                         objective=objective, prediction_type=prediction_type,
                         label_dropout=0.25 if labels else 0.0,
                         original_inference_steps=10 if objective == "consistency" else 50)  # only consistency reads it
    schedule = None if objective == "flow_matching" else get_schedule("cosine")
    result = train(net, images, schedule, config, labels=digit_labels if labels else None, device="cpu",
                   progress=False, teacher=teacher)
    return {"losses": torch.tensor([loss for _, loss in result.losses], dtype=torch.float64),
            **{f"ema.{k}": v for k, v in result.ema_model.state_dict().items()},
            **{f"model.{k}": v for k, v in result.model.state_dict().items()}}


def _resumed_run(tmp: Path) -> dict:
    """Ten steps, a checkpoint, then ten more from it: the resume path."""
    from course_utils.data import load_digits
    from course_utils.models import UNet
    from course_utils.schedules import get_schedule
    from course_utils.training import TrainConfig, train

    images = load_digits()[0][:64]
    ckpt = tmp / "run.train.safetensors"
    config = TrainConfig(steps=10, batch_size=8, lr=1e-3, warmup_steps=5, ema_decay=0.9, log_every=1, seed=0)
    torch.manual_seed(0)
    train(UNet("digits-tiny"), images, get_schedule("cosine"), config, device="cpu", checkpoint_path=ckpt,
          progress=False)
    torch.manual_seed(5)  # different initial weights: the checkpoint must replace them
    config = TrainConfig(steps=20, batch_size=8, lr=1e-3, warmup_steps=5, ema_decay=0.9, log_every=1, seed=0)
    result = train(UNet("digits-tiny"), images, get_schedule("cosine"), config, device="cpu", checkpoint_path=ckpt,
                   progress=False)
    return {"losses": torch.tensor([loss for _, loss in result.losses], dtype=torch.float64),
            **{f"ema.{k}": v for k, v in result.ema_model.state_dict().items()}}


def _small_loops() -> dict:
    from course_utils import reflow
    from course_utils.data import load_digits, make_shapes
    from course_utils.latent import train_vae
    from course_utils.metrics.classifier import train_digit_classifier
    from course_utils.metrics.shapes_judge import train_shapes_judge
    from course_utils.models.clip import train_tiny_clip
    from course_utils.models.mlp import ToyMLP

    images, labels = load_digits()
    shapes = make_shapes(64, seed=0)
    out = {}
    out |= {f"classifier.{k}": v for k, v in
            train_digit_classifier(images[:64], labels[:64], steps=5, batch_size=16).state_dict().items()}
    out |= {f"judge.{k}": v for k, v in train_shapes_judge(shapes, steps=5, batch_size=16).state_dict().items()}
    out |= {f"clip.{k}": v for k, v in train_tiny_clip(shapes, steps=5, batch_size=16).state_dict().items()}
    vae = train_vae(shapes.images, steps=5, batch_size=16, progress=False)
    out |= {f"vae.{k}": v for k, v in vae.model.state_dict().items()}
    out["vae.losses"] = torch.tensor([list(row) for row in vae.losses], dtype=torch.float64)
    torch.manual_seed(0)
    mlp = ToyMLP()
    g = _gen(2)
    x0, noise = torch.randn(32, 2, generator=g), torch.randn(32, 2, generator=g)
    out["reflow.losses"] = torch.tensor(reflow.fit_pairs(mlp, x0, noise, steps=5, batch_size=8), dtype=torch.float64)
    ends, _ = reflow.reflow_pairs(mlp, noise, steps=7)
    out["reflow.ends"] = ends
    return out


def _training_cases():
    cases = {f"train.diffusion.{pt}": (lambda pt=pt: _train_run("diffusion", pt))
             for pt in ("epsilon", "sample", "v_prediction")}
    cases["train.diffusion.labels"] = lambda: _train_run("diffusion", labels=True)
    cases["train.diffusion.dit"] = lambda: _train_run("diffusion", labels=True, arch="dit")
    cases["train.flow_matching"] = lambda: _train_run("flow_matching", labels=True)
    cases["train.consistency"] = lambda: _train_run("consistency")
    cases["train.small-loops"] = _small_loops
    return cases


CASES = {**_shipped_cases(), **_sampler_cases(), **_training_cases(), "train.resume": "tmp_path"}


def _compute(name: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same reduction order on every run
    try:
        fn = CASES[name]
        return _resumed_run(tmp_path) if fn == "tmp_path" else fn()
    finally:
        torch.set_num_threads(threads)


def _stored_values(name: str) -> dict[str, torch.Tensor]:
    prefix = f"{name}::"
    values = load_file(str(VALUES)) if VALUES.exists() else {}
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_outputs_are_unchanged(name, tmp_path):
    got = _compute(name, tmp_path)
    hashes = json.loads(HASHES.read_text()) if HASHES.exists() else {}
    key = platform_key()
    if RECORD and name.startswith(RESET or ("\0",)):
        _forget(name, hashes)
    stored = _stored_values(name)
    if not stored and RECORD:  # the first recording: the values every other platform is compared with
        _record(name, got, key, hashes, values=True)
        return
    assert stored, f"no stored values for {name}: record them (COURSE_RECORD_GOLDEN=1) before changing the code."
    assert sorted(got) == sorted(stored), f"{name}: outputs {sorted(set(got) ^ set(stored))} appeared or vanished."
    if key in hashes and name in hashes[key]:
        changed = [k for k in sorted(got) if digest({k: got[k]})[:16] != hashes[key][name][k]]
        assert not changed, f"{name}: {len(changed)} outputs differ bit-wise from the recording, e.g. {changed[:5]}."
        return
    for k in sorted(got):  # a platform without hashes: the recorded values, to float tolerance
        assert_near(f"{name}/{k}", summary(name, k, got[k]), stored[k])
    if RECORD:
        _record(name, got, key, hashes, values=False)


def _forget(name: str, hashes: dict) -> None:
    """Drop a case's stored values and every platform's hashes of it (a meant change, re-recorded next)."""
    for recorded in hashes.values():
        recorded.pop(name, None)
    HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    stored = load_file(str(VALUES))
    save_file({k: v for k, v in stored.items() if not k.startswith(f"{name}::")}, str(VALUES))


def _record(name: str, got: dict, key: str, hashes: dict, values: bool) -> None:
    FIXTURES.mkdir(exist_ok=True)
    hashes.setdefault(key, {})[name] = {k: digest({k: v})[:16] for k, v in sorted(got.items())}
    HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    if values:
        stored = load_file(str(VALUES)) if VALUES.exists() else {}
        stored |= {f"{name}::{k}": summary(name, k, v) for k, v in got.items()}
        save_file(stored, str(VALUES))
