"""The training loop: it learns, it resumes exactly, it stops on NaN, it checkpoints atomically."""

import pytest
import torch

from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.data import load_digits
from course_utils.models import UNet
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, TrainingDiverged, train


@pytest.fixture(scope="module")
def digits():
    return load_digits()[0][:256]


def cfg(**kw):
    base = dict(steps=20, batch_size=32, lr=2e-3, warmup_steps=5, log_every=5, seed=0)
    return TrainConfig(**(base | kw))


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    batch = load_digits()[0][:16]
    result = train(UNet("digits-tiny"), batch, get_schedule("linear"), cfg(steps=150, batch_size=16, log_every=25),
                   device="cpu", progress=False)
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < 0.6 * first, result.losses


def test_resume_continues_the_same_run(tmp_path, digits):
    torch.manual_seed(0)
    straight = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=20), device="cpu", progress=False)
    torch.manual_seed(0)
    path = tmp_path / "run.safetensors"
    first = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=10), device="cpu", progress=False,
                  checkpoint_path=path)
    resumed = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=20), device="cpu", progress=False,
                    checkpoint_path=path)
    assert resumed.step == 20
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.ema_model.state_dict().values(), resumed.ema_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [s for s, _ in resumed.losses] == [s for s, _ in straight.losses]
    # The card's wall time covers the whole run, not only the session after the resume.
    assert resumed.wall_time_s > first.wall_time_s > 0
    assert resumed.images_per_s == pytest.approx(20 * 32 / resumed.wall_time_s)


def test_fused_optimizer_on_cuda_only_and_its_state_resumes(tmp_path, monkeypatch, digits):
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


def test_bf16_autocast_path_trains(digits):
    # The precision full mode uses on CUDA, exercised here through CPU autocast.
    result = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=6, precision="bf16"), device="cpu",
                   progress=False)
    assert result.step == 6 and all(torch.isfinite(torch.tensor(loss)) for _, loss in result.losses)


def test_nan_loss_stops_with_an_actionable_message(digits):
    model = UNet("digits-tiny")
    with torch.no_grad():
        model.conv_out.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 0.*learning rate.*fp32"):
        train(model, digits, get_schedule("linear"), cfg(), device="cpu", progress=False)


def test_checkpoint_round_trip_gives_identical_samples(tmp_path, digits):
    from course_utils.pipeline import DiffusionModel
    from course_utils.models import UNetConfig

    result = train(UNet("digits-tiny"), digits, get_schedule("cosine"), cfg(), device="cpu", progress=False)
    path = save_checkpoint(tmp_path / "m.safetensors", result.ema_model.state_dict(),
                           {"model_config": result.ema_model.config.to_dict()})
    tensors, meta = load_checkpoint(path)
    clone = UNet(UNetConfig.from_dict(meta["model_config"]))
    clone.load_state_dict(tensors)
    a = DiffusionModel(result.ema_model, get_schedule("cosine")).sample(4, steps=10, generator=torch.Generator().manual_seed(3))
    b = DiffusionModel(clone, get_schedule("cosine")).sample(4, steps=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (4, 1, 16, 16) and a.abs().max() <= 1


def test_checkpoint_hash_and_damage_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(3)}, {"a": 1})
    from course_utils.checkpoints import sha256_file

    digest = sha256_file(path)
    tensors, meta = load_checkpoint(path, expected_sha256=digest)
    assert meta == {"a": 1} and torch.equal(tensors["w"], torch.ones(3))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_checkpoint(path, expected_sha256=digest)
    path.write_bytes(bytes(data[:20]))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "positive integer"),
        ({"lr": -1.0}, "lr must be a positive"),
        ({"precision": "fp8"}, "'auto', 'fp32', 'bf16'"),
        ({"prediction_type": "noise"}, "Accepted"),
        ({"ema_decay": 1.0}, r"\[0, 1\)"),
        ({"label_dropout": 1.2}, r"\[0, 1\)"),
    ],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_training_data():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train(UNet("digits-tiny"), torch.full((4, 1, 16, 16), 3.0), get_schedule("linear"), cfg(), device="cpu")
    with pytest.raises(ValueError, match="label_dropout needs a class-conditional"):
        train(UNet("digits-tiny"), torch.zeros(4, 1, 16, 16), get_schedule("linear"), cfg(label_dropout=0.1),
              labels=torch.zeros(4, dtype=torch.long), device="cpu")


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3])
def test_label_dropout_replaces_labels_at_the_rate_asked(rate):
    from course_utils.training import diffusion_loss

    seen = []

    def spy(x, t, class_labels):  # records what the network is shown, predicts zeros
        seen.append(class_labels.clone())
        return torch.zeros_like(x)

    labels = torch.arange(10).repeat(400)  # (4000,)
    x0 = torch.zeros(len(labels), 1, 2, 2)
    diffusion_loss(spy, x0, get_schedule("cosine", 100).alphas_cumprod, torch.Generator().manual_seed(0),
                   labels=labels, label_dropout=rate, null_label=10)
    shown = seen[0]
    dropped = shown == 10
    assert torch.equal(shown[~dropped], labels[~dropped])  # kept labels are unchanged
    sd = (rate * (1 - rate) / len(labels)) ** 0.5
    assert abs(dropped.float().mean().item() - rate) <= 4 * sd + 1e-9
    for digit in range(10):  # every digit is dropped at about the same rate
        share = dropped[labels == digit].float().mean().item()
        assert abs(share - rate) <= 4 * (rate * (1 - rate) / 400) ** 0.5 + 1e-9


class _Interrupting(torch.nn.Module):
    """A denoiser that raises KeyboardInterrupt (the notebook's stop button) on its ``at``-th call."""

    def __init__(self, net, at=None):
        super().__init__()
        self.net, self.at, self.calls = net, at, 0

    def forward(self, x, t, **kw):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.net(x, t, **kw)


def test_an_interrupted_run_leaves_a_usable_model_and_a_valid_checkpoint(tmp_path, digits):
    torch.manual_seed(0)
    path = tmp_path / "run.safetensors"
    stopped = train(_Interrupting(UNet("digits-tiny"), at=8), digits, get_schedule("linear"), cfg(steps=20),
                    device="cpu", checkpoint_path=path, progress=False)
    assert stopped.interrupted and stopped.step == 7
    out = stopped.ema_model(torch.zeros(2, 1, 16, 16), torch.tensor([5, 5]))
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
    _, meta = load_checkpoint(path)  # saved on the way out, and whole
    assert meta["kind"] == "training_state" and meta["step"] == 7
    resumed = train(_Interrupting(UNet("digits-tiny")), digits, get_schedule("linear"), cfg(steps=20), device="cpu",
                    checkpoint_path=path, progress=False)
    assert not resumed.interrupted and resumed.step == 20


class _TinyDenoiser(torch.nn.Module):
    """Two convolutions and a timestep bias: quick to compile, enough to train."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x, t):
        return self.b(torch.nn.functional.silu(self.a(x) + (t.float() / 1000).view(-1, 1, 1, 1)))


def test_compiled_training_matches_eager(digits):
    losses = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        result = train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=8, log_every=1, compile=compile_),
                       device="cpu", progress=False)
        losses[compile_] = torch.tensor([loss for _, loss in result.losses])
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-4, atol=1e-6)


def test_a_failed_compile_falls_back_to_eager_with_a_warning(monkeypatch, digits):
    from course_utils.training import acceleration

    def broken(fn, device):
        def call(*args, **kwargs):
            raise RuntimeError("BackendCompilerFailed: simulated")
        return call

    torch.manual_seed(0)
    eager = train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=6, log_every=1), device="cpu",
                  progress=False)
    monkeypatch.setattr(acceleration, "compile_model", broken)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="torch.compile failed.*simulated.*eager mode"):
        fallback = train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=6, log_every=1, compile=True),
                         device="cpu", progress=False)
    assert fallback.losses == eager.losses  # the same draws, the same steps


def test_steady_throughput_leaves_out_the_first_steps(digits):
    from course_utils.training import TIMED_AFTER

    short = train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=TIMED_AFTER), device="cpu", progress=False)
    assert short.steady_images_per_s == 0 and short.warmup_s > 0
    long = train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=TIMED_AFTER + 5), device="cpu",
                 progress=False)
    assert long.steady_images_per_s > 0 and 0 < long.warmup_s < long.wall_time_s


def test_cuda_graph_and_compile_are_exclusive_and_cuda_graph_needs_cuda(digits):
    with pytest.raises(ValueError, match="choose one"):
        cfg(compile=True, cuda_graph=True)
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device, got cpu.*cuda_graph=False"):
        train(_TinyDenoiser(), digits, get_schedule("linear"), cfg(steps=2, cuda_graph=True), device="cpu",
              progress=False)


def test_a_recorded_steps_learning_rate_tensor_is_saved_as_a_number(tmp_path, digits):
    """A CUDA graph's AdamW holds its learning rate in a tensor and is capturable; the checkpoint
    stores a plain number and capturable off, so any run (eager or recorded) resumes from it."""
    from course_utils.training.state import optimizer_tensors, set_lr

    model = _TinyDenoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3), foreach=False)
    opt.param_groups[0]["capturable"] = False  # as the recording leaves it, but on a CPU
    set_lr(opt, 2e-3)
    assert torch.is_tensor(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"].item() == pytest.approx(2e-3)
    _, groups = optimizer_tensors(opt)
    assert groups[0]["lr"] == pytest.approx(2e-3) and isinstance(groups[0]["lr"], float)
    assert groups[0]["capturable"] is False
    save_checkpoint(tmp_path / "opt.safetensors", {"x": torch.zeros(1)}, {"param_groups": groups})  # JSON-ready


def test_a_failed_recording_restores_the_optimiser_and_warns():
    """Where recording fails (here: no CUDA at all), the step stays eager: AdamW gets back its plain
    learning rate and capturable flag, nothing ran, and the warning says how to skip the attempt."""
    from course_utils.training.acceleration import record_step

    model = _TinyDenoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    ran = []
    with pytest.warns(UserWarning, match="recording the training step as a CUDA graph failed.*cuda_graph=False"):
        graph = record_step(lambda: ran.append(1), opt, torch.Generator(), stream=None)
    assert graph is None and not ran
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["capturable"] is False
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_labels_outside_the_models_classes_are_refused_before_training(digits):
    from course_utils.models.unet import get_unet_config

    net = UNet(get_unet_config("digits-tiny", num_classes=10))
    labels = torch.arange(len(digits)) % 12  # 10 and 11: beyond the null label 10
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 9\] \(or 10, the null label\), got 0 to 11"):
        train(net, digits, get_schedule("linear"), cfg(steps=1), labels=labels, device="cpu", progress=False)
