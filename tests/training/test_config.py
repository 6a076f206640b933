"""course_utils.training.config: TrainConfig refuses bad settings and warms the learning rate up."""

import pytest

from course_utils.training import TrainConfig


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


def test_ema_warmup_is_a_flag():
    assert TrainConfig(ema_warmup=True).ema_warmup is True and TrainConfig().ema_warmup is False
    with pytest.raises(TypeError, match="ema_warmup must be True or False, got str 'yes'"):
        TrainConfig(ema_warmup="yes")


def test_the_learning_rate_warms_up_linearly_then_stays():
    # lr_at(step) = lr * min(1, (step + 1) / warmup_steps): with lr = 1e-3 and 4 warm-up steps, steps 0-3 take
    # 1/4, 2/4, 3/4 and 4/4 of it, every later step all of it.
    config = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [config.lr_at(s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert config.lr_at(10_000) == 1e-3


def test_cosine_decay_falls_from_lr_to_its_floor_after_the_warm_up():
    # steps 0-3 warm up; step 4 is the top (lr), the last step (steps - 1 = 14) the floor (min_lr_ratio * lr), and
    # half-way between them (step 9) the mean of the two; the rate never rises after the warm-up.
    config = TrainConfig(steps=15, lr=1e-3, warmup_steps=4, lr_decay="cosine", min_lr_ratio=0.1)
    rates = [config.lr_at(s) for s in range(15)]
    assert rates[:5] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert rates[9] == pytest.approx(0.55e-3)
    assert rates[14] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert config.lr_at(100) == pytest.approx(1e-4)  # a run resumed past its end stays at the floor


@pytest.mark.parametrize("kwargs, match", [({"lr_decay": "linear"}, "lr_decay"), ({"min_lr_ratio": 1.5}, "min_lr_ratio")])
def test_an_unknown_decay_or_a_floor_above_lr_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("warmup", [0, 1])
def test_no_warm_up_starts_at_the_full_rate(warmup):
    assert TrainConfig(lr=3e-4, warmup_steps=warmup).lr_at(0) == 3e-4


@pytest.mark.parametrize("kwargs", [{"warmup_steps": -1}, {"checkpoint_every": -5}, {"grad_clip": -0.1}])
def test_negative_counts_and_clipping_are_refused(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=rf"{name} must be (an integer|a number) >= 0"):
        TrainConfig(**kwargs)
