"""Checkers for notebook 04, the U-Net and its training.

Exercises: the bottleneck's shape for a U-Net config, the sinusoidal timestep embedding, and
drawing the training timesteps; plus a question on what skip connections carry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...models import UNet, UNetConfig, timestep_embedding, trace_shapes
from .core import (CORRECT, INCORRECT, NOT_ATTEMPTED, CheckResult, LearnerTimeout, _finish, _timeout_message,
                   ask_choice, call_learner, check_cases)

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

