"""Checkers for notebook 02, the forward process.

Each ``check_*`` function takes the learner's function, runs it on a few cases, computes the
reference with the package (``forward_step``, ``q_sample``, ``get_schedule``) and returns a
``CheckResult``. The two ``*_question`` functions return question widgets.

Timesteps are 0-indexed, as everywhere in ``course_utils``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...forward import forward_step, q_sample
from ...schedules import SCHEDULE_NAMES, get_schedule
from .core import CheckResult, ask_choice, ask_number, call_learner, check_values, run_check

# The course text's hand-worked step: x0 = [0.8, -0.3], beta = 0.02, noise = [0.5, -0.7] -> [0.863, -0.396].
SEED_X0 = (0.8, -0.3)
SEED_BETA = 0.02
SEED_NOISE = (0.5, -0.7)


def _check(exercise: str, attempt: Callable[[], Any], expected: Any, diagnose: Callable[[Any], str],
           **kwargs) -> CheckResult:
    """``run_check`` with a hint picked from the learner's answer by ``diagnose(got)``."""
    try:
        got = call_learner(attempt)
    except Exception as err:  # not attempted, timed out or raised: run_check reports each (without a rerun)
        def again(err=err):
            raise err
        return run_check(exercise, again, expected, **kwargs)
    try:
        hint = diagnose(got)
    except Exception:  # an answer of the wrong shape or type: check_values explains that
        hint = ""
    return check_values(exercise, got, expected, hint=hint, **kwargs)


def _close(a: Any, b: torch.Tensor, atol: float = 1e-5) -> bool:
    a = torch.as_tensor(a, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b.double(), atol=atol, rtol=1e-5))


# --------------------------------------------------------------------------------------------
# Exercise: one step of the chain
# --------------------------------------------------------------------------------------------

def _step_cases():
    g = torch.Generator().manual_seed(2)
    big = (torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1,
           0.3, torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64))
    seed = (torch.tensor(SEED_X0, dtype=torch.float64), SEED_BETA, torch.tensor(SEED_NOISE, dtype=torch.float64))
    return [seed, big]


def check_one_step(fn: Callable) -> CheckResult:
    """``fn(x_prev, beta_t, noise)`` must return ``sqrt(1 - beta_t) * x_prev + sqrt(beta_t) * noise``.

    Checked on the course text's two-pixel example and on a batch of 8x8 images with ``beta_t = 0.3``
    (a large beta, so that every coefficient matters).
    """
    name = "Exercise 1 (one step of the chain)"
    cases = _step_cases()

    def attempt():
        return torch.cat([torch.as_tensor(fn(x.clone(), b, e.clone()), dtype=torch.float64).reshape(-1)
                          for x, b, e in cases])

    expected = torch.cat([forward_step(x, b, e).reshape(-1) for x, b, e in cases])
    wrong = {
        "The noise is scaled by beta_t itself; scale it by its square root, sqrt(beta_t), so that its "
        "variance is beta_t (the course text's prose says 'scaled by beta', but its worked example uses sqrt(0.02) = 0.1414).":
            lambda x, b, e: (1 - b) ** 0.5 * x + b * e,
        "The image is multiplied by (1 - beta_t); use its square root, sqrt(1 - beta_t).":
            lambda x, b, e: (1 - b) * x + b**0.5 * e,
        "The image must shrink before the noise is added: multiply x_prev by sqrt(1 - beta_t).":
            lambda x, b, e: x + b**0.5 * e,
        "The two coefficients are swapped: the image gets sqrt(1 - beta_t), the noise sqrt(beta_t).":
            lambda x, b, e: b**0.5 * x + (1 - b) ** 0.5 * e,
    }

    def diagnose(got):
        for hint, formula in wrong.items():
            if _close(got, torch.cat([formula(x, b, e).reshape(-1) for x, b, e in cases])):
                return hint
        return ("x_t = sqrt(1 - beta_t) * x_prev + sqrt(beta_t) * noise. On the course text's example the answer is "
                "[0.863, -0.396].")

    return _check(name, attempt, expected, diagnose, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Exercise: the first timestep with alpha_bar below a threshold (the course text's Exercise 1)
# --------------------------------------------------------------------------------------------

def _below_cases() -> list[tuple[torch.Tensor, float]]:
    toy = torch.tensor([0.9, 0.5, 0.2, 0.05], dtype=torch.float64)  # 0.5 is not below 0.5: answer 2
    return [(get_schedule("linear").alphas_cumprod, 0.01), (get_schedule("cosine").alphas_cumprod, 0.01),
            (get_schedule("scaled_linear").alphas_cumprod, 0.5), (toy, 0.5)]


def _first_below(alphas_cumprod: torch.Tensor, threshold: float) -> int:
    below = torch.nonzero(alphas_cumprod < threshold)
    if below.numel() == 0:
        raise ValueError(f"no timestep has alpha_bar below {threshold}.")
    return int(below[0])


def check_first_step_below(fn: Callable) -> CheckResult:
    """``fn(alphas_cumprod, threshold)`` must return the first 0-indexed ``t`` with ``alphas_cumprod[t] < threshold``.

    Checked on the linear schedule at 0.01 (answer 673), the cosine one at 0.01, the scaled-linear
    one at 0.5, and a four-step toy array where one value equals the threshold.
    """
    name = "Exercise 3 (when is the signal gone?)"
    cases = _below_cases()

    def attempt():
        return [int(fn(a.clone(), th)) for a, th in cases]

    expected = [_first_below(a, th) for a, th in cases]
    at_or_below = [int(torch.nonzero(a <= th)[0]) for a, th in cases]

    def diagnose(got):
        got = [int(g) for g in got]
        if got == [e + 1 for e in expected]:
            return ("Each answer is one too high: that is the 1-indexed step number. Return the array index t, "
                    "which counts from 0 (t = 0 is the first step).")
        if got == [e - 1 for e in expected]:
            return "Each answer is one too low: return the first t that is below the threshold, not the last one above it."
        if got == at_or_below:
            return "'Below' is strict: a value equal to the threshold (the toy case [0.9, 0.5, ...] at 0.5) does not count."
        return ("Walk through alphas_cumprod from index 0 and return the first index whose value is < threshold "
                "(torch.nonzero or argmax on a boolean tensor can do it in one line).")

    return _check(name, attempt, expected, diagnose, atol=0.0, rtol=0.0)


# --------------------------------------------------------------------------------------------
# Exercise: the closed form
# --------------------------------------------------------------------------------------------

def _closed_form_cases():
    g = torch.Generator().manual_seed(3)
    cases = []
    for name, t in (("linear", 0), ("linear", 1), ("linear", 250), ("cosine", 500), ("linear", 673),
                    ("scaled_linear", 999)):
        x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
        noise = torch.randn(3, 1, 8, 8, generator=g)
        cases.append((x0, t, noise, get_schedule(name)))
    return cases


def check_closed_form(fn: Callable) -> CheckResult:
    """``fn(x0, t, noise, alphas_cumprod)`` must equal ``q_sample(x0, t, noise, schedule)``.

    Checked at several 0-indexed timesteps (0, 1, 250, 500, 673, 999) of the three schedules.
    """
    name = "Exercise 4 (the closed form)"
    cases = _closed_form_cases()

    def attempt():
        return torch.cat([torch.as_tensor(fn(x0.clone(), t, e.clone(), s.alphas_cumprod.clone()),
                                          dtype=torch.float64).reshape(-1) for x0, t, e, s in cases])

    expected = torch.cat([q_sample(x0, t, e, s).double().reshape(-1) for x0, t, e, s in cases])

    def closed(a_of: Callable, sqrt_a: bool = True):
        parts = []
        for x0, t, e, s in cases:
            a = a_of(s.alphas_cumprod, s.betas, t)
            signal = a.sqrt() if sqrt_a else a
            parts.append((signal * x0.double() + (1 - a).sqrt() * e.double()).reshape(-1))
        return torch.cat(parts)

    wrong = {
        "You used alpha_bar at t - 1: index t of alphas_cumprod already is timestep t (0-indexed).":
            closed(lambda ab, b, t: ab[t - 1]),  # at t = 0 this wraps to ab[-1], as the learner's code would
        "You used alpha_bar at t + 1: index t of alphas_cumprod already is timestep t (0-indexed).":
            closed(lambda ab, b, t: ab[min(t + 1, len(ab) - 1)]),
        "The clean image is multiplied by alpha_bar_t; use its square root, sqrt(alpha_bar_t).":
            closed(lambda ab, b, t: ab[t], sqrt_a=False),
        "You used the one-step alpha_t = 1 - beta_t; the closed form needs the product alpha_bar_t = alphas_cumprod[t].":
            closed(lambda ab, b, t: 1 - b[t]),
    }

    def diagnose(got):
        for hint, values in wrong.items():
            if _close(got, values, atol=1e-4):
                return hint
        return "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, with alpha_bar_t = alphas_cumprod[t]."

    return _check(name, attempt, expected, diagnose, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Question widgets
# --------------------------------------------------------------------------------------------

def signal_question(t: int = 500):
    """Which schedule keeps the most signal (the largest ``alpha_bar_t``) at timestep ``t``?"""
    values = {n: float(get_schedule(n).alphas_cumprod[t]) for n in SCHEDULE_NAMES}
    best = max(values, key=values.get)
    listed = ", ".join(f"{n} {v:.3f}" for n, v in values.items())
    others = {n: (f"At t = {t} the {n} schedule has alpha_bar = {values[n]:.3f}; another curve in the left "
                  f"panel is higher there. Read each curve at t = {t}.") for n in values if n != best}
    others["they are all equal"] = ("They share T = 1000 and all end near 0, but their curves differ in between: "
                                    f"read the left panel at t = {t}.")
    return ask_choice(
        "Exercise 2 (which schedule keeps the most signal?)",
        f"At timestep t = {t}, which schedule keeps the most signal (the largest alpha_bar_t)?",
        options=[*SCHEDULE_NAMES, "they are all equal"], answer=best, hints=others,
        explanation=f"alpha_bar_{t}: {listed}. The {best} schedule destroys the image more slowly in the middle.")


def snr_question(schedule: str = "cosine", tolerance: int = 10):
    """Roughly where does SNR cross 1 (``alpha_bar_t`` falls below 0.5) under ``schedule``?"""
    t_cross = _first_below(get_schedule(schedule).alphas_cumprod, 0.5)
    return ask_number(
        "Exercise 5 (where signal and noise are equal)",
        f"With the {schedule} schedule in the explorer, find the first timestep t at which the SNR drops below 1 "
        f"(within ±{tolerance}).",
        expected=t_cross, atol=tolerance,
        hint=(f"SNR = alpha_bar / (1 - alpha_bar) equals 1 where alpha_bar = 0.5. Choose '{schedule}' in the "
              "dropdown and move the slider until the SNR readout passes 1; the answer is between 0 and 999."))


__all__ = ["check_closed_form", "check_first_step_below", "check_one_step", "signal_question", "snr_question"]
