"""Checkers for notebook 05, guidance.

Exercises: the classifier-free guidance combination, label dropout for training, the build
(a training step with label dropout and the batched guided noise prediction, graded by the class
adherence of guided samples at w = 3), and two questions on what ``w = 0`` and ``w = 1`` give
and on what large ``w`` costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations

import torch
from torch import nn

from ... import metrics, pretrained
from ...data import load_digits
from ...denoisers import ClampX0
from ...guidance import ClassifierFreeGuidance, guide
from ...models import UNet, UNetConfig
from ...models.embeddings import broadcast_timesteps
from ...pipeline import DiffusionModel
from ...samplers import sample_loop
from ...schedules import get_schedule
from ...training import diffusion_loss
from .core import (CORRECT, INCORRECT, NOT_ATTEMPTED, BuildExercise, CheckResult, LearnerTimeout, Miss, _finish,
                   _timeout_message, ask_choice, call_learner, check_cases, expect_close, expect_seeded, grade_build)

# --- Exercise 1: the guidance combination ----------------------------------------------------


def _cfg_cases():
    g = torch.Generator().manual_seed(5)
    cases = []
    for w in (0.0, 1.0, 3.0, 7.5):
        u, c = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
        slips = [(c + w * (c - u), "Start from the UNconditional prediction, then add w times the difference."),
                 (u + w * (u - c), "The difference points from unconditional to conditional: eps_cond - eps_uncond."),
                 (w * c + (1 - w) * u + (c - u), "Too many terms: eps_uncond + w * (eps_cond - eps_uncond) is all."),
                 (w * c, "Guidance keeps the unconditional prediction as its base.")]
        cases.append(((u, c, w), guide(u, c, w), slips))
    return cases


def check_cfg(fn: Callable) -> CheckResult:
    """``fn(eps_uncond, eps_cond, w)`` must return ``eps_uncond + w * (eps_cond - eps_uncond)``."""
    return check_cases("Exercise 1 (the guidance combination)", fn, _cfg_cases(), atol=1e-6, rtol=1e-6,
                       hint="eps = eps_uncond + w * (eps_cond - eps_uncond).")


# --- Exercise 2: label dropout ---------------------------------------------------------------


def check_label_dropout(fn: Callable) -> CheckResult:
    """``fn(labels, p, null_label, generator)``: each label replaced by ``null_label`` with probability ``p``."""
    name = "Exercise 2 (label dropout)"
    labels = torch.arange(10).repeat(2000)  # (20000,)
    try:
        out = call_learner(fn, labels.clone(), 0.1, 10, torch.Generator().manual_seed(0))
    except NotImplementedError:
        return _finish(CheckResult(name, NOT_ATTEMPTED, "Fill in drop_labels, then rerun this cell."))
    except LearnerTimeout:
        return _finish(CheckResult(name, INCORRECT, _timeout_message()))
    except Exception as exc:  # noqa: BLE001 - the learner's code may raise anything
        return _finish(CheckResult(name, INCORRECT, f"drop_labels raised {type(exc).__name__}: {exc}"))
    out = torch.as_tensor(out)
    if out.shape != labels.shape or out.is_floating_point():
        return _finish(CheckResult(name, INCORRECT, f"Return integer labels of shape {tuple(labels.shape)}, "
                                                    f"got {out.dtype} {tuple(out.shape)}."))
    dropped = out == 10
    kept_ok = bool((out[~dropped] == labels[~dropped]).all())
    rate = float(dropped.float().mean())
    if not kept_ok:
        return _finish(CheckResult(name, INCORRECT, "Labels that are not dropped must stay as they were."))
    if abs(rate - 0.9) < 0.02:
        return _finish(CheckResult(name, INCORRECT, f"{rate:.0%} were dropped: p is the probability of DROPPING."))
    if abs(rate - 0.1) > 0.015:  # 20,000 draws: the standard error of the rate is 0.002
        return _finish(CheckResult(name, INCORRECT, f"{rate:.1%} of labels were dropped; p = 0.1 should drop about "
                                                    "10%. Draw one uniform number per label and compare it to p."))
    per_class = torch.stack([dropped[labels == c].float().mean() for c in range(10)])  # (10,), each ~0.1
    if float((per_class - 0.1).abs().max()) > 0.04:  # 2,000 labels a class: 0.04 is 6 standard errors
        return _finish(CheckResult(name, INCORRECT, "The dropped labels are not spread at random: from digit "
                                   f"{int(per_class.argmax())} you dropped {float(per_class.max()):.0%}, from digit "
                                   f"{int(per_class.argmin())} {float(per_class.min()):.0%}. Draw one uniform number "
                                   "per label (with the generator) and drop where it is below p."))
    try:
        again = torch.as_tensor(call_learner(fn, labels.clone(), 0.1, 10, torch.Generator().manual_seed(0)))
        other = torch.as_tensor(call_learner(fn, labels.clone(), 0.1, 10, torch.Generator().manual_seed(1)))
    except Exception as exc:  # noqa: BLE001 - it ran once: a second call that fails is a bug of its own
        return _finish(CheckResult(name, INCORRECT, f"A second call of drop_labels raised {type(exc).__name__}: {exc}"))
    if not torch.equal(again, out):
        return _finish(CheckResult(name, INCORRECT, "Use the generator you are given, so that a seed fixes the result."))
    if torch.equal(other, out):
        return _finish(CheckResult(name, INCORRECT, "Seeds 0 and 1 dropped the same labels: the generator you are "
                                                    "given is ignored; draw the random numbers from it."))
    return _finish(CheckResult(name, CORRECT, f"{rate:.1%} dropped to the null label; the rest untouched."))


# --- Build: label-dropout training and the guided step -----------------------------------------

BUILD_NAME = "Build (label-dropout training and the guided step)"
P_UNCOND = 0.1  # the dropout rate of the unit stage and of the tiny training run
W_GRADED = 3.0  # the guidance scale the outcomes are graded at (digits-class's default)
SAMPLE_STEPS = 10  # DDIM steps of every graded sample
SHIPPED_PER_CLASS = 6  # outcome 1: 60 digits from the shipped digits-class
SHIPPED_THRESHOLD = 0.9  # the notebook's target for digits-class at its default scale
TINY_STEPS, TINY_BATCH, TINY_LR = 200, 32, 3e-3  # outcome 2: about 7 s on one core
TINY_PER_CLASS = 10  # 100 samples of the tiny model
TINY_THRESHOLD = 0.3  # three times chance; the solution reaches 51% (12% at w = 0)
CHANCE = 0.1
# 68k parameters, no attention: 200 steps of batch 32 teach it the labels (the digits-tiny preset,
# 0.1M parameters with attention, is three times slower per step).
TINY_UNET = UNetConfig(base_channels=8, channel_mults=(1, 2, 2), attention_levels=(), groups=4, num_classes=10)
_DRAWS = ("t", "noise", "dropout")  # diffusion_loss's order of draws


def build_guidance() -> BuildExercise:
    """The build's card: what the learner writes and what it is graded on."""
    return BuildExercise(
        BUILD_NAME, "cfg_train_step (one training step with label dropout) and guided_eps (the guided noise "
                    "prediction, one batched network call), then sampling the digits with your guided step",
        (f"training step: the labels that reach the network are the null label at a rate of about p for every "
         f"digit (20,000 labels, p = {P_UNCOND:g}), the others unchanged; the same generator gives the same "
         "dropout, another generator another",
         "training step: the loss equals the package's diffusion_loss for the same generator "
         "(draws in the order t, noise, dropout)",
         "guided step: equals the package's ClassifierFreeGuidance on random inputs at w = 3, 7.5, 0 and 1 "
         "(w = 0: the unconditional model, w = 1: the plain conditional one)",
         "guided step: one network call per step, on a batch of 2B",
         f"outcome: the shipped digits-class sampled with your guided step at w = {W_GRADED:g} "
         f"(DDIM-{SAMPLE_STEPS}, {10 * SHIPPED_PER_CLASS} digits): the digit classifier reads the digit asked for "
         f"in at least {SHIPPED_THRESHOLD:.0%}",
         f"outcome: a tiny class-conditional U-Net trained {TINY_STEPS} steps with your training step, sampled at "
         f"w = {W_GRADED:g}: at least {TINY_THRESHOLD:.0%} read as the digit asked for (chance: {CHANCE:.0%})"))


@dataclass(frozen=True)
class _ToyConfig:
    num_classes: int = 10


class _ToyNet(nn.Module):
    """A cheap stand-in for a class-conditional U-Net on ``(B, 1, 4, 4)`` inputs that records its calls.

    ``net(x_t, t, class_labels) = scale * cos(t / 300) * x_t + table[label]``: the output depends on
    ``x_t``, on ``t`` and on the label (a random ``(1, 4, 4)`` pattern per label, the null label 10
    included), so swapped or mislabelled passes give other numbers. ``calls`` holds ``(batch size,
    labels)`` of each call, labels None when none were passed.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.config = _ToyConfig()
        self.table = nn.Parameter(torch.randn(11, 1, 4, 4, generator=torch.Generator().manual_seed(seed)))
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.calls: list[tuple[int, torch.Tensor | None]] = []

    def forward(self, x: torch.Tensor, t, class_labels=None, **unused) -> torch.Tensor:
        b = x.shape[0]
        self.calls.append((b, None if class_labels is None else torch.as_tensor(class_labels).detach().clone()))
        y = torch.full((b,), self.config.num_classes) if class_labels is None else torch.as_tensor(class_labels)
        t = broadcast_timesteps(t, x).to(x.dtype)  # (B,): one timestep for all, or one each, as the U-Net takes it
        return self.scale * torch.cos(t / 300).view(b, 1, 1, 1) * x + self.table[y]  # (B, 1, 4, 4)


def _alphas() -> torch.Tensor:
    """``(T,)`` float32 alpha_bar of the cosine schedule (digits-class's)."""
    return get_schedule("cosine").alphas_cumprod.to(torch.float32)


def _run_step(train_step: Callable, x0: torch.Tensor, labels: torch.Tensor, p: float,
              generator: torch.Generator) -> tuple[_ToyNet, object]:
    """One call of the learner's step on a fresh toy network (learning rate 0); the net and the return value."""
    net = _ToyNet()
    out = train_step(net, torch.optim.SGD(net.parameters(), lr=0.0), x0, labels.clone(), _alphas(), p, generator)
    return net, out


def _labels_seen(net: _ToyNet, b: int) -> torch.Tensor:
    """The labels of the step's call on the whole batch of ``b``."""
    calls = [y for n, y in net.calls if n == b]
    if not calls:
        raise Miss(f"Your step never called the network on the batch of {b}: compute the prediction "
                   "net(x_t, t, class_labels=labels) for the whole batch.")
    if calls[0] is None:
        raise Miss("Your step called the network without labels, so every example was the null label: pass the "
                   "labels after dropout, net(x_t, t, class_labels=labels).")
    return calls[0]


def _dropout_stage(train_step: Callable) -> str:
    """The labels that reach the network: dropped at the rate p for every digit, to the null label only."""
    labels = torch.arange(10).repeat(2000)  # (20000,)
    x0 = torch.randn(len(labels), 1, 4, 4, generator=torch.Generator().manual_seed(1))
    null = _ToyConfig.num_classes

    def seen(generator):
        return _labels_seen(_run_step(train_step, x0, labels, P_UNCOND, generator)[0], len(labels))

    y = call_learner(seen, torch.Generator().manual_seed(0))
    if y.shape != labels.shape or y.is_floating_point():
        raise Miss(f"The network received labels {y.dtype} {tuple(y.shape)}; they should be integers, "
                   f"{tuple(labels.shape)}, one per image.")
    dropped, changed = y == null, y != labels
    if not dropped.any():
        if changed.any() and bool((y[changed] == 0).all()):
            raise Miss("You dropped labels to 0, which is a real digit: the null label is the extra row, "
                       f"net.config.num_classes (= {null}).")
        raise Miss(f"No label reached the network as the null label ({null}): call drop_labels(labels, p_uncond, "
                   "net.config.num_classes, generator) in the step and pass what it returns to the network.")
    if bool(dropped.all()):
        raise Miss("Every label was dropped to the null label: the network never sees a digit's label. Drop each "
                   "one only with probability p_uncond.")
    if bool((y[~dropped] != labels[~dropped]).any()):
        raise Miss("Labels that are not dropped must reach the network unchanged, in the order of x0.")
    rate = float(dropped.float().mean())
    if abs(rate - (1 - P_UNCOND)) < 0.02:
        raise Miss(f"{rate:.0%} of the labels were dropped with p_uncond = {P_UNCOND:g}: p is the probability "
                   "of DROPPING a label, not of keeping it.")
    if abs(rate - P_UNCOND) > 0.015:  # 20,000 draws: the standard error of the rate is 0.002
        raise Miss(f"{rate:.1%} of the labels were dropped; p_uncond = {P_UNCOND:g} should drop about "
                   f"{P_UNCOND:.0%}. Pass p_uncond itself to drop_labels.")
    per_class = torch.stack([dropped[labels == c].float().mean() for c in range(10)])  # (10,), each ~0.1
    if float((per_class - P_UNCOND).abs().max()) > 0.04:  # 2,000 labels a digit: 6 standard errors
        raise Miss(f"The dropout is not spread at random: digit {int(per_class.argmax())} lost "
                   f"{float(per_class.max()):.0%} of its labels, digit {int(per_class.argmin())} "
                   f"{float(per_class.min()):.0%}. Draw one uniform number per label and drop where it is below p.")
    expect_seeded(seen, "set of dropped labels")
    return f"{rate:.1%} of labels dropped to the null label, every digit within 10 ± 4%, seeded"


def _loss_with(x0, labels, alphas, p, seed, order=_DRAWS, sqrt=True) -> float:
    """The step's loss on a toy net with the draws made in ``order`` (``sqrt=False``: alpha_bar unrooted)."""
    g, b, draws = torch.Generator().manual_seed(seed), x0.shape[0], {}
    for what in order:
        if what == "t":
            draws[what] = torch.randint(0, len(alphas), (b,), generator=g)  # (B,)
        elif what == "noise":
            draws[what] = torch.randn(x0.shape, generator=g)  # (B, 1, 4, 4)
        else:
            draws[what] = torch.rand(b, generator=g) < p  # (B,)
    y = torch.where(draws["dropout"], torch.full_like(labels, _ToyConfig.num_classes), labels)
    a = alphas[draws["t"]].view(b, 1, 1, 1)
    x_t = (a.sqrt() * x0 + (1 - a).sqrt() * draws["noise"]) if sqrt else (a * x0 + (1 - a) * draws["noise"])
    with torch.no_grad():
        return float(((_ToyNet()(x_t, draws["t"], class_labels=y) - draws["noise"]) ** 2).mean())


def _loss_stage(train_step: Callable) -> str:
    """The returned loss: the package's diffusion_loss for the same generator."""
    g = torch.Generator().manual_seed(3)
    x0, labels = torch.randn(16, 1, 4, 4, generator=g), torch.randint(0, 10, (16,), generator=g)
    alphas, p, seed = _alphas(), 0.5, 7
    with torch.no_grad():
        expected = float(diffusion_loss(_ToyNet(), x0, alphas, torch.Generator().manual_seed(seed), labels=labels,
                                        label_dropout=p, null_label=_ToyConfig.num_classes))
    _, got = call_learner(_run_step, train_step, x0, labels, p, torch.Generator().manual_seed(seed))
    if got is None:
        raise Miss("Your step returned None: return the loss, loss.item().")
    try:
        got = float(got)
    except (TypeError, ValueError, RuntimeError):
        raise Miss(f"Your step returned {type(got).__name__}; return the loss as a number, loss.item().") from None
    if not math.isfinite(got):
        raise Miss("Your step's loss is NaN or inf.")
    if math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-7):
        return "the loss equals diffusion_loss's for the same generator"
    again = float(call_learner(_run_step, train_step, x0, labels, p, torch.Generator().manual_seed(seed))[1])
    if again != got:
        raise Miss("The same seed gave another loss: draw t and the noise from the generator you are given "
                   "(torch.randint(..., generator=generator), torch.randn(..., generator=generator)).")
    if math.isclose(got, _loss_with(x0, labels, alphas, p, seed, sqrt=False), rel_tol=1e-5):
        raise Miss("x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps: you left out the square roots.")
    for order in permutations(_DRAWS):
        if order != _DRAWS and math.isclose(got, _loss_with(x0, labels, alphas, p, seed, order), rel_tol=1e-5):
            raise Miss(f"Your step draws {', '.join(order)}; draw t, then the noise, then the dropout, all from "
                       "generator, so that the same seed gives the same training run as the package's.")
    raise Miss(f"Your step's loss is {got:.6g}, the package's diffusion_loss gives {expected:.6g} for the same "
               "generator. Draw t = torch.randint(0, len(alphas_cumprod), (B,)), then the noise (like x0), then "
               "the dropout, all with generator; x_t by the closed form; the mean squared error against the noise.")


def package_guided_eps(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                       w: float) -> torch.Tensor:
    """The package's guided noise prediction ``(B, C, H, W)`` (``guidance.ClassifierFreeGuidance``)."""
    return ClassifierFreeGuidance(net, w)(x_t, t, class_labels=labels)


def _guided_stage(guided_step: Callable) -> str:
    """The guided prediction equals the package's at several w; the usual slips get their own hint."""
    g = torch.Generator().manual_seed(11)
    net = _ToyNet(seed=4)
    for w in (3.0, 7.5, 0.0, 1.0):  # w = 3 first: there every slip below gives distinct numbers
        x, y = torch.randn(4, 1, 4, 4, generator=g), torch.randint(0, 10, (4,), generator=g)
        t = torch.randint(0, 1000, (), generator=g)  # 0-d, as the sampler passes it
        with torch.no_grad():
            expected = package_guided_eps(net, x, t, y, w)
            c, u, zero = net(x, t, class_labels=y), net(x, t), net(x, t, class_labels=torch.zeros_like(y))
            got = call_learner(guided_step, net, x.clone(), t.clone(), y.clone(), w)
        slips = [(guide(c, u, w), "You swapped the two predictions: start from the UNconditional one (null label) "
                                  "and move w times along eps_cond - eps_uncond. Check which half of the output "
                                  "belongs to which labels."),
                 (guide(u, c, 1 + w), "You applied w + 1 (the convention of Ho & Salimans' paper, where w = 0 is the "
                                      "conditional model). Here, as in diffusers, w = 0 is the unconditional model "
                                      "and w = 1 the plain conditional one: eps_uncond + w (eps_cond - eps_uncond)."),
                 (guide(zero, c, w), "Your unconditional pass used label 0, a real digit: the null label is "
                                     "net.config.num_classes."),
                 (c, "You returned the conditional prediction: combine it with the unconditional one.")]
        if got is not None and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            for value, hint in slips:
                if not torch.allclose(value, expected, atol=1e-5) and torch.allclose(got, value, atol=1e-5):
                    raise Miss(f"At w = {w:g}: {hint}")
        expect_close(got, expected, f"Your guided prediction at w = {w:g}", atol=1e-5,
                     hint="Stack [x_t, x_t] with [labels, null labels], run the network once, split the output into "
                          "eps_cond (first B) and eps_uncond (last B), return cfg_combine(eps_uncond, eps_cond, w).")
    return "the guided prediction equals the package's at w = 3, 7.5, 0 and 1"


def _one_call_stage(guided_step: Callable) -> str:
    """One network call per guided step, on the doubled batch."""
    net = _ToyNet()
    x, y = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        call_learner(guided_step, net, x, torch.tensor(500), y, W_GRADED)
    sizes = [n for n, _ in net.calls]
    if sizes == [8]:
        return "one network call of 2B per step"
    if sizes == [4, 4]:
        raise Miss("Right numbers, but two network calls of B = 4 each: stack the conditional and the "
                   "unconditional inputs into one batch of 2B = 8 (torch.cat) and call the network once, so each "
                   "sampling step runs it once on a larger batch.")
    raise Miss(f"Your guided step called the network with batches {sizes}; call it once, on 2B = 8 inputs.")


def sample_guided(guided_step: Callable, model, labels: torch.Tensor, w: float, steps: int,
                  generator: torch.Generator | None = None, clip_sample: bool = True) -> torch.Tensor:
    """DDIM samples ``(N, C, H, W)`` in [-1, 1] of a class-conditional ``model`` for ``labels (N,)`` at scale w.

    The path of ``model.sample(N, steps, labels=labels, guidance_scale=w, batch_size=N)`` (DDIM,
    eta = 0, the consistent x0 clamp), with each step's noise prediction made by
    ``guided_step(net, x_t, t, labels, w)``: with ``package_guided_eps`` the same numbers.
    """
    net, device = model.denoiser, model.device
    labels = torch.as_tensor(labels).to(device)

    def denoiser(x, t):
        return guided_step(net, x, t.to(device), labels, w).float()

    if clip_sample:
        denoiser = ClampX0(denoiser, model.schedule, model.prediction_type)
    sampler = model.make_sampler("ddim", steps, clip_sample)  # the sampler model.sample would build
    shape = (len(labels), model.config.in_channels, model.config.sample_size, model.config.sample_size)
    return sample_loop(denoiser, sampler, shape, steps, generator=generator, device=device).clamp(-1, 1).cpu()


def _adherence(guided_step: Callable, model, per_class: int, w: float) -> float:
    """The digit classifier's adherence for ``per_class`` samples of each digit at scale ``w`` (seed 0);
    each call of ``guided_step`` under the learner's time limit."""
    wanted = torch.arange(10).repeat_interleave(per_class)  # (10 * per_class,)
    x = sample_guided(lambda *args: call_learner(guided_step, *args), model, wanted, w, SAMPLE_STEPS,
                      torch.Generator().manual_seed(0))
    return metrics.class_adherence(x, wanted)


def _shipped_stage(guided_step: Callable, per_class: int) -> str:
    """Sampling the shipped digits-class with the learner's guided step at w = 3."""
    model = pretrained.load("digits-class")
    with torch.no_grad():
        mine = _adherence(guided_step, model, per_class, W_GRADED)
        package = _adherence(package_guided_eps, model, per_class, W_GRADED)
    what = f"the shipped digits-class at w = {W_GRADED:g} (DDIM-{SAMPLE_STEPS}, {10 * per_class} digits)"
    if mine < SHIPPED_THRESHOLD:
        raise Miss(f"Sampled with your guided step, {what} drew the digit asked for {mine:.0%} of the time "
                   f"(threshold {SHIPPED_THRESHOLD:.0%}; the package's step, same seed: {package:.0%}). Check that "
                   "your step works with a 0-d t (the sampler passes one timestep) and keeps labels and x_t aligned.")
    return f"{what}: {mine:.0%} read as asked with your step (threshold {SHIPPED_THRESHOLD:.0%}; package's, " \
           f"same seed: {package:.0%})"


def _tiny_unet() -> UNet:
    """A fresh TINY_UNET, the same initial weights every time (torch's global generator untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return UNet(TINY_UNET)


def _train_tiny(train_step: Callable, steps: int) -> nn.Module:
    """A fresh TINY_UNET trained ``steps`` steps of batch TINY_BATCH by the learner's step (Adam, seed 0)."""
    images, labels = load_digits()
    net = _tiny_unet()
    opt, g, alphas = torch.optim.Adam(net.parameters(), lr=TINY_LR), torch.Generator().manual_seed(0), _alphas()
    for _ in range(steps):  # the time limit holds for each of the learner's steps
        idx = torch.randint(0, len(images), (TINY_BATCH,), generator=g)  # (batch,)
        call_learner(train_step, net, opt, images[idx], labels[idx], alphas, P_UNCOND, g)
    return net.eval()


def _tiny_stage(train_step: Callable, guided_step: Callable, steps: int) -> str:
    """A tiny class-conditional U-Net trained with the learner's step: guided samples follow their labels."""
    net = _train_tiny(train_step, steps)
    with torch.no_grad():
        moved = max(float((p - q).abs().max()) for p, q in zip(net.parameters(), _tiny_unet().parameters()))
    if moved == 0:
        raise Miss(f"After {steps} training steps the tiny U-Net's weights have not changed: your step must call "
                   "optimizer.zero_grad(), loss.backward() and optimizer.step().")
    model = DiffusionModel(net, get_schedule("cosine"), info={"name": "tiny", "conditioning": "class"})
    with torch.no_grad():
        guided = _adherence(guided_step, model, TINY_PER_CLASS, W_GRADED)
        plain = _adherence(guided_step, model, TINY_PER_CLASS, 0.0)
    if guided < TINY_THRESHOLD:
        raise Miss(f"A tiny U-Net trained {steps} steps with your step draws the digit asked for {guided:.0%} of the "
                   f"time at w = {W_GRADED:g} (threshold {TINY_THRESHOLD:.0%}, chance {CHANCE:.0%}): it learned "
                   "little. Does your step call optimizer.zero_grad(), loss.backward() and optimizer.step()?")
    return (f"a tiny U-Net trained {steps} steps with your step: {guided:.0%} at w = {W_GRADED:g}, {plain:.0%} at "
            f"w = 0 (threshold {TINY_THRESHOLD:.0%}, chance {CHANCE:.0%})")


def check_guidance_build(train_step: Callable, guided_step: Callable, tiny_steps: int = TINY_STEPS,
                         shipped_per_class: int = SHIPPED_PER_CLASS) -> CheckResult:
    """Grade the build: ``train_step(net, optimizer, x0, labels, alphas_cumprod, p_uncond, generator) -> loss``
    and ``guided_step(net, x_t, t, labels, w) -> (B, C, H, W)``; unit stages first, then the outcomes
    (``tiny_steps`` and ``shipped_per_class`` make the outcome runs smaller, for tests)."""
    return grade_build(
        build_guidance(),
        lambda: _dropout_stage(train_step),
        lambda: _loss_stage(train_step),
        lambda: _guided_stage(guided_step),
        lambda: _one_call_stage(guided_step),
        lambda: _shipped_stage(guided_step, shipped_per_class),
        lambda: _tiny_stage(train_step, guided_step, tiny_steps))


# --- Questions -------------------------------------------------------------------------------

W_OPTIONS = [
    "w = 0: the unconditional model; w = 1: the plain conditional model",
    "w = 0: the conditional model; w = 1: the unconditional model",
    "w = 0: pure noise; w = 1: the unconditional model",
    "both give the conditional model; guidance only starts above 1",
]


def w_question():
    return ask_choice(
        "Question A (w = 0 and w = 1)",
        "Before running the sweep: what do guidance scales 0 and 1 give?",
        W_OPTIONS, W_OPTIONS[0],
        explanation="Put w = 0 and w = 1 into eps_uncond + w (eps_cond - eps_uncond): the first leaves "
                    "eps_uncond, the second eps_cond. Only w > 1 extrapolates past the conditional model.",
        hints={W_OPTIONS[1]: "Substitute w = 0 into the formula: which term survives?",
               W_OPTIONS[2]: "The model still denoises at w = 0; it just ignores the label.",
               W_OPTIONS[3]: "Substitute w = 0: the difference term vanishes."})


COST_OPTIONS = [
    "diversity: samples of one class look more and more alike, then saturate",
    "speed: each step needs more forward passes as w grows",
    "nothing: larger w is always better",
    "the label: large w makes the model draw other classes",
]


def cost_question():
    return ask_choice(
        "Question B (what large w costs)",
        "The sweep shows adherence rising with w. What does it cost?",
        COST_OPTIONS, COST_OPTIONS[0],
        explanation="Guidance pushes every sample towards the most typical image of the class: fidelity "
                    "goes up, variety goes down, and at very large w pixels pile up at the ends of the range.",
        hints={COST_OPTIONS[1]: "Two passes per step at any w != 1; the count does not grow with w.",
               COST_OPTIONS[2]: "Look at the diversity and saturation columns of the sweep.",
               COST_OPTIONS[3]: "Look at the adherence column: it does not fall."})
