"""course_utils.training.loop: train() learns, resumes exactly, stops on NaN or Ctrl-C cleanly, and refuses bad data."""

import pytest
import torch

from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.data import load_digits
from course_utils.models import UNet
from course_utils.schedules import get_schedule
from course_utils.training import TrainingDiverged, train


def test_loss_decreases_on_a_fixed_batch(cfg):
    torch.manual_seed(0)
    batch = load_digits()[0][:16]
    result = train(UNet("digits-tiny"), batch, get_schedule("linear"), cfg(steps=150, batch_size=16, log_every=25),
                   device="cpu", progress=False)
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < 0.6 * first, result.losses


def test_resume_continues_the_same_run(tmp_path, digits, cfg):
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


def test_nan_loss_stops_with_an_actionable_message(digits, cfg):
    model = UNet("digits-tiny")
    with torch.no_grad():
        model.conv_out.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 0.*learning rate.*fp32"):
        train(model, digits, get_schedule("linear"), cfg(), device="cpu", progress=False)


def test_checkpoint_round_trip_gives_identical_samples(tmp_path, digits, cfg):
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


def test_bad_training_data(cfg):
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train(UNet("digits-tiny"), torch.full((4, 1, 16, 16), 3.0), get_schedule("linear"), cfg(), device="cpu")
    with pytest.raises(ValueError, match="label_dropout needs a class-conditional"):
        train(UNet("digits-tiny"), torch.zeros(4, 1, 16, 16), get_schedule("linear"), cfg(label_dropout=0.1),
              labels=torch.zeros(4, dtype=torch.long), device="cpu")


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


def test_an_interrupted_run_leaves_a_usable_model_and_a_valid_checkpoint(tmp_path, digits, cfg):
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


def test_steady_throughput_leaves_out_the_first_steps(digits, cfg, tiny_denoiser):
    from course_utils.training import TIMED_AFTER

    short = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=TIMED_AFTER), device="cpu", progress=False)
    assert short.steady_images_per_s == 0 and short.warmup_s > 0
    long = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=TIMED_AFTER + 5), device="cpu",
                 progress=False)
    assert long.steady_images_per_s > 0 and 0 < long.warmup_s < long.wall_time_s


def test_labels_outside_the_models_classes_are_refused_before_training(digits, cfg):
    from course_utils.models.unet import get_unet_config

    net = UNet(get_unet_config("digits-tiny", num_classes=10))
    labels = torch.arange(len(digits)) % 12  # 10 and 11: beyond the null label 10
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 9\] \(or 10, the null label\), got 0 to 11"):
        train(net, digits, get_schedule("linear"), cfg(steps=1), labels=labels, device="cpu", progress=False)


def test_the_mean_loss_is_logged_every_log_every_steps_and_at_the_last(digits, cfg, tiny_denoiser):
    result = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=12, log_every=5), device="cpu",
                   progress=False)
    assert [s for s, _ in result.losses] == [5, 10, 12] and result.step == 12
    assert result.images_per_s == pytest.approx(12 * 32 / result.wall_time_s)  # steps x batch over the run's time


def test_the_config_must_be_a_train_config(digits):
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train(UNet("digits-tiny"), digits, get_schedule("linear"), {"steps": 1}, device="cpu")
