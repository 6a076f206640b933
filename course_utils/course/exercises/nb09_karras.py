"""Notebook 09's build exercise on Karras spacing: ``fn(sigma_min, sigma_max, n, rho=7.0)``, the
noise levels of EDM's Eq. (5) (Karras et al. 2022), as ``samplers.karras_sigmas``.

The contract (stated in the notebook): ``n`` levels, a 1-D tensor, array or list, descending from
``sigma_max`` to ``sigma_min`` (both included), evenly spaced in ``sigma^(1/rho)``, without the final
``sigma = 0`` (the sampler appends it, as diffusers' ``_convert_to_karras``). Graded on exact values
against the package for several ends, counts and ``rho`` (a wrong grid is compared with each known
slip's, so the hint names it), on the ends, the order, ``n = 1`` and ``rho = 1``, and on the
outcome: ``HeunSampler`` stepping through the learner's levels draws the package's digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...denoisers import ClampX0, WithCondition
from ...samplers import karras_sigmas, sample_loop
from ...samplers.karras import training_sigmas
from .core import BuildExercise, CheckResult, Miss, call_learner, grade_build

CASES = ((0.002, 80.0, 18, 7.0), (0.0064, 80.0, 10, 7.0), (0.1, 10.0, 5, 3.0), (0.03, 14.6, 2, 7.0))
RTOL = 1e-6  # float32 arithmetic passes; a slip moves some level by far more
SIGMA_MAX = 80.0  # EDM's sigma_max, where the outcome stage's Heun starts
DIGITS_ATOL = 1e-4  # the same levels give the same digits up to float32 rounding


def _ends(lo: float, hi: float, n: int, rho: float, ramp: np.ndarray) -> np.ndarray:
    return (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def slips(lo: float, hi: float, n: int, rho: float) -> list[tuple[np.ndarray, str]]:
    """``(wrong levels, hint)`` for each plausible mistake at ``(sigma_min, sigma_max, n, rho)``."""
    right = karras_sigmas(lo, hi, n, rho).numpy()
    ramp = np.linspace(0, 1, n)
    out = [
        (np.append(right, 0.0), "Return the n noise levels only, without a trailing 0: the sampler appends the "
                                "final sigma = 0 itself (as diffusers' _convert_to_karras does)."),
        (right[::-1].copy(), "The levels go from noise to data: descending, sigma_max first and sigma_min last."),
        (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho)),
         "The straight line is in sigma^(1/rho); raise it back to the power rho at the end: "
         "sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."),
        ((hi**rho + ramp * (lo**rho - hi**rho)) ** (1 / rho),
         "rho and 1/rho are swapped: interpolate sigma^(1/rho) (the rho-th root), then raise to the power rho."),
        (np.exp(np.linspace(np.log(hi), np.log(lo), n)),
         "That is even spacing in log sigma (the limit rho -> infinity); Karras spacing interpolates "
         "sigma^(1/rho) linearly, then raises to the power rho."),
        (_ends(lo, hi, n, rho, np.arange(n) / n), "Off by one: the ramp is i / (n - 1) for i = 0 .. n - 1, so that "
                                                  "its last value is 1 and the last level is sigma_min."),
        (_ends(lo, hi, n + 1, rho, np.linspace(0, 1, n + 1)),
         "Off by one: n levels, not n + 1 (np.linspace(0, 1, n))."),
        (_ends(lo, hi, n + 2, rho, np.linspace(0, 1, n + 2)[1:-1]),
         "Both ends belong to the grid: the first level is sigma_max itself and the last sigma_min."),
    ]
    if n > 1:
        out.append((_ends(lo, hi, n - 1, rho, np.linspace(0, 1, n - 1)), "Off by one: n levels, not n - 1."))
    if rho != 1:
        out.append((np.linspace(hi, lo, n), "That is even spacing in sigma (rho = 1): use the rho you are given, "
                                            "interpolating sigma^(1/rho) and raising to the power rho."))
    return [(w, h) for w, h in out if w.shape != right.shape or not np.allclose(w, right, rtol=1e-9)]  # n = 2: few


def _levels(fn: Callable, lo: float, hi: float, n: int, rho: float) -> np.ndarray:
    """The learner's levels as a 1-D float64 array, or a ``Miss`` that says what came back."""
    try:
        got = call_learner(fn, lo, hi, n, rho)
    except ZeroDivisionError:
        if n != 1:
            raise
        raise Miss("With n = 1 your code divides by zero: the grid is the single level [sigma_max]. "
                   "np.linspace(0, 1, n) gives the ramp [0.] there; a hand-written i / (n - 1) does not.") from None
    if got is None:
        raise Miss("Your function returned None: did you forget `return`?")
    try:
        arr = np.asarray(got.detach().cpu().double() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Miss(f"Return the levels as a 1-D tensor, array or list of numbers; got {type(got).__name__}.") from None
    if arr.ndim != 1:
        raise Miss(f"Return a 1-D list of n = {n} levels; got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise Miss(f"Your levels for sigma_min = {lo:g}, sigma_max = {hi:g}, n = {n} contain NaN or inf: "
                   "a division by n - 1 with n = 1, or a root of a negative number?")
    return arr


def _expect(fn: Callable, lo: float, hi: float, n: int, rho: float) -> None:
    got, want = _levels(fn, lo, hi, n, rho), karras_sigmas(lo, hi, n, rho).numpy()
    if got.shape == want.shape and np.allclose(got, want, rtol=RTOL, atol=0):
        return
    where = f"With sigma_min = {lo:g}, sigma_max = {hi:g}, n = {n}, rho = {rho:g}"
    for wrong, hint in slips(lo, hi, n, rho):
        if wrong.shape == got.shape and np.allclose(got, wrong, rtol=1e-6, atol=1e-12):
            raise Miss(f"{where}: {hint}")
    if got.shape != want.shape:
        raise Miss(f"{where} your function returned {len(got)} levels; it should return n = {n}, "
                   "from sigma_max down to sigma_min, without a trailing 0.")
    worst = int(np.argmax(np.abs(got - want) / want))
    raise Miss(f"{where} level {worst} is {got[worst]:.6g}, the package's {want[worst]:.6g}. sigma_i = "
               "(sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0 .. n - 1.")


def build_karras_sigmas() -> BuildExercise:
    """What the Karras-spacing build is graded on."""
    return BuildExercise(
        "Build (Karras et al.'s noise levels)",
        "my_karras_sigmas(sigma_min, sigma_max, n, rho=7.0) -> n noise levels, descending, no trailing 0.",
        (f"the package's values (to {RTOL:g} relative) for {len(CASES)} choices of the ends, n and rho",
         "the ends and the order: sigma_max first, sigma_min last, descending; n = 1 gives [sigma_max]",
         "rho = 1 gives levels evenly spaced in sigma",
         "the outcome: Heun on the digits model, stepping through your levels, draws the package's digits "
         f"(largest pixel difference at most {DIGITS_ATOL:g})"))


def heun_digits(model, levels, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` unconditional digits of ``model`` (a diffusion ``DiffusionModel``) drawn by ``HeunSampler`` through
    ``levels`` (``(N,)`` noise levels, descending), stepping on what ``model.sample`` steps on: the network with
    the ``x0`` it implies clamped to [-1, 1]."""
    sampler = model.make_sampler("heun", len(levels), sampler_options={"use_karras_sigmas": True})
    sampler.set_sigmas(levels)
    device = next(model.denoiser.parameters()).device
    net = ClampX0(WithCondition(model.denoiser, device), model.schedule, model.prediction_type)
    shape = (n, model.config.in_channels, model.config.sample_size, model.config.sample_size)
    x = sample_loop(net, sampler, shape, None, generator=torch.Generator().manual_seed(seed), device=device)
    return x.clamp(-1, 1).cpu()


def check_karras_sigmas(fn: Callable, model, n: int = 8, steps: int = 6) -> CheckResult:
    """Grade ``fn(sigma_min, sigma_max, n, rho=7.0)`` (see the module docstring); ``model``: a diffusion
    ``DiffusionModel`` of digits for the outcome stage (``n`` digits, Heun with ``steps`` levels)."""
    build = build_karras_sigmas()

    def values():
        for case in CASES:
            _expect(fn, *case)
        return f"the package's levels for {len(CASES)} choices of (sigma_min, sigma_max, n, rho)"

    def ends_and_order():
        got = _levels(fn, 0.002, 80.0, 12, 7.0)
        if len(got) == 12 and not (np.isclose(got[0], 80.0, rtol=RTOL) and np.isclose(got[-1], 0.002, rtol=RTOL)):
            raise Miss(f"The first level must be sigma_max = 80 and the last sigma_min = 0.002; got {got[0]:.6g} "
                       f"and {got[-1]:.6g}.")
        if not (np.diff(got) < 0).all():
            raise Miss("The levels must strictly descend, from noise (sigma_max) to data (sigma_min).")
        one = _levels(fn, 0.002, 80.0, 1, 7.0)
        if one.shape != (1,) or not np.isclose(one[0], 80.0, rtol=RTOL):
            raise Miss(f"With n = 1 the grid is the single level [sigma_max] = [80]; got {one.tolist()}. "
                       "np.linspace(0, 1, 1) is [0.]; a hand-written i / (n - 1) divides by zero there.")
        return "the ends, the order and n = 1"

    def uniform():
        got = _levels(fn, 0.1, 10.0, 6, 1.0)
        want = np.linspace(10.0, 0.1, 6)
        if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL):
            raise Miss(f"With rho = 1 the levels are evenly spaced in sigma, {want.round(3).tolist()}; got "
                       f"{np.round(got, 3).tolist()}. rho enters twice: the root 1/rho inside, the power rho outside.")
        return "rho = 1 is even spacing"

    def outcome():
        lo = float(training_sigmas(model.schedule)[0])
        mine = heun_digits(model, _levels(fn, lo, SIGMA_MAX, steps, 7.0), n)
        ref = heun_digits(model, karras_sigmas(lo, SIGMA_MAX, steps), n)
        worst = float((mine - ref).abs().max())
        if not worst <= DIGITS_ATOL:
            raise Miss(f"Heun through your {steps} levels draws other digits than through the package's "
                       f"(largest pixel difference {worst:.3g}).")
        return f"Heun through your levels draws the package's {n} digits (largest difference {worst:.1e})"

    return grade_build(build, values, ends_and_order, uniform, outcome)


__all__ = ["build_karras_sigmas", "check_karras_sigmas", "heun_digits", "slips"]
