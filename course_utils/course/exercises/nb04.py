"""Checkers for notebook 04, the U-Net and its training.

Exercises: the bottleneck's shape for a U-Net config, the sinusoidal timestep embedding, and
drawing the training timesteps; a question on what skip connections carry; and the build
exercise: the training step, the EMA and the loop, graded on tiny cases and by a short training
run on the digits (``check_training_loop``; ``package_train_loop`` is its fallback for ``use_build``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ... import config, metrics
from ...data import load_digits
from ...models import UNet, UNetConfig, timestep_embedding, trace_shapes
from ...pipeline import DiffusionModel
from ...schedules import NoiseSchedule, get_schedule
from ...training import TrainConfig, simple_loss, train
from .core import (CORRECT, INCORRECT, NOT_ATTEMPTED, BuildExercise, CheckResult, LearnerTimeout, Miss, _finish,
                   _timeout_message, ask_choice, call_learner, check_cases, expect_seeded, grade_build)

# --- Exercise 1: the bottleneck's shape -------------------------------------------------------

_SHAPE_CONFIGS = [
    (16, 32, (1, 2, 2)),
    (32, 32, (1, 2, 2, 2)),
    (64, 64, (1, 2, 4, 4)),
    (16, 16, (1, 2)),
]


def reference_bottleneck_shape(sample_size: int, base_channels: int, channel_mults: tuple[int, ...]) -> tuple:
    """``(C, H, W)`` of the bottleneck, read off a real forward pass (not a formula)."""
    cfg = UNetConfig(sample_size=sample_size, base_channels=base_channels, channel_mults=tuple(channel_mults),
                     attention_levels=(), num_heads=1)
    x = torch.zeros(1, 1, sample_size, sample_size)
    return next(shape for name, shape in trace_shapes(UNet(cfg), x) if name.startswith("mid."))[1:]


def check_bottleneck_shape(fn: Callable) -> CheckResult:
    """``fn(sample_size, base_channels, channel_mults) -> (C, H, W)`` for several U-Nets."""
    cases = []
    for size, base, mults in _SHAPE_CONFIGS:
        levels = len(mults)
        slips = [((base * mults[-1], size // 2**levels, size // 2**levels),
                  "One halving fewer: there is a downsample between levels, not after the last one."),
                 ((base * sum(mults), size // 2 ** (levels - 1), size // 2 ** (levels - 1)),
                  "Channels are base_channels times the LAST multiplier, not the sum."),
                 ((base, size // 2 ** (levels - 1), size // 2 ** (levels - 1)),
                  "Remember the channel multiplier of the deepest level.")]
        cases.append(((size, base, mults), reference_bottleneck_shape(size, base, mults), slips))
    return check_cases("Exercise 1 (bottleneck shape)", fn, cases, atol=0, rtol=0,
                       hint="Count the downsamplings (levels - 1) and use the deepest level's channels.")


# --- Exercise 2: the sinusoidal embedding -----------------------------------------------------

def check_timestep_embedding(fn: Callable) -> CheckResult:
    """``fn(t, dim) -> (B, dim)``: ``[cos(t f_0..f_{d/2-1}), sin(t f_0..)]``, ``f_i = 10000^(-i/(d/2))``."""
    cases = []
    for t, dim in ((torch.tensor([0, 1, 10, 999]), 8), (torch.arange(0, 1000, 37), 32)):
        ref = timestep_embedding(t, dim)
        half = dim // 2
        sin_first = torch.cat([ref[:, half:], ref[:, :half]], dim=1)
        freqs = torch.exp(-np.log(10000.0) * torch.arange(half) / (half - 1))
        off_by_one = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
        slips = [(sin_first, "The cosines come first, then the sines (the package's order)."),
                 (off_by_one, "The exponent is i / (dim / 2), not i / (dim / 2 - 1).")]
        cases.append(((t, dim), ref, slips))
    return check_cases("Exercise 2 (timestep embedding)", fn, cases, atol=1e-5, rtol=1e-4,
                       hint="freqs = exp(-ln(10000) * i / (dim/2)) for i = 0..dim/2-1; "
                            "return cat([cos(t * freqs), sin(t * freqs)]).")


# --- Exercise 3: drawing timesteps ------------------------------------------------------------

def check_sample_timesteps(fn: Callable, num_timesteps: int = 1000) -> CheckResult:
    """``fn(batch_size, num_timesteps, generator)``: uniform integers in ``[0, T-1]``, as a ``(B,)`` LongTensor."""
    name = "Exercise 3 (sampling timesteps)"
    try:
        t = call_learner(fn, 50000, num_timesteps, torch.Generator().manual_seed(0))
    except NotImplementedError:
        return CheckResult(name, NOT_ATTEMPTED, "Fill in the function above, run its cell, then run this one.")
    except LearnerTimeout:
        return _finish(CheckResult(name, INCORRECT, _timeout_message()))
    except Exception as err:
        return _finish(CheckResult(name, INCORRECT, f"Your code raised {type(err).__name__}: {err}"))
    problems = []
    if not isinstance(t, torch.Tensor) or t.shape != (50000,):
        problems.append(f"return a tensor of shape (batch_size,) = (50000,), got {getattr(t, 'shape', type(t))}")
    elif t.is_floating_point():
        problems.append("timesteps index the schedule, so they must be integers (torch.randint)")
    else:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi > num_timesteps - 1:
            problems.append(f"values must lie in [0, {num_timesteps - 1}] (0-indexed), got [{lo}, {hi}]"
                            + (": the course text's Uniform(1, T) is 1-indexed" if hi == num_timesteps else ""))
        elif lo != 0 or hi != num_timesteps - 1:
            problems.append(f"every timestep 0..{num_timesteps - 1} must be possible; you drew [{lo}, {hi}]")
        else:
            counts = torch.bincount(t, minlength=num_timesteps).reshape(10, -1).sum(1).double()
            expected = 50000 / 10
            chi2 = float(((counts - expected) ** 2 / expected).sum())
            if chi2 > 40:  # 9 degrees of freedom: P(chi2 > 40) < 1e-5 for a uniform draw
                problems.append("the timesteps are not uniform: every t should be equally likely")
    if problems:
        return _finish(CheckResult(name, INCORRECT, problems[0][0].upper() + problems[0][1:] + "."))
    randomness = _seeded_draws(fn, num_timesteps, t)
    if randomness:
        return _finish(CheckResult(name, INCORRECT, randomness))
    return CheckResult(name, CORRECT, "Uniform over every timestep, as the simple loss needs.")


def _seeded_draws(fn: Callable, num_timesteps: int, first: torch.Tensor) -> str | None:
    """What is wrong with how the draws use the generator, if anything: the same seed must give the
    same timesteps, another seed other ones (a generator that is ignored gives neither)."""
    try:
        again = call_learner(fn, 50000, num_timesteps, torch.Generator().manual_seed(0))
        other = call_learner(fn, 50000, num_timesteps, torch.Generator().manual_seed(1))
    except Exception as err:  # it ran once: a second call that fails is a bug of its own
        return f"A second call raised {type(err).__name__}: {err}"
    if not torch.equal(torch.as_tensor(again), first):
        return ("The same seed gave other timesteps: draw from the generator you are given "
                "(torch.randint(..., generator=generator)), not from torch's global one.")
    if torch.equal(torch.as_tensor(other), first):
        return "Seeds 0 and 1 gave the same timesteps: the generator you are given is ignored; draw from it."
    return None


# --- Question: skip connections ---------------------------------------------------------------

def skip_question():
    return ask_choice(
        "Question (skip connections)",
        "The decoder gets each encoder feature map through a skip connection. What does that give it?",
        options=["More parameters, so a better fit",
                 "The fine spatial detail that the 4x4 bottleneck cannot hold",
                 "The timestep information",
                 "Nothing the bottleneck does not already carry"],
        answer="The fine spatial detail that the 4x4 bottleneck cannot hold",
        hints={"More parameters, so a better fit": "Concatenation adds few parameters; think about resolution.",
               "The timestep information": "Every residual block gets the timestep embedding directly.",
               "Nothing the bottleneck does not already carry":
                   "The bottleneck is 4x4: can it say exactly where each stroke of a 16x16 digit is?"},
        explanation="A 16x16 digit squeezed to 4x4 loses where its edges are; the skips hand that detail "
                    "straight to the decoder, which is why outputs without them are blurry.")



# --- Build exercise: the training step and loop -----------------------------------------------
# The learner writes training_step (draws, closed form, eps-MSE, one optimiser update), ema_update
# and train_loop. Unit stages run on a tiny U-Net whose output layer is randomised (the real one
# starts at zero, which would hide the target and the timesteps) with SGD (an update linear in the
# gradient, so a reordered sum cannot flip a sign the way Adam's first step can); the outcome stage
# trains digits-tiny on the digits for a fixed number of steps and scores the EMA model's samples.

OUTCOME_PRESET, OUTCOME_STEPS, OUTCOME_BATCH = "digits-tiny", 100, 32  # a fresh U-Net, a fixed budget
OUTCOME_LR, OUTCOME_DECAY, OUTCOME_SEED = 3e-3, 0.9, 0
SCORE_SAMPLES, SCORE_STEPS = 100, 20  # DDIM-20 samples of the EMA model, scored by digits-FID at N = 100
# Bars, from seeded runs of the solution (2026-12-02, one CPU thread): 100 steps take the loss's last
# tenth to 0.076-0.097 (7x below the first) and digits-FID to 8.9-10.8 over seeds 0-3; a network that
# never learns (no optimizer.step, or an EMA that never moves) scores 27, SGD in place of AdamW 0.27 and 23.
MAX_LAST_LOSS, MIN_LOSS_DROP, MAX_FID = 0.15, 3.0, 16.0

TRAINING_BUILD = BuildExercise(
    "Build (training step and loop)",
    "training_step, ema_update and train_loop: the six steps of the simple loss, one optimiser update, "
    "and an EMA of the weights; the notebook then trains with your loop",
    ("training_step returns the loss and changes the weights; the same generator repeats its draws, another "
     "changes them",
     "its loss equals mean((eps - eps_theta(x_t, t))^2), x_t by the closed form, on a fixed batch with the "
     "generator's t and eps; two calls equal two reference optimiser steps",
     "ema_update gives decay * ema + (1 - decay) * param on a tiny module, in place, outside autograd",
     "train_loop returns (ema_model, losses): one loss per step, an EMA copy that starts from the initial weights "
     "(ema_decay = 1 keeps them, 0 follows the model); the same generator gives the same losses",
     f"outcome: {OUTCOME_STEPS} steps of {OUTCOME_PRESET} on the digits (batch {OUTCOME_BATCH}, lr {OUTCOME_LR:g}, "
     f"EMA decay {OUTCOME_DECAY}): mean loss over the last tenth <= {MAX_LAST_LOSS} and >= {MIN_LOSS_DROP:g}x below "
     f"the first tenth; {SCORE_SAMPLES} DDIM-{SCORE_STEPS} samples of the EMA model score digits-FID "
     f"<= {MAX_FID:g} (the shipped digit classifier's features; real digits score about 1 at this N, uniform "
     "noise near 40)"))


@dataclass
class LoopRun:
    """A scored outcome run: the EMA model, one loss per step, its samples and their digits-FID."""

    ema_model: nn.Module
    losses: list[float]
    samples: torch.Tensor  # (SCORE_SAMPLES, 1, 16, 16)
    fid: float
    seconds: float  # training only
    ema_moved: float  # |ema - init| / |model - init|: how far the EMA followed the training

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def first_loss(self) -> float:
        return float(np.mean(self.losses[: max(1, self.steps // 10)]))

    @property
    def last_loss(self) -> float:
        return float(np.mean(self.losses[-max(1, self.steps // 10):]))


_RUNS: dict = {}  # (loop, steps) -> LoopRun of the latest check, so the notebook does not train twice


def package_train_loop(model: nn.Module, images: torch.Tensor, schedule: NoiseSchedule, steps: int,
                       batch_size: int, lr: float, ema_decay: float,
                       generator: torch.Generator) -> tuple[nn.Module, list[float]]:
    """The package's ``training.train`` behind ``train_loop``'s signature (the fallback of ``use_build``):
    AdamW at ``lr`` with no warm-up, gradient clipping at 1, the EMA; its seed drawn from ``generator``."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=0, ema_decay=ema_decay,
                      log_every=1, seed=seed)
    run = train(model, images, schedule, cfg, device=images.device, progress=False)
    return run.ema_model, [loss for _, loss in run.losses]


def training_run(loop: Callable, steps: int = OUTCOME_STEPS) -> LoopRun:
    """The outcome run of ``loop`` (``train_loop``'s signature): the one the last check made, else a new one."""
    return _RUNS[(loop, steps)] if (loop, steps) in _RUNS else _outcome_run(loop, steps)


def check_training_loop(training_step: Callable, ema_update: Callable, train_loop: Callable,
                        steps: int = OUTCOME_STEPS, compare: bool = True) -> CheckResult:
    """Grade the build: unit stages on tiny cases, then ``steps`` steps of ``train_loop`` on the digits.

    ``compare``: also run the package's loop on the same budget and print what it reaches.
    """
    _RUNS.clear()
    return grade_build(TRAINING_BUILD,
                       lambda: _stage_one_step(training_step),
                       lambda: expect_seeded(lambda g: _step_loss(training_step, *_unit_case(), g), "loss"),
                       lambda: _stage_loss_value(training_step),
                       lambda: _stage_two_steps(training_step),
                       lambda: _stage_device(training_step),
                       lambda: _stage_ema(ema_update),
                       lambda: _stage_loop(train_loop),
                       lambda: _stage_outcome(train_loop, steps, compare))


# Unit cases: a tiny U-Net, 8 images in [-1, 1], a 10-step table of alpha_bar with no order in it
# (so that t and t + 1 give very different x_t), and SGD.

_UNIT_T, _UNIT_B = 10, 8
_STEP_HINT = ("In training_step draw t = torch.randint(0, T, (B,), generator=generator, device=x0.device) first, then "
              "eps = torch.randn(x0.shape, generator=generator, device=x0.device); x_t = sqrt(abar_t) x0 + "
              "sqrt(1 - abar_t) eps; loss = mean((eps - model(x_t, t))^2).")


def _unit_net(seed: int = 0) -> UNet:
    with torch.random.fork_rng(devices=[]):  # the learner's global random state is left as it was
        torch.manual_seed(seed)
        net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_heads=1))
        nn.init.normal_(net.conv_out.weight, std=0.05)  # UNet starts at zero output: every target would look alike
        nn.init.normal_(net.conv_out.bias, std=0.05)
    return net


def _unit_case() -> tuple[UNet, torch.Tensor, torch.Tensor]:
    """``(net, x0 (8, 1, 16, 16), alphas_cumprod (10,))``, the same every call."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.rand(_UNIT_B, 1, 16, 16, generator=g) * 2 - 1
    alphas_cumprod = 0.05 + 0.9 * torch.rand(_UNIT_T, generator=g)
    return _unit_net(), x0, alphas_cumprod


def _flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


def _sgd(net: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=0.1)


def _as_loss(loss) -> float:
    """The learner's loss as a float, or ``Miss``."""
    if loss is None:
        raise Miss("training_step returned None: did you forget `return loss`?")
    if isinstance(loss, torch.Tensor) and loss.numel() != 1:
        raise Miss(f"training_step should return the mean loss, one number; got a tensor of shape {tuple(loss.shape)}.")
    try:
        value = float(loss)
    except (TypeError, ValueError, RuntimeError):
        raise Miss(f"training_step should return the loss (a number or a 0-d tensor), got {type(loss).__name__}.")
    if not np.isfinite(value):
        raise Miss("training_step returned a NaN or infinite loss.")
    return value


def _step_loss(training_step: Callable, net, x0, alphas_cumprod, generator) -> float:
    """One learner step on ``net`` (with SGD), read as a float; 1-indexed timesteps get their hint."""
    try:
        return _as_loss(call_learner(training_step, net, _sgd(net), x0, alphas_cumprod, generator))
    except IndexError as err:
        if "out of bounds" not in str(err):
            raise
        raise Miss(f"Indexing alphas_cumprod failed ({err}): timesteps are 0-indexed, t in 0..T-1, drawn with "
                   "torch.randint(0, T, ...). The course text's Uniform(1, T) counts from 1.") from None


def _draws(x0, alphas_cumprod, seed: int, t_first: bool = True, low: int = 0):
    """The reference draws of a step from a fresh generator: ``t`` then ``eps`` (or the other order)."""
    g = torch.Generator().manual_seed(seed)
    T = len(alphas_cumprod)
    if t_first:
        t = torch.randint(low, T + low, (len(x0),), generator=g)
        return t, torch.randn(x0.shape, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return torch.randint(low, T + low, (len(x0),), generator=g), eps


def _slip_losses(net, x0, alphas_cumprod, seed: int) -> list[tuple[float, str]]:
    """The loss of each known slip on the unit case, with its hint."""
    out = []
    with torch.no_grad():
        t, eps = _draws(x0, alphas_cumprod, seed)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        pred = net(x_t, t)
        out += [(F.mse_loss(pred, x0).item(), "Your loss compares the prediction with x0, but this network predicts "
                 "the noise: the target is eps, the noise you drew."),
                (F.mse_loss(pred, x_t).item(), "Your loss compares the prediction with x_t: the target is eps, the "
                 "noise that was added."),
                (F.mse_loss(net(x0, t), eps).item(), "The network must see the noised x_t, not the clean x0."),
                (((pred - eps) ** 2).sum().item(), "Take the mean of the squared error (F.mse_loss), not its sum."),
                (((pred - eps) ** 2).sum((1, 2, 3)).mean().item(), "Take the mean over every pixel too "
                 "(F.mse_loss), not a per-image sum."),
                (F.mse_loss(net(a * x0 + (1 - a) * eps, t), eps).item(), "The closed form uses square roots: x_t = "
                 "sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.")]
        t2, eps2 = _draws(x0, alphas_cumprod, seed, t_first=False)
        a2 = alphas_cumprod[t2].view(-1, 1, 1, 1)
        out.append((F.mse_loss(net(a2.sqrt() * x0 + (1 - a2).sqrt() * eps2, t2), eps2).item(),
                    "Draw t first, then the noise, both from the generator: the checker replays that order."))
        t1, eps1 = _draws(x0, alphas_cumprod, seed, low=1)
        if int(t1.max()) < len(alphas_cumprod):
            a1 = alphas_cumprod[t1].view(-1, 1, 1, 1)
            out.append((F.mse_loss(net(a1.sqrt() * x0 + (1 - a1).sqrt() * eps1, t1), eps1).item(),
                        "Timesteps are 0-indexed: t in 0..T-1 (torch.randint(0, T, ...)), not the course text's 1..T."))
    return out


def _stage_one_step(training_step: Callable) -> None:
    net, x0, alphas_cumprod = _unit_case()
    before = _flat(net)
    _step_loss(training_step, net, x0, alphas_cumprod, torch.Generator().manual_seed(0))
    if torch.equal(_flat(net), before):
        no_grads = all(p.grad is None or not p.grad.any() for p in net.parameters())
        raise Miss("One call of training_step left the weights unchanged"
                   + (" and no gradient reached them" if no_grads else "") + ": after the loss, call "
                   "optimizer.zero_grad(), loss.backward(), then optimizer.step(). Is optimizer.step() missing, or "
                   "zero_grad() placed between backward() and step()?")


def _stage_loss_value(training_step: Callable) -> None:
    net, x0, alphas_cumprod = _unit_case()
    reference = copy.deepcopy(net)
    got = _step_loss(training_step, net, x0, alphas_cumprod, torch.Generator().manual_seed(3))
    t, eps = _draws(x0, alphas_cumprod, 3)
    with torch.no_grad():
        expected = simple_loss(reference, x0, t, eps, alphas_cumprod).item()
    if np.isclose(got, expected, rtol=1e-4, atol=1e-6):
        return
    for value, hint in _slip_losses(reference, x0, alphas_cumprod, 3):
        if np.isclose(got, value, rtol=1e-4, atol=1e-6):
            raise Miss(f"The loss of one step is {got:.5f}, the reference {expected:.5f}. {hint}")
    raise Miss(f"The loss of one step is {got:.5f}, the reference {expected:.5f}. {_STEP_HINT} Return that loss, "
               "computed before optimizer.step().")


def _reference_steps(net, x0, alphas_cumprod, seed: int, n: int, zero_grad: bool = True) -> torch.Tensor:
    """The weights after ``n`` reference SGD steps drawn from one generator (without ``zero_grad``: accumulated)."""
    net = copy.deepcopy(net)
    opt, g = _sgd(net), torch.Generator().manual_seed(seed)
    for _ in range(n):
        t = torch.randint(0, len(alphas_cumprod), (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        loss = simple_loss(net, x0, t, eps, alphas_cumprod)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
    return _flat(net)


def _stage_two_steps(training_step: Callable) -> None:
    net, x0, alphas_cumprod = _unit_case()
    start = copy.deepcopy(net)
    opt, g = _sgd(net), torch.Generator().manual_seed(5)
    for _ in range(2):
        _as_loss(call_learner(training_step, net, opt, x0, alphas_cumprod, g))
    got = _flat(net)
    if torch.allclose(got, _reference_steps(start, x0, alphas_cumprod, 5, 2), rtol=1e-4, atol=1e-5):
        return
    if torch.allclose(got, _reference_steps(start, x0, alphas_cumprod, 5, 2, zero_grad=False), rtol=1e-4, atol=1e-5):
        raise Miss("The second step used the first step's gradients too: backward() adds to .grad, so call "
                   "optimizer.zero_grad() before loss.backward() in every step.")
    raise Miss("Two calls of training_step did not give two steps of the optimizer you are given: one "
               "optimizer.zero_grad(), one loss.backward() and one optimizer.step() per call, on that optimizer.")


def _stage_device(training_step: Callable) -> None:
    """Where the notebook trains on a GPU: one step there, with a generator on that device."""
    device = config.get_device()
    if device.type == "cpu":
        return
    net, x0, alphas_cumprod = _unit_case()
    net = net.to(device)
    try:
        _as_loss(call_learner(training_step, net, _sgd(net), x0.to(device), alphas_cumprod.to(device),
                              torch.Generator(device=device).manual_seed(0)))
    except RuntimeError as err:
        raise Miss(f"On {device.type} your step raised: {str(err).splitlines()[0][:150]}. Draw on the data's device: "
                   "torch.randint(..., generator=generator, device=x0.device), torch.randn(x0.shape, "
                   "generator=generator, device=x0.device).") from None


def _stage_ema(ema_update: Callable) -> None:
    g = torch.Generator().manual_seed(11)
    model = nn.Linear(3, 2)
    ema = copy.deepcopy(model)  # its parameters require gradients, as a copy of a training model's do
    with torch.no_grad():
        for p, e in zip(model.parameters(), ema.parameters()):
            p.copy_(torch.randn(p.shape, generator=g))
            e.copy_(torch.randn(e.shape, generator=g))
            p.grad = torch.randn(p.shape, generator=g)
    p0, e0 = _flat(model), _flat(ema)
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    decay = 0.75
    try:
        call_learner(ema_update, ema, model, decay)
    except RuntimeError as err:
        if "requires grad" in str(err) or "in-place" in str(err):
            raise Miss("Updating the EMA raised an autograd error: wrap the update in `with torch.no_grad():` "
                       "(the EMA is bookkeeping, not part of the graph).") from None
        raise
    if not torch.equal(_flat(model), p0):
        raise Miss("ema_update changed the model's weights: it takes (ema_model, model, decay) and updates only the "
                   "first.")
    if any(e.grad_fn is not None for e in ema.parameters()):
        raise Miss("The EMA weights are tracked by autograd (they have a grad_fn): do the update under "
                   "`with torch.no_grad():`, in place.")
    expected = decay * e0 + (1 - decay) * p0
    slips = [((1 - decay) * e0 + decay * p0, "decay and 1 - decay are swapped: the EMA keeps `decay` of its own "
              "value and takes only `1 - decay` of the new weights."),
             (decay * e0 + (1 - decay) * grads, "The EMA averages the weights (param), not their gradients (.grad)."),
             (e0, "The EMA weights did not change: update them in place (e.mul_(decay).add_(p, alpha=1 - decay), or "
              "e.copy_(...)); rebinding a loop variable changes nothing."),
             (p0, "The EMA became a copy of the weights: average them, decay * ema + (1 - decay) * param.")]
    got = _flat(ema)
    if torch.allclose(got, expected, atol=1e-6):
        return
    hint = next((h for v, h in slips if torch.allclose(got, v, atol=1e-6)),
                "Each EMA parameter becomes decay * ema + (1 - decay) * param, for every parameter, in place.")
    raise Miss(f"ema_update(ema_model, model, decay={decay}) gave the wrong EMA. {hint}")


def _loop_case(train_loop: Callable, decay: float, steps: int = 3, generator=None):
    """``train_loop`` on the tiny U-Net: ``(net, init weights, ema_model, losses)``, the return value checked."""
    net = _unit_net(1)
    init = _flat(net)
    images = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    generator = generator if generator is not None else torch.Generator().manual_seed(4)
    try:
        out = call_learner(train_loop, net, images, _unit_schedule(), steps, 4, 1e-3, decay, generator)
    except RuntimeError as err:
        if "Double" in str(err) or "double" in str(err):
            raise Miss(f"Your loop raised a dtype error ({str(err).splitlines()[0][:100]}): the schedule is float64; "
                       "pass training_step schedule.alphas_cumprod.float() (cast once, before the loop).") from None
        raise
    if out is None:
        raise Miss("train_loop returned None: did you forget `return ema_model, losses`?")
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise Miss(f"train_loop should return a pair (ema_model, losses), got {type(out).__name__}.")
    ema, losses = out
    if not isinstance(ema, nn.Module):
        raise Miss("The first thing train_loop returns should be the EMA model (an nn.Module), got "
                   f"{type(ema).__name__}.")
    try:
        losses = [float(v) for v in losses]
    except (TypeError, ValueError, RuntimeError):
        raise Miss("losses should be a list of numbers, one per step (training_step's loss).") from None
    if len(losses) != steps:
        raise Miss(f"train_loop ran {steps} steps but returned {len(losses)} losses: append one per step.")
    return net, init, ema, losses


def _unit_schedule() -> NoiseSchedule:
    return get_schedule("cosine", num_timesteps=50)


def _stage_loop(train_loop: Callable) -> None:
    net, init, ema, _ = _loop_case(train_loop, 0.0)
    if ema is net:
        raise Miss("train_loop returned the model itself as the EMA: make a separate copy (copy.deepcopy(model)) "
                   "before the first step, and average into it.")
    if torch.equal(_flat(net), init):
        raise Miss("train_loop left the model's weights unchanged: call training_step on it once per step.")
    follows = torch.allclose(_flat(ema), _flat(net), atol=1e-6)
    if not follows:
        raise Miss("With ema_decay = 0 the EMA must equal the model after the last step"
                   + (", but yours still holds the initial weights: call ema_update(ema_model, model, ema_decay) "
                      "after every training_step" if torch.equal(_flat(ema), init) else
                      ": call ema_update(ema_model, model, ema_decay) after each training_step, with the decay you "
                      "are given") + ".")
    net, init, ema, _ = _loop_case(train_loop, 1.0)
    if not torch.equal(_flat(ema), init):
        raise Miss("With ema_decay = 1 the EMA must keep the initial weights: copy the model before the first step "
                   "(not after training) and use the ema_decay you are given.")
    unit_net = _unit_net(1)
    images = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def losses(g):
        out = call_learner(train_loop, copy.deepcopy(unit_net), images, _unit_schedule(), 2, 4, 1e-3, 0.5, g)
        return [float(v) for v in out[1]]

    expect_seeded(losses, "losses from train_loop (its batches, t and noise)")


@lru_cache(maxsize=1)
def _fid_scale() -> tuple[float, float]:
    """digits-FID at N = SCORE_SAMPLES of real digits (half B) and of uniform noise: the ends of the scale."""
    real = metrics.digits_fid(metrics.reference_split()[1][:SCORE_SAMPLES], require_n=False)
    noise = torch.rand(SCORE_SAMPLES, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return real, metrics.digits_fid(noise, require_n=False)


def _outcome_run(loop: Callable, steps: int) -> LoopRun:
    """``steps`` seeded steps of ``loop`` on the digits from a fresh digits-tiny; its EMA model's samples scored."""
    images, _ = load_digits()
    schedule = get_schedule("cosine")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(OUTCOME_SEED)
        model = UNet(OUTCOME_PRESET)
    init = _flat(model)
    start = time.perf_counter()
    # The learner's loop runs under the checker's time limit; the package's (the notebook's fallback while the
    # build is unsolved) is not the learner's code, and on a busy machine may take longer than the limit.
    run_loop = loop if loop is package_train_loop else partial(call_learner, loop)
    ema, losses = run_loop(model, images, schedule, steps, OUTCOME_BATCH, OUTCOME_LR, OUTCOME_DECAY,
                           torch.Generator().manual_seed(OUTCOME_SEED))
    seconds = time.perf_counter() - start
    moved = float((_flat(ema) - init).norm() / (_flat(model) - init).norm().clamp_min(1e-12))
    samples = DiffusionModel(ema, schedule).sample(SCORE_SAMPLES, steps=SCORE_STEPS, sampler="ddim",
                                                   generator=torch.Generator().manual_seed(0))
    fid = metrics.digits_fid(samples, require_n=False)
    run = LoopRun(ema, [float(v) for v in losses], samples, fid, seconds, moved)
    _RUNS[(loop, steps)] = run
    return run


def _stage_outcome(train_loop: Callable, steps: int, compare: bool) -> str:
    run = _outcome_run(train_loop, steps)
    curve = f"{run.first_loss:.3f} -> {run.last_loss:.3f}"
    if not (run.last_loss <= MAX_LAST_LOSS and run.first_loss >= MIN_LOSS_DROP * run.last_loss):
        raise Miss(f"After {steps} steps your loss went {curve} (means of the first and last tenth; the bar: last "
                   f"tenth <= {MAX_LAST_LOSS} and >= {MIN_LOSS_DROP:g}x below the first). The network is barely "
                   "learning: build the optimizer once, before the loop, as torch.optim.AdamW(model.parameters(), "
                   "lr=lr), and step it in every training_step.")
    real, noise = _fid_scale()
    if run.fid > MAX_FID:
        raise Miss(f"Your loss fell ({curve}), but {SCORE_SAMPLES} samples of the EMA model you return score "
                   f"digits-FID {run.fid:.1f} (bar <= {MAX_FID:g}; real digits {real:.1f}, noise {noise:.0f}). Your "
                   f"EMA moved {run.ema_moved:.0%} of the way from the initial to the trained weights: call "
                   "ema_update(ema_model, model, ema_decay) after every training_step, and return that EMA copy.")
    note = (f"{steps} steps of your loop: loss {curve} (bar: <= {MAX_LAST_LOSS}, >= {MIN_LOSS_DROP:g}x drop), "
            f"digits-FID of {SCORE_SAMPLES} DDIM-{SCORE_STEPS} samples of its EMA model {run.fid:.1f} (bar <= "
            f"{MAX_FID:g}; real digits {real:.1f}, noise {noise:.0f}), {run.seconds:.0f} s of training")
    if compare:
        ref = _outcome_run(package_train_loop, steps)
        note += (f". The package's train() on the same budget: loss {ref.first_loss:.3f} -> {ref.last_loss:.3f}, "
                 f"digits-FID {ref.fid:.1f}, {ref.seconds:.0f} s")
    return note
