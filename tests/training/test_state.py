"""course_utils.training.state: the optimiser, the EMA and the generator of a run; saved and resumed exactly."""

import json

import pytest
import torch

from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.models import UNet
from course_utils.schedules import get_schedule
from course_utils.training import EMA, TrainConfig, TrainingState, train
from course_utils.training.state import optimizer_tensors, set_lr


def test_fused_optimizer_on_cuda_only_and_its_state_resumes(tmp_path, monkeypatch, digits, cfg):
    from course_utils.training import state

    model = UNet("digits-tiny")
    assert not state.make_optimizer(model, cfg(), torch.device("cpu")).defaults["fused"]
    assert state.make_optimizer(model, cfg(), torch.device("cuda")).defaults["fused"]  # built, not stepped: no GPU needed
    # The fused optimiser's state (its step counts are tensors on the parameters' device) saves and resumes
    # exactly; PyTorch's fused AdamW also runs on the CPU, which lets this run here.
    plain = state.make_optimizer
    monkeypatch.setattr(state, "make_optimizer", lambda m, c, d: plain(m, c, torch.device("cuda")))
    torch.manual_seed(0)
    straight = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=12), device="cpu", progress=False)
    torch.manual_seed(0)
    path = tmp_path / "run.safetensors"
    train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=6), device="cpu", progress=False,
          checkpoint_path=path)
    resumed = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=12), device="cpu", progress=False,
                    checkpoint_path=path)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_recorded_steps_learning_rate_tensor_is_saved_as_a_number(tmp_path, digits, tiny_denoiser):
    """A CUDA graph's AdamW holds its learning rate in a tensor and is capturable; the checkpoint
    stores a plain number and capturable off, so any run (eager or recorded) resumes from it."""
    from course_utils.training.state import optimizer_tensors, set_lr

    model = tiny_denoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3), foreach=False)
    opt.param_groups[0]["capturable"] = False  # as the recording leaves it, but on a CPU
    set_lr(opt, 2e-3)
    assert torch.is_tensor(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"].item() == pytest.approx(2e-3)
    _, groups = optimizer_tensors(opt)
    assert groups[0]["lr"] == pytest.approx(2e-3) and isinstance(groups[0]["lr"], float)
    assert groups[0]["capturable"] is False
    save_checkpoint(tmp_path / "opt.safetensors", {"x": torch.zeros(1)}, {"param_groups": groups})  # JSON-ready


def test_the_ema_warmup_follows_diffusers_ema_model_step_for_step():
    # diffusers' EMAModel (default: no use_ema_warmup) after each optimiser step: decay 0, then
    # min(decay, (1 + s) / (10 + s)). Ours with ema_warmup, fed the same weights, stays with it.
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    ours = EMA(model, decay=0.99, warmup=True)
    theirs = EMAModel(model.parameters(), decay=0.99)
    decays = []
    for step in range(1000):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.set_step(step)
        decays.append(ours.decay_at(step))
        ours.update(model)
        theirs.step(model.parameters())
        assert decays[-1] == pytest.approx(theirs.cur_decay_value, abs=1e-12)
        for a, b in zip(ours.model.parameters(), theirs.shadow_params):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert decays[:3] == [0.0, 2 / 11, 3 / 12] and decays[-1] == 0.99  # capped at ema_decay from step 890 on
    assert EMA(model, decay=0.99).decay_at(0) == 0.99  # without the ramp: the decay from the first update


def test_a_run_with_ema_warmup_resumes_exactly_and_forgets_the_initial_weights(tmp_path, digits, cfg):
    torch.manual_seed(0)
    straight = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=20, ema_warmup=True),
                     device="cpu", progress=False)
    torch.manual_seed(0)
    path = tmp_path / "run.safetensors"
    train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=10, ema_warmup=True), device="cpu",
          progress=False, checkpoint_path=path)
    resumed = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=20, ema_warmup=True),
                    device="cpu", progress=False, checkpoint_path=path)
    for a, b in zip(straight.ema_model.state_dict().values(), resumed.ema_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # After 20 steps the ramp's EMA is near the trained weights; the plain 0.999 one is still mostly the initial.
    name = "conv_in.weight"
    torch.manual_seed(0)
    initial = UNet("digits-tiny")
    first = initial.state_dict()[name].clone()
    plain = train(initial, digits, get_schedule("linear"), cfg(steps=20), device="cpu", progress=False)
    trained = straight.model.state_dict()[name]
    torch.testing.assert_close(plain.model.state_dict()[name], trained)  # the ramp changes only the average
    gap = lambda ema: (ema.state_dict()[name] - trained).norm() / (first - trained).norm()  # noqa: E731
    assert gap(straight.ema_model) < 0.5 < gap(plain.ema_model), (gap(straight.ema_model), gap(plain.ema_model))


def test_the_ema_moves_each_weight_a_share_one_minus_decay_of_the_way():
    # ema <- decay * ema + (1 - decay) * w: from ema = 0 towards w = 1 with decay 0.9, one update gives 0.1.
    model = torch.nn.BatchNorm1d(3)  # weights and buffers (running statistics)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        ema.model.weight.zero_()
        model.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, torch.full((3,), 0.1))
    assert torch.equal(ema.model.running_mean, model.running_mean)  # buffers are copied, not averaged
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training


def test_set_lr_sets_a_number_or_fills_a_recorded_steps_tensor_in_place():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    set_lr(opt, 5e-4)
    assert opt.param_groups[0]["lr"] == 5e-4
    tensor = torch.tensor(1e-3)
    opt.param_groups[0]["lr"] = tensor
    set_lr(opt, 2e-4)
    assert opt.param_groups[0]["lr"] is tensor and tensor.item() == pytest.approx(2e-4)  # the kernels read this one


def test_optimizer_tensors_flatten_adams_state_and_keep_the_groups_json_ready():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    flat, groups = optimizer_tensors(opt)
    # Two parameters (weight, bias), each with AdamW's step, exp_avg and exp_avg_sq.
    assert sorted(flat) == sorted(f"optim.{i}.{k}" for i in (0, 1) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert torch.equal(flat["optim.0.exp_avg"], opt.state[model.weight]["exp_avg"])
    assert json.loads(json.dumps(groups))[0]["params"] == [0, 1]  # plain numbers: they go into the metadata
    assert groups[0]["lr"] == 1e-3 and groups[0]["capturable"] is False


def _steps(state, model, n):
    """n optimiser steps on losses drawn with the state's generator, as the loop would take them."""
    for _ in range(n):
        x = torch.randn(8, 3, generator=state.generator)
        state.opt.zero_grad()
        model(x).pow(2).mean().backward()
        state.opt.step()
        state.ema.update(model)
        state.step += 1
        state.losses.append((state.step, 0.5))


def test_a_saved_state_resumes_exactly(tmp_path):
    config = TrainConfig(lr=1e-2, ema_decay=0.5, seed=3)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    state = TrainingState.start(model, config, torch.device("cpu"))
    _steps(state, model, 3)
    path = state.save(tmp_path / "run.safetensors", model, config, session_s=1.5)

    torch.manual_seed(1)  # other initial weights, all to be replaced
    other = torch.nn.Linear(3, 2)
    again = TrainingState.start(other, config, torch.device("cpu"))
    again.resume(path, other, torch.device("cpu"))
    assert (again.step, again.losses, again.earlier_wall_s) == (3, [(1, 0.5), (2, 0.5), (3, 0.5)], 1.5)
    for a, b in [(model, other), (state.ema.model, again.ema.model)]:
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    _steps(state, model, 2)  # both continue: the same draws and the same AdamW moments give the same weights
    _steps(again, other, 2)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))
    _, meta = load_checkpoint(again.save(tmp_path / "run.safetensors", other, config, session_s=2.0))
    assert meta["kind"] == "training_state" and meta["wall_time_s"] == 3.5  # both sessions' time


def test_resuming_from_a_file_that_is_not_a_training_state_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "weights.safetensors", {"w": torch.zeros(1)}, {"kind": "diffusion"})
    model = torch.nn.Linear(3, 2)
    state = TrainingState.start(model, TrainConfig(), torch.device("cpu"))
    with pytest.raises(ValueError, match="is not a training checkpoint; pass resume=False"):
        state.resume(path, model, torch.device("cpu"))
