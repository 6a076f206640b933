"""course_utils.course.exercises.nb05: the guidance checkers (the CFG formula, label dropout) and the questions."""

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed, nb05


def reference_drop(labels, p, null_label, generator):
    drop = torch.rand(labels.shape, generator=generator) < p
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def test_cfg_checker(stub):
    assert nb05.check_cfg(lambda u, c, w: u + w * (c - u)).status == "correct"
    assert nb05.check_cfg(stub).status == "not attempted"
    wrong = nb05.check_cfg(lambda u, c, w: c + w * (c - u))
    assert wrong.status == "incorrect" and "UNconditional" in wrong.message
    assert "difference points" in nb05.check_cfg(lambda u, c, w: u + w * (u - c)).message


def test_label_dropout_checker(stub):
    assert nb05.check_label_dropout(reference_drop).status == "correct"
    assert nb05.check_label_dropout(stub).status == "not attempted"
    inverted = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l, 1 - p, n, g))
    assert "DROPPING" in inverted.message
    unseeded = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l, p, n, None))
    assert "generator" in unseeded.message
    scrambled = nb05.check_label_dropout(lambda l, p, n, g: reference_drop(l.flip(0), p, n, g))
    assert "stay as they were" in scrambled.message
    assert nb05.check_label_dropout(lambda l, p, n, g: l.float()).status == "incorrect"


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb05.check_cfg(lambda u, c, w: c)


@pytest.mark.widgets
def test_questions():
    for make, right in ((nb05.w_question, nb05.W_OPTIONS[0]), (nb05.cost_question, nb05.COST_OPTIONS[0])):
        box = make()
        box.field.value = right
        box.check()
        assert box.result.status == "correct"
        box.field.value = [o for o in box.field.options if o != right][0]
        box.check()
        assert box.result.status == "incorrect"


def test_label_dropout_that_is_not_random_is_caught():
    every_tenth = nb05.check_label_dropout(lambda y, p, null, g: torch.where(torch.arange(len(y)) % 10 == 0, null, y))
    assert every_tenth.status == "incorrect" and "not spread at random" in every_tenth.message

    def fixed_seed(y, p, null, g):
        drop = torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < p
        return torch.where(drop, torch.full_like(y, null), y)

    ignored = nb05.check_label_dropout(fixed_seed)
    assert ignored.status == "incorrect" and "ignored" in ignored.message


# --- The build: label-dropout training and the guided step -------------------------------------
# A correct build, written here independently of the notebook, and wrong builds that each make one
# slip a learner makes; each must fail with its own hint.

def train_step(net, opt, x0, labels, alphas, p, g, drop=reference_drop, order=("t", "noise", "dropout"), step=True,
               noise_generator=True):
    draws = {}
    for what in order:
        if what == "t":
            draws[what] = torch.randint(0, len(alphas), (len(x0),), generator=g)
        elif what == "noise":
            draws[what] = torch.randn(x0.shape, generator=g if noise_generator else None)
        else:
            draws[what] = drop(labels, p, net.config.num_classes, g)
    t, noise = draws["t"], draws["noise"]
    a = alphas[t].view(-1, 1, 1, 1)
    loss = ((net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, class_labels=draws["dropout"]) - noise) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    if step:
        opt.step()
    return loss.item()


def guided_step(net, x, t, y, w, null=None, swap=False, one_plus=False, two_calls=False):
    b = len(x)
    null = torch.full_like(y, net.config.num_classes if null is None else null)
    if two_calls:
        c, u = net(x, t, class_labels=y), net(x, t, class_labels=null)
    else:
        out = net(torch.cat([x, x]), t, class_labels=torch.cat([y, null]))
        c, u = out[:b], out[b:]
    if swap:
        c, u = u, c
    return u + (1 + w if one_plus else w) * (c - u)


def grade(step=train_step, guided=guided_step, **kwargs):
    kwargs = {"tiny_steps": 5, "shipped_per_class": 1} | kwargs
    return nb05.check_guidance_build(step, guided, **kwargs)


def test_build_accepts_a_correct_build_and_reports_its_figures():
    result = grade(tiny_steps=nb05.TINY_STEPS)  # the full tiny training run: about 8 s on one core
    assert result.status == "correct", result.message
    assert "at w = 3" in result.message and "threshold 30%" in result.message


def test_build_not_attempted(stub):
    assert grade(stub, stub).status == "not attempted"
    assert grade(train_step, stub).status == "not attempted"


@pytest.mark.parametrize("step, word", [
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, drop=lambda y, p, null, g: y), "No label reached"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, drop=lambda y, p, null, g: reference_drop(y, p, 0, g)),
     "dropped labels to 0"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, drop=lambda y, p, null, g: torch.full_like(y, null)),
     "Every label was dropped"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, drop=lambda y, p, null, g: reference_drop(y, p, null, None)),
     "same seed"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, 1 - p, g), "DROPPING"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, order=("dropout", "t", "noise")), "then the noise"),
    (lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, noise_generator=False), "another loss"),
])
def test_build_rejects_training_steps_with_their_hint(step, word):
    result = grade(step)
    assert result.status == "incorrect" and word in result.message, result.message


@pytest.mark.parametrize("options, word", [
    ({"swap": True}, "swapped"),
    ({"one_plus": True}, "w + 1"),
    ({"null": 0}, "label 0"),
    ({"two_calls": True}, "two network calls"),
])
def test_build_rejects_guided_steps_with_their_hint(options, word):
    result = grade(guided=lambda net, x, t, y, w: guided_step(net, x, t, y, w, **options))
    assert result.status == "incorrect" and word in result.message, result.message


def test_build_catches_a_step_that_never_updates_the_weights_at_the_outcome():
    """Every unit stage passes (lr 0 there); the training run finds the weights unchanged."""
    result = grade(lambda n, o, x, y, a, p, g: train_step(n, o, x, y, a, p, g, step=False))
    assert result.status == "incorrect" and "optimizer.step()" in result.message, result.message


def test_build_outcome_below_threshold_is_a_miss(monkeypatch):
    """A tiny run too short to learn the labels: the adherence at w = 3 is reported against the threshold."""
    monkeypatch.setattr(nb05, "TINY_PER_CLASS", 1)
    result = grade(tiny_steps=2)
    assert result.status == "incorrect" and "threshold 30%" in result.message and "chance 10%" in result.message


def test_sample_guided_with_the_package_step_is_model_sample():
    from course_utils import pretrained

    model = pretrained.load("digits-class")
    labels = torch.arange(10)
    for w in (0.0, 3.0):
        mine = nb05.sample_guided(nb05.package_guided_eps, model, labels, w, 10, torch.Generator().manual_seed(0))
        package = model.sample(10, steps=10, labels=labels, guidance_scale=w, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(mine, package, atol=1e-6, rtol=0)


def test_build_in_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        grade(guided=lambda net, x, t, y, w: guided_step(net, x, t, y, w, swap=True))
