"""Checkers for notebook 02, the forward process.

Each ``check_*`` function takes the learner's function, runs it on a few cases, computes the
reference with the package (``forward_step``, ``q_sample``, ``get_schedule``) and returns a
``CheckResult``. The two ``*_question`` functions return question widgets.

The notebook's build, ``NOISE_BATCH_BUILD``, is the piece training and the explorer use: a batch of
images noised at a batch of timesteps, one per image, with noise drawn from a given generator
(``noise_batch`` is the package's version, ``check_noise_batch`` grades the learner's). Once it is
correct the notebook's ``ForwardExplorer`` runs on it.

Timesteps are 0-indexed, as everywhere in ``course_utils``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...data import load_digits
from ...forward import forward_step, q_sample
from ...schedules import SCHEDULE_NAMES, NoiseSchedule, get_schedule
from .core import (BuildExercise, CheckResult, LearnerTimeout, Miss, ask_choice, ask_number, call_learner,
                   check_values, expect_close, expect_seeded, grade_build, run_check)

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
# Build: a batch of images noised at a batch of timesteps (the piece training and the explorer use)
# --------------------------------------------------------------------------------------------

NOISE_BATCH_BUILD = BuildExercise(
    "Build 1 (noise a batch at a batch of timesteps)",
    "write my_noise_batch(x0, t, schedule, generator) -> (x_t, noise): image x0[i] noised to its own timestep "
    "t[i] by the closed form, with standard Gaussian noise drawn from generator; the explorer below then runs on it.",
    ("unit cases against the package's q_sample, with the noise you return: (16, 1, 16, 16) and (5, 3, 32, 32) "
     "batches of mixed timesteps, t = 0 and t = T - 1 among them, under all three schedules",
     "the noise: standard Gaussian, its own draw for every image, from the generator you are given (the same "
     "seed repeats it, another seed does not, torch's global generator is left alone)",
     "the outcome: 256 real digits noised at t = 0, 250, 500, 750 and 999 in one batch (cosine schedule); at each "
     "t the mean and variance must match sqrt(alpha_bar_t) E[x0] and alpha_bar_t Var(x0) + 1 - alpha_bar_t, and "
     "the measured signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t)"),
)

BATCH_HINT = ("x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, with alpha_bar_t = "
              "schedule.alphas_cumprod[t] reshaped to (B, 1, 1, 1), so that image i gets its own timestep t[i]; "
              "return (x_t, noise) with the noise you added.")


def noise_batch(x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's version of the build: ``(x_t, noise)`` for ``(B, C, H, W)`` images ``x0`` and ``(B,)``
    timesteps ``t``, the noise drawn from ``generator`` (``q_sample`` does the closed form)."""
    device = generator.device if generator is not None else x0.device
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=device).to(x0.device)
    return q_sample(x0, t, noise, schedule), noise


def _unpack(out: Any, x0: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The learner's ``(x_t, noise)`` as float64 tensors of ``x0``'s shape, or a ``Miss`` saying what came."""
    if isinstance(out, torch.Tensor):
        raise Miss(f"my_noise_batch returned one tensor {where}; return two, (x_t, noise): the noised images and "
                   "the noise you added (training needs that noise: it is what the network learns to predict).")
    if out is None:
        raise Miss(f"my_noise_batch returned None {where}: did you forget `return x_t, noise`?")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Miss(f"my_noise_batch must return a pair (x_t, noise); {where} it returned "
                   f"{type(out).__name__}{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.")
    pair = []
    for value, name in zip(out, ("x_t", "noise")):
        if value is None:
            raise Miss(f"The {name} you returned {where} is None.")
        if not isinstance(value, torch.Tensor):
            raise Miss(f"The {name} you returned {where} is a {type(value).__name__}; return torch tensors.")
        if value.is_complex():
            raise Miss(f"The {name} you returned {where} has complex numbers: a square root of a negative number?")
        if tuple(value.shape) != tuple(x0.shape):
            raise Miss(f"The {name} you returned {where} has shape {tuple(value.shape)}; it must have x0's shape "
                       f"{tuple(x0.shape)}.")
        value = value.detach().cpu().double()
        if not torch.isfinite(value).all():
            raise Miss(f"The {name} you returned {where} contains NaN or inf.")
        pair.append(value)
    return pair[0], pair[1]


def _error_hint(err: Exception) -> str:
    """A hint for the errors that the classic slips of this build raise."""
    text = str(err)
    if "must match the size of tensor" in text:
        return ("alphas_cumprod[t] has shape (B,), which does not broadcast against (B, C, H, W) images: reshape it "
                "to (B, 1, 1, 1) first (.view(-1, 1, 1, 1) or [:, None, None, None]).")
    if "converted to Scalar" in text or "only one element tensors" in text or "only integer tensors of a single" in text:
        return ("t is a (B,) tensor, one timestep per image, not one int: index alphas_cumprod with the whole "
                "tensor t.")
    if "out of bounds" in text or "out of range" in text:
        return ("An index ran past the end: t already runs from 0 to T - 1, so index alphas_cumprod with t itself "
                "(not t + 1).")
    return ""


def _run(fn: Callable, x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator,
         where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the learner's build under the time limit, on copies of its inputs."""
    try:
        out = call_learner(fn, x0.clone(), t.clone(), schedule, generator)
    except (NotImplementedError, LearnerTimeout):
        raise
    except Exception as err:  # a known slip's error gets its hint; grade_build reports any other
        hint = _error_hint(err)
        if not hint:
            raise
        raise Miss(f"Your code raised {type(err).__name__} {where}: {err}. {hint}") from err
    return _unpack(out, x0, where)


def _batch_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, NoiseSchedule]]:
    """``(label, x0, t, schedule)``: 16 = W digits first, so that broadcasting over the width gives numbers."""
    g = torch.Generator().manual_seed(31)
    digits = torch.rand(16, 1, 16, 16, generator=g) * 2 - 1
    t_digits = torch.tensor([0, 999, 1, 500, 250, 998, 10, 673, 0, 100, 999, 42, 750, 300, 5, 900])
    shapes = torch.rand(5, 3, 32, 32, generator=g) * 2 - 1
    return [("on (16, 1, 16, 16) digits, linear schedule", digits, t_digits, get_schedule("linear")),
            ("on (5, 3, 32, 32) shapes, cosine schedule", shapes, torch.tensor([999, 0, 500, 1, 250]),
             get_schedule("cosine")),
            ("on (4, 1, 16, 16) digits, scaled-linear schedule", digits[:4], torch.tensor([999, 998, 0, 1]),
             get_schedule("scaled_linear"))]


def _batch_slips(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule):
    """``(what the slip gives, its hint)`` for the classic slips, with the learner's own noise."""
    x0 = x0.double()
    ab, T = schedule.alphas_cumprod, schedule.num_timesteps

    def closed(signal, noise_coef):
        return signal * x0 + noise_coef * noise

    col = lambda v: v.view(-1, 1, 1, 1)  # noqa: E731
    a = col(ab[t])
    slips = [
        (closed(col(schedule.alphas[t]).sqrt(), (1 - col(schedule.alphas[t])).sqrt()),
         "You used schedule.alphas[t], the one-step alpha_t = 1 - beta_t. The closed form jumps over steps 0..t at "
         "once: it needs their product, alpha_bar_t = schedule.alphas_cumprod[t]."),
        (closed(a, 1 - a),
         "The coefficients are the square roots: sqrt(alpha_bar_t) for the image and sqrt(1 - alpha_bar_t) for the "
         "noise (alpha_bar_t and 1 - alpha_bar_t are variances; the coefficients are standard deviations)."),
        (closed(a, (1 - a).sqrt()),
         "The image is multiplied by alpha_bar_t; use its square root, sqrt(alpha_bar_t)."),
        (closed(a.sqrt(), 1 - a),
         "The noise is multiplied by 1 - alpha_bar_t; use its square root, sqrt(1 - alpha_bar_t)."),
        (closed((1 - a).sqrt(), a.sqrt()),
         "The two coefficients are swapped: the image gets sqrt(alpha_bar_t), the noise sqrt(1 - alpha_bar_t)."),
    ]
    for i in (0, -1):
        one = ab[t[i]]
        slips.append((closed(one.sqrt(), (1 - one).sqrt()),
                      f"Every image got the timestep of {'the first' if i == 0 else 'the last'} image, t[{i}]: t holds "
                      "one timestep per image. Index alphas_cumprod with the whole tensor t, then reshape the (B,) "
                      "result to (B, 1, 1, 1)."))
    for earlier in ((t - 1) % T, (t - 1).clamp(min=0)):  # t - 1 at t = 0 wraps to the last index, or is clamped
        b = col(ab[earlier])
        slips.append((closed(b.sqrt(), (1 - b).sqrt()),
                      "You used alpha_bar at t - 1, as if t counted from 1. Here t counts from 0: index t of "
                      "alphas_cumprod already is timestep t (t = 0 is the first step, t = T - 1 the last)."))
    if x0.shape[0] == x0.shape[-1]:  # a (B,) coefficient broadcast over the width, when B == W
        w = ab[t].view(1, 1, 1, -1)
        slips.append((closed(w.sqrt(), (1 - w).sqrt()),
                      "alphas_cumprod[t] has shape (B,): multiplied with (B, C, H, W) images it lines up with the last "
                      "axis, the width, not with the batch. Reshape it to (B, 1, 1, 1) first (.view(-1, 1, 1, 1))."))
    return slips


def _stage_cases(fn: Callable) -> Callable[[], str]:
    def stage():
        cases = _batch_cases()
        for where, x0, t, schedule in cases:
            x_t, noise = _run(fn, x0, t, schedule, torch.Generator().manual_seed(0), where)
            expected = q_sample(x0.double(), t, noise, schedule)
            hint = next((h for value, h in _batch_slips(x0, t, noise, schedule)
                         if torch.allclose(x_t, value, atol=1e-4, rtol=1e-4)), BATCH_HINT)
            expect_close(x_t, expected, f"x_t {where}", hint, atol=1e-5, rtol=1e-5)
        return f"{len(cases)} batches of mixed timesteps match q_sample"
    return stage


def _stage_noise(fn: Callable) -> Callable[[], str]:
    def stage():
        x0 = torch.zeros(64, 3, 32, 32)
        t = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1))
        schedule = get_schedule("linear")
        expect_seeded(lambda g: _unpack(fn(x0.clone(), t.clone(), schedule, g), x0, "for a (64, 3, 32, 32) batch")[1],
                      "noise")
        noise = _run(fn, x0, t, schedule, torch.Generator().manual_seed(0), "for a (64, 3, 32, 32) batch")[1]
        mean, std = float(noise.mean()), float(noise.std())
        if abs(mean - 0.5) < 0.02 and abs(std - 12 ** -0.5) < 0.02:
            raise Miss(f"Your noise has mean {mean:.3f} and standard deviation {std:.3f}: that is torch.rand, uniform "
                       "on [0, 1). The forward process adds standard Gaussian noise: torch.randn.")
        if abs(mean) > 0.02 or abs(std - 1) > 0.02:
            raise Miss(f"Your noise has mean {mean:.3f} and standard deviation {std:.3f}; standard Gaussian noise has "
                       "0 and 1: torch.randn(x0.shape, generator=generator).")
        same = max(float((noise[i] - noise[0]).abs().max()) for i in range(1, len(noise)))
        correlation = float((noise[0] * noise[1]).mean())
        if same < 1e-6 or abs(correlation) > 0.15:
            raise Miss("Every image got the same noise: draw it in the whole batch's shape (B, C, H, W), not once "
                       "for (1, C, H, W) and broadcast; each image needs its own draw.")
        return f"the noise is standard Gaussian (mean {mean:+.3f}, std {std:.3f}) and follows its generator"
    return stage


OUTCOME_TIMESTEPS = (0, 250, 500, 750, 999)


def _stage_outcome(fn: Callable) -> Callable[[], str]:
    def stage():
        digits = load_digits()[0][:256]  # (256, 1, 16, 16)
        schedule = get_schedule("cosine")
        k = len(OUTCOME_TIMESTEPS)
        x0 = digits.repeat(k, 1, 1, 1)  # every timestep noises the same 256 digits
        t = torch.tensor(OUTCOME_TIMESTEPS).repeat_interleave(len(digits))
        x_t, _ = _run(fn, x0, t, schedule, torch.Generator().manual_seed(2), "for 256 digits at 5 timesteps")
        clean = digits.double().flatten()
        measured_snr, theory_snr = [], []
        for i, step in enumerate(OUTCOME_TIMESTEPS):
            xt = x_t[i * len(digits):(i + 1) * len(digits)].flatten()
            ab = float(schedule.alphas_cumprod[step])
            mean, var = ab ** 0.5 * float(clean.mean()), ab * float(clean.var()) + 1 - ab
            if abs(float(xt.mean()) - mean) > 0.03 or abs(float(xt.var()) - var) > 0.03:
                raise Miss(f"At t = {step} (alpha_bar = {ab:.4f}) the noised digits have mean {float(xt.mean()):.3f} "
                           f"and variance {float(xt.var()):.3f}; the forward process gives sqrt(alpha_bar) E[x0] = "
                           f"{mean:.3f} and alpha_bar Var(x0) + 1 - alpha_bar = {var:.3f}. {BATCH_HINT}")
            slope = float(((xt - xt.mean()) * (clean - clean.mean())).mean() / clean.var(unbiased=False))
            snr = slope ** 2 / float((xt - slope * clean).var())
            if ab / (1 - ab) > 1e-3:  # where the signal is measurable at all
                if abs(math.log(snr / (ab / (1 - ab)))) > 0.1:
                    raise Miss(f"At t = {step} the measured signal-to-noise ratio of your batch is {snr:.3g}; the "
                               f"schedule's alpha_bar / (1 - alpha_bar) is {ab / (1 - ab):.3g}. {BATCH_HINT}")
                measured_snr.append(f"{snr:.3g}")
                theory_snr.append(f"{ab / (1 - ab):.3g}")
        shown = [s for s in OUTCOME_TIMESTEPS if float(schedule.snr()[s]) > 1e-3]
        return (f"256 digits at t = {', '.join(map(str, OUTCOME_TIMESTEPS))}: mean and variance as the theory says, "
                f"SNR at t = {', '.join(map(str, shown))} measured {', '.join(measured_snr)} "
                f"(theory {', '.join(theory_snr)})")
    return stage


def check_noise_batch(fn: Callable) -> CheckResult:
    """Grade the build ``fn(x0, t, schedule, generator) -> (x_t, noise)``: unit cases against ``q_sample``,
    the noise (standard Gaussian, from the generator), then per-timestep statistics of real digits.

    torch's global random state is restored afterwards, so checking leaves the notebook's random numbers
    as they were (a learner's function that uses the global generator moves it).
    """
    state = torch.get_rng_state()
    try:
        return grade_build(NOISE_BATCH_BUILD, _stage_cases(fn), _stage_noise(fn), _stage_outcome(fn))
    finally:
        torch.set_rng_state(state)


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


__all__ = ["NOISE_BATCH_BUILD", "check_closed_form", "check_first_step_below", "check_noise_batch", "check_one_step",
           "noise_batch", "signal_question", "snr_question"]
