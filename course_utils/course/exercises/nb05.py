"""Checkers for notebook 05, guidance.

Exercises: the classifier-free guidance combination, label dropout for training, and two
questions on what ``w = 0`` and ``w = 1`` give and on what large ``w`` costs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...guidance import guide
from .core import (CORRECT, INCORRECT, NOT_ATTEMPTED, CheckResult, LearnerTimeout, _finish, _timeout_message,
                   ask_choice, call_learner, check_cases)

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
