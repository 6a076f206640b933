"""Checkers for notebook 09, fast sampling.

Exercises: the DDIM update with ``eta`` (Song et al. 2021, Eq. (12)), the DPM-Solver++(2M) update
(Lu et al. 2022, Algorithm 2), and one step of multistep consistency sampling (Song et al. 2023,
Algorithm 1); plus questions on why few deterministic steps suffice and on what the measured table
says. The second build, Karras et al.'s noise levels, is graded in ``nb09_karras`` (re-exported here).

The build exercise is the whole DPM-Solver++(2M) sampler, ``fn(model_fn, x_T, alphas_cumprod,
num_steps)``: graded on an exact toy network (timesteps, calls, the first-order steps), by agreement
with diffusers' ``DPMSolverMultistepScheduler`` on the digits model, and by the digits-FID it reaches
at 10 steps. A wrong loop is compared with the reference loop made with each known slip (``SLIPS``),
so the hint names the slip. (The reference loop and its slips could move to the package if a second
notebook needs them.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ... import metrics
from ...denoisers import ClampX0, WithCondition
from ...samplers import DPMSolverSampler, sample_loop
from ...samplers.consistency import boundary_scalings
from ...schedules import DIFFUSERS_BETA_SCHEDULE, NoiseSchedule
from .core import BuildExercise, CheckResult, Miss, ask_choice, call_learner, check_cases, expect_close, grade_build
from .nb09_karras import build_karras_sigmas, check_karras_sigmas, heun_digits

# --- Exercise 1: the DDIM update with eta -----------------------------------------------------------


def ddim_update(x_t, eps, a_t: float, a_prev: float, eta: float, noise):
    """The reference: ``x_{t'} = sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps + sigma z``, Eq. (12) and (16)."""
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
    x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    return a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps + sigma * noise


def _ddim_slips(x_t, eps, a_t, a_prev, eta, noise):
    var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    sigma = eta * var**0.5
    x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    return [
        (a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps + sigma * noise,
         "The noise you add takes its share of the variance: the eps term's weight is sqrt(1 - a_prev - sigma^2), "
         "not sqrt(1 - a_prev)."),
        (a_prev**0.5 * x0 + (1 - a_prev - (eta * var) ** 2) ** 0.5 * eps + eta * var * noise,
         "eta scales the standard deviation: sigma = eta * sqrt(variance), with the square root (Eq. (16))."),
        (a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps,
         "With eta > 0 the step adds fresh noise: + sigma * noise."),
        (a_t**0.5 * x0 + max(1 - a_t - sigma**2, 0.0) ** 0.5 * eps + sigma * noise,
         "The step lands at the PREVIOUS (less noisy) timestep: use a_prev in sqrt(a_prev) x0 and in the eps weight."),
    ]


def _ddim_cases():
    g = torch.Generator().manual_seed(9)
    cases = []
    for a_t, a_prev, eta in ((0.3, 0.5, 0.0), (0.3, 0.5, 1.0), (0.05, 0.2, 0.5), (0.9, 0.97, 1.0)):
        x, eps, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
        args = (x, eps, a_t, a_prev, eta, z)
        cases.append((args, ddim_update(*args), _ddim_slips(*args)))
    return cases


def check_ddim_step(fn: Callable) -> CheckResult:
    """``fn(x_t, eps, a_t, a_prev, eta, noise)`` -> ``x_{t'}``, as ``DDIMSampler.step``."""
    return check_cases("Exercise 1 (the DDIM update with eta)", fn, _ddim_cases(),
                       hint="sigma = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)); "
                            "x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); "
                            "x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma * noise.")


# --- Exercise 2: the DPM-Solver++(2M) update ---------------------------------------------------------


def alpha_and_s(sigma: float) -> tuple[float, float]:
    """``(alpha, s)`` of a noise-to-signal ratio ``sigma = sqrt((1 - a) / a)``: ``sqrt(a)`` and ``sqrt(1 - a)``."""
    alpha = 1 / math.sqrt(sigma**2 + 1)
    return alpha, sigma * alpha


def half_log_snr(sigma: float) -> float:
    """``lambda = log(alpha / s) = -log(sigma)``: it grows as sampling proceeds."""
    alpha, s = alpha_and_s(sigma)
    return math.log(alpha) - math.log(s)


def dpm_update(x, d, d_prev, sigma_prev: float, sigma_s: float, sigma_t: float):
    """The reference DPM-Solver++(2M) step from ``sigma_s`` to ``sigma_t`` (``d_prev`` None: first order)."""
    alpha_t, s_t = alpha_and_s(sigma_t)
    _, s_s = alpha_and_s(sigma_s)
    h = half_log_snr(sigma_t) - half_log_snr(sigma_s)
    if d_prev is None:
        d_used = d
    else:
        r = (half_log_snr(sigma_s) - half_log_snr(sigma_prev)) / h
        d_used = d + (d - d_prev) / (2 * r)
    return (s_t / s_s) * x - alpha_t * (math.exp(-h) - 1.0) * d_used


def _dpm_slips(x, d, d_prev, sigma_prev, sigma_s, sigma_t):
    alpha_t, s_t = alpha_and_s(sigma_t)
    _, s_s = alpha_and_s(sigma_s)
    h = half_log_snr(sigma_t) - half_log_snr(sigma_s)
    r = (half_log_snr(sigma_s) - half_log_snr(sigma_prev)) / h
    step = lambda du: (s_t / s_s) * x - alpha_t * (math.exp(-h) - 1.0) * du  # noqa: E731
    return [
        (step(d), "That is the first-order step (DDIM): correct D with the previous prediction, "
                  "D' = D + (D - D_prev) / (2 r)."),
        (step(d + (d - d_prev) * r / 2), "r is the ratio of the PREVIOUS step to this one, h_prev / h; the "
                                         "correction divides by 2 r."),
        (step(d + (d - d_prev) / r), "The midpoint correction has a factor 1/2: D' = D + (D - D_prev) / (2 r)."),
        ((s_t / s_s) * x + alpha_t * (math.exp(-h) - 1.0) * (d + (d - d_prev) / (2 * r)),
         "Sign: x_t = (s_t / s_s) x - alpha_t (e^{-h} - 1) D'; since h > 0, -(e^{-h} - 1) is positive."),
    ]


def _dpm_cases():
    g = torch.Generator().manual_seed(11)
    cases = []
    for sigmas in ((8.0, 4.0, 2.0), (2.0, 1.0, 0.7), (0.9, 0.5, 0.2)):
        x, d, d_prev = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
        args = (x, d, d_prev, *sigmas)
        cases.append((args, dpm_update(*args), _dpm_slips(*args)))
    return cases


def check_dpm_update(fn: Callable) -> CheckResult:
    """``fn(x, d, d_prev, sigma_prev, sigma_s, sigma_t)`` -> the next sample, as ``DPMSolverSampler.step``."""
    return check_cases("Exercise 2 (the DPM-Solver++(2M) update)", fn, _dpm_cases(),
                       hint="h = lambda_t - lambda_s, r = (lambda_s - lambda_prev) / h, D' = D + (D - D_prev) / (2 r), "
                            "x_t = (s_t / s_s) x - alpha_t (exp(-h) - 1) D' (alpha_and_s and half_log_snr help).")


# --- Build: the whole DPM-Solver++(2M) sampler -------------------------------------------------------

DIFFUSERS_ATOL = 1e-3  # float32 loops (diffusers runs every update in float32); the solution is within 2e-6
QUALITY_FACTOR = 1.25  # the learner's 10-step digits-FID may be at most this times the package's
TOY_STEPS = (1, 2)  # the unit cases on the exact toy network: every step first order (2M corrects from 3 steps on)
# t = 999 divides by sqrt(alpha_bar) = 4.9e-5: float32 rounding of x and eps moves the toy's D by up to 4e-3
TOY_ATOL = 1e-2


def dpm_solver_timesteps(num_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """diffusers' "linspace" spacing (``DPMSolverMultistepScheduler``'s default), noisiest first:
    ``round(i (T - 1) / N)`` for ``i = N, ..., 1`` (numpy's round, half to even): 10 steps visit
    999, 899, 799, 699, 599, 500, 400, 300, 200, 100."""
    grid = np.linspace(0, num_train_timesteps - 1, num_steps + 1).round()[::-1][:-1]
    return [int(t) for t in grid]


def dpm_solver(model_fn: Callable, x_T: torch.Tensor, alphas_cumprod, num_steps: int, slip: str | None = None):
    """The reference DPM-Solver++(2M) loop (Lu et al. 2022, Algorithm 2), as diffusers'
    ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` with its defaults.

    Args:
        model_fn: ``model_fn(x, t) -> eps``, ``x: (B, ...)``, ``t`` an int timestep.
        x_T: ``(B, ...)`` the starting noise.
        alphas_cumprod: ``(T,)`` the schedule's ``alpha_bar``.
        slip: None, or a name of ``SLIPS``: make that known mistake (the checker names it).
    Returns:
        ``(B, ...)`` the sample after ``num_steps`` network calls.
    """
    steps = dpm_solver_timesteps(num_steps, len(alphas_cumprod))
    abar = [float(alphas_cumprod[t]) for t in steps] + [1.0]  # the last step goes to alpha_bar = 1 (sigma = 0)
    if slip in ("log alpha", "log alpha, D at the end"):
        lam = lambda a: 0.5 * math.log(a)  # noqa: E731  (log alpha, without the noise)
    else:
        lam = lambda a: 0.5 * math.log(a / (1 - a))  # noqa: E731  lambda = log(alpha / s)
    x, d_prev, eps_prev, h_prev = x_T, None, None, None
    for i, t in enumerate(steps):
        a_s, a_t = abar[i], abar[i + 1]
        alpha_s, s_s, alpha_t, s_t = math.sqrt(a_s), math.sqrt(1 - a_s), math.sqrt(a_t), math.sqrt(1 - a_t)
        eps = model_fn(x, t)
        d = (x - s_s * eps) / alpha_s  # D_i, the data prediction
        if i == len(steps) - 1 and slip != "log alpha":
            return d  # first order to sigma = 0: lambda = inf, e^{-h} = 0 and s_t = 0 leave x = D
        h = lam(a_t) - lam(a_s)
        d_used = d
        if d_prev is not None and slip != "first order":
            r = h_prev / h
            if slip == "inverted ratio":
                r = 1 / r
            if slip == "eps":
                d_used = (x - s_s * (eps + (eps - eps_prev) / (2 * r))) / alpha_s
            else:
                d_used = d + (-1 if slip == "sign" else 1) * (d - d_prev) / (2 * r)
        x = (s_t / s_s) * x - alpha_t * (math.exp(-h) - 1) * d_used
        d_prev, eps_prev, h_prev = (d_used if slip == "stored D'" else d), eps, h
    return x


SLIPS = {
    "first order": "That is DDIM (first order at every step): from the second step on, correct D with the "
                   "previous step's prediction, D' = D + (D - D_prev) / (2 r), and use D' in the update.",
    "inverted ratio": "r is the ratio of the PREVIOUS step to this one, r = h_prev / h = "
                      "(lambda_s - lambda_prev) / (lambda_t - lambda_s), not h / h_prev.",
    "sign": "The correction's sign: D' = D + (D - D_prev) / (2 r), with r > 0 (lambda grows as you sample).",
    "eps": "The multistep combination is of the data predictions D (x0), not of the noise predictions: "
           "D' = D + (D - D_prev) / (2 r), each D = (x - s eps) / alpha at its own step.",
    "log alpha": "h is a step in lambda = log(alpha / s) (half the log-SNR), not in log(alpha): "
                 "h = lambda_t - lambda_s, and r uses lambda too.",
    "log alpha, D at the end": "h is a step in lambda = log(alpha / s) (half the log-SNR), not in log(alpha): "
                               "h = lambda_t - lambda_s, and r uses lambda too.",
    "stored D'": "Keep each step's own prediction D as D_prev for the next step, not the corrected D'.",
}


def package_dpm_solver(model_fn: Callable, x_T: torch.Tensor, alphas_cumprod, num_steps: int) -> torch.Tensor:
    """The package's ``DPMSolverSampler`` through ``sample_loop``, with the build's signature."""
    ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
    betas = 1 - ab / torch.cat([ab.new_ones(1), ab[:-1]])  # alpha_bar_t = prod (1 - beta)
    sampler = DPMSolverSampler(NoiseSchedule(betas))
    return sample_loop(lambda x, t: model_fn(x, int(t)), sampler, tuple(x_T.shape), num_steps, latents=x_T,
                       device=x_T.device, dtype=x_T.dtype)


def diffusers_dpm_solver(model_fn: Callable, x_T: torch.Tensor, schedule: NoiseSchedule, num_steps: int):
    """diffusers' ``DPMSolverMultistepScheduler`` (DPM-Solver++, order 2, its default "linspace" spacing
    and lower-order final step) with ``schedule``'s config, handed ``schedule``'s float64 ``alpha_bar``
    as the learner is: diffusers' own float32 cumprod differs at the noisiest timesteps, which moves
    10-step digits by up to 2e-3 (as ``tests/test_parity_diffusers.py`` does)."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=len(schedule), algorithm_type="dpmsolver++",
                                            solver_order=2, prediction_type="epsilon",
                                            beta_schedule=DIFFUSERS_BETA_SCHEDULE[schedule.name])
    scheduler.betas, scheduler.alphas = schedule.betas.clone(), schedule.alphas.clone()
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    with warnings.catch_warnings():  # diffusers 0.42 reads its tensor schedule with np.array(copy=False) under numpy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        return sample_loop(lambda x, t: model_fn(x, int(t)), scheduler, tuple(x_T.shape), num_steps, latents=x_T,
                           device=x_T.device, dtype=x_T.dtype)


class _Recorder:
    """``model_fn`` for the learner: takes an int timestep (or a one-value tensor), records every call."""

    def __init__(self, eps_fn: Callable, shape: tuple[int, ...]):
        self.eps_fn, self.shape, self.timesteps = eps_fn, tuple(shape), []

    def __call__(self, x, t):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise Miss(f"model_fn was called with x of shape {got}; it takes the current sample, "
                       f"shape {self.shape} like x_T.")
        values = torch.as_tensor(t).detach().flatten().cpu().double()
        if values.numel() == 0 or not bool((values == values[0]).all()):
            raise Miss("model_fn(x, t) takes one timestep t (an int such as 999), the same for the whole batch.")
        self.timesteps.append(float(values[0]))
        return self.eps_fn(x, int(round(self.timesteps[-1])))


def toy_eps(alphas_cumprod) -> Callable:
    """The exact noise prediction for toy data: every coordinate is -0.2 or 0.6 (equal odds) plus
    N(0, 0.1^2) noise, so ``D`` is a known posterior mean (0.2 at pure noise) inside [-1, 1]."""
    means, var = torch.tensor([-0.2, 0.6], dtype=torch.float64), 0.01

    def eps_fn(x, t):
        a = float(alphas_cumprod[t])
        alpha, s = math.sqrt(a), math.sqrt(1 - a)
        xd = x.double()[..., None]  # (..., 1) against the two modes
        total = alpha**2 * var + s**2  # the variance of x_t given the mode
        w = torch.softmax(-(xd - alpha * means) ** 2 / (2 * total), dim=-1)
        d = (w * (means + alpha * var / total * (xd - alpha * means))).sum(-1)  # E[x0 | x_t]
        return ((x.double() - alpha * d) / s).to(x.dtype)

    return eps_fn


def _diagnose_loop(got, expected, slipped: Callable[[str], torch.Tensor], what: str, atol: float) -> None:
    """``Miss`` unless ``got`` matches ``expected``; a match with a known slip's result gets its hint."""
    generic = ("Check the loop against the four formulas above: D = (x - s eps) / alpha; h = lambda_t - lambda_s; "
               "from the second step on D' = D + (D - D_prev) / (2 r), r = h_prev / h; "
               "x = (s_t / s_s) x - alpha_t (e^{-h} - 1) D'; the last step returns D.")
    g = got.detach().double().cpu() if isinstance(got, torch.Tensor) else None
    if g is not None and g.shape == expected.shape and not bool(torch.isfinite(g).all()):
        raise Miss(f"{what} contains NaN or inf. The last step goes to alpha_bar = 1 (sigma = 0), where lambda "
                   "is +inf, h = inf and r = 0: the 2M correction divides by zero there. Take the last step "
                   "first order, as diffusers does (lower_order_final): it returns D.")
    if g is not None and g.shape == expected.shape and torch.allclose(g, expected.double().cpu(), atol=atol, rtol=0):
        return
    if g is not None and g.shape == expected.shape:
        for name, hint in SLIPS.items():
            try:
                wrong = slipped(name).double().cpu()
            except (ValueError, ZeroDivisionError):
                continue
            if torch.isfinite(wrong).all() and torch.allclose(g, wrong, atol=atol, rtol=0):
                raise Miss(f"{what} is off by up to {float((g - expected.double().cpu()).abs().max()):.3g}. {hint}")
    expect_close(got, expected.cpu(), what, generic, atol=atol, rtol=0)


def _timesteps_hint(got: list[float], num_steps: int, num_train_timesteps: int) -> str | None:
    """None if the loop asked for diffusers' linspace timesteps in order, else what went wrong."""
    want = dpm_solver_timesteps(num_steps, num_train_timesteps)
    if got == want:
        return None
    calls = (f"With {num_steps} step{'s' * (num_steps > 1)} your loop called model_fn at "
             f"t = {[int(v) if v == int(v) else v for v in got]}")
    if len(got) > num_steps:
        return (f"{calls}: {len(got)} calls. DPM-Solver++(2M) calls the network once per step: keep the previous "
                "step's D instead of computing it again.")
    if len(got) < num_steps:
        return f"{calls}: {len(got)} calls. Call model_fn once at each of the {num_steps} timesteps {want}."
    if got == want[::-1]:
        return f"{calls}: ascending. Sampling runs from noise to data: start at t = {want[0]}, the noisiest."
    if any(v != int(v) for v in got):
        return f"{calls}: round the timesteps to integers (np.linspace(...).round())."
    leading = [(num_steps - 1 - i) * (num_train_timesteps // num_steps) for i in range(num_steps)]
    if got == leading:
        return (f"{calls}: that is the 'leading' spacing of DDIM's scheduler. DPM-Solver++ uses 'linspace': "
                f"np.linspace(0, T - 1, N + 1).round()[::-1][:-1], here {want}.")
    return f"{calls}; diffusers' linspace spacing visits {want}: np.linspace(0, T - 1, N + 1).round()[::-1][:-1]."


def _run(fn: Callable, eps_fn: Callable, x_T: torch.Tensor, alphas_cumprod, num_steps: int):
    """The learner's loop on a fresh copy of ``x_T``, without gradients; its output and the timesteps it asked for."""
    model_fn = _Recorder(eps_fn, x_T.shape)
    with torch.no_grad():
        out = call_learner(fn, model_fn, x_T.clone(), alphas_cumprod, num_steps)
    if out is None:
        raise Miss(f"Your sampler returned None (num_steps = {num_steps}): did you forget `return`?")
    return out, model_fn.timesteps


def build_dpm_solver(n: int = 64) -> BuildExercise:
    """What the DPM-Solver++(2M) build is graded on (``n``: the digits of the quality stage)."""
    return BuildExercise(
        "Build (the whole DPM-Solver++(2M) sampler)",
        "my_dpm_solver(model_fn, x_T, alphas_cumprod, num_steps) -> the sample, written from the update rule.",
        (f"unit cases on an exact toy network at {' and '.join(map(str, TOY_STEPS))} steps (every step first order): "
         "one network call per step, "
         f"at diffusers' linspace timesteps in order, and the reference loop's numbers (to {TOY_ATOL:g})",
         f"agreement with diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2) on the digits model from the "
         f"same noise at 10 and 20 steps: largest pixel difference below {DIFFUSERS_ATOL:g}",
         f"sample quality at 10 steps: digits-FID of {n} of your digits at most {QUALITY_FACTOR:g}x that of the "
         "package's sampler (model.sample(sampler='dpmsolver++')) from the same noise"))


def check_dpm_solver(fn: Callable, model, n: int = 64, steps: Sequence[int] = (10, 20), n_agree: int = 8,
                     quality_steps: int = 10) -> CheckResult:
    """Grade ``fn(model_fn, x_T, alphas_cumprod, num_steps)``: the toy unit cases, agreement with
    diffusers on ``model`` (a ``DiffusionModel`` of digits, unconditional), and digits-FID at ``quality_steps``.

    Args:
        n: digits drawn by the learner's loop and by the package's for the quality stage.
        steps: the step counts at which the loop must agree with diffusers (on ``n_agree`` digits).
    """
    if model.prediction_type != "epsilon":
        raise ValueError(f"the build's model_fn predicts eps: pass an epsilon model, not {model.prediction_type!r}.")
    build = build_dpm_solver(n)
    ab = model.schedule.alphas_cumprod
    device = next(model.denoiser.parameters()).device
    # what model.sample steps on: the unconditional network (no label), with the x0 it implies clamped to [-1, 1]
    net = ClampX0(WithCondition(model.denoiser, device), model.schedule, model.prediction_type)
    digits = lambda x, t: net(x, torch.tensor(t, device=device))  # noqa: E731

    def noise(m: int, seed: int) -> torch.Tensor:
        return torch.randn(m, 1, 16, 16, generator=torch.Generator().manual_seed(seed)).to(device)

    def toy_stage():
        eps_fn = toy_eps(ab)
        x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(21))
        for k in TOY_STEPS:
            got, asked = _run(fn, eps_fn, x_T, ab, k)
            if (hint := _timesteps_hint(asked, k, len(ab))) is not None:
                raise Miss(hint)
            _diagnose_loop(got, dpm_solver(eps_fn, x_T, ab, k), lambda s, k=k: dpm_solver(eps_fn, x_T, ab, k, slip=s),
                           f"Your {k}-step sample on the toy network", atol=TOY_ATOL)
        return f"The toy cases at {' and '.join(map(str, TOY_STEPS))} steps match"

    def diffusers_stage():
        worst = {}
        for k in steps:
            x_T = noise(n_agree, k)
            got, asked = _run(fn, digits, x_T, ab, k)
            if (hint := _timesteps_hint(asked, k, len(ab))) is not None:
                raise Miss(hint)
            with torch.no_grad():
                theirs = diffusers_dpm_solver(digits, x_T, model.schedule, k)
                _diagnose_loop(got, theirs, lambda s, k=k, x_T=x_T: dpm_solver(digits, x_T, ab, k, slip=s),
                               f"Your {k}-step sample of digits (against diffusers')", atol=DIFFUSERS_ATOL)
            worst[k] = float((got.detach().double() - theirs.double()).abs().max())
        return ("largest difference from diffusers' DPMSolverMultistepScheduler "
                + ", ".join(f"{v:.1e} at {k} steps" for k, v in worst.items()) + f" (below {DIFFUSERS_ATOL:g})")

    def quality_stage():
        x_T = noise(n, 0)
        got, _ = _run(fn, digits, x_T, ab, quality_steps)
        if not isinstance(got, torch.Tensor) or got.shape != x_T.shape or not bool(torch.isfinite(got).all()):
            raise Miss(f"Your {quality_steps}-step digits should be a finite tensor of x_T's shape {tuple(x_T.shape)}.")
        ours = model.sample(n, steps=quality_steps, sampler="dpmsolver++", batch_size=n,
                            generator=torch.Generator().manual_seed(0))  # the same noise as x_T
        mine_fid = metrics.digits_fid(got.detach().float().clamp(-1, 1).cpu(), require_n=False)
        ref_fid = metrics.digits_fid(ours, require_n=False)
        note = (f"{quality_steps}-step digits-FID on {n} digits {mine_fid:.2f} against the package's {ref_fid:.2f} "
                f"(at most {QUALITY_FACTOR:g}x: {QUALITY_FACTOR * ref_fid:.2f})")
        if not mine_fid <= QUALITY_FACTOR * ref_fid:
            raise Miss(f"Your {note}: check the loop against the formulas above.")
        return note

    return grade_build(build, toy_stage, diffusers_stage, quality_stage)


# --- Exercise 3: one step of multistep consistency sampling -----------------------------------------


def consistency_step(x_t, eps, t: int, t_next: int | None, alphas_cumprod, noise):
    """The reference: ``f = c_skip x_t + c_out x0``; then ``sqrt(a') f + sqrt(1 - a') z`` unless last."""
    a = float(alphas_cumprod[t])
    x0 = (x_t - (1 - a) ** 0.5 * eps) / a**0.5
    c_skip, c_out = boundary_scalings(t)
    denoised = c_skip * x_t + c_out * x0
    if t_next is None:
        return denoised
    a_next = float(alphas_cumprod[t_next])
    return a_next**0.5 * denoised + (1 - a_next) ** 0.5 * noise


def _consistency_slips(x_t, eps, t, t_next, alphas_cumprod, noise):
    a = float(alphas_cumprod[t])
    x0 = (x_t - (1 - a) ** 0.5 * eps) / a**0.5
    c_skip, c_out = boundary_scalings(t)
    denoised = c_skip * x_t + c_out * x0
    slips = [(c_out * x_t + c_skip * x0, "c_skip multiplies the input x_t and c_out the network's x0: "
                                         "f = c_skip x_t + c_out x0 (so that f(x, 0) = x).")]
    if t_next is not None:
        a_next = float(alphas_cumprod[t_next])
        slips += [
            (denoised, "Not the last step: noise the estimate back to t_next with the forward process, "
                       "sqrt(a_next) f + sqrt(1 - a_next) noise."),
            (a_next**0.5 * denoised + (1 - a_next) ** 0.5 * eps,
             "Consistency sampling re-noises with FRESH noise (the noise argument), not the model's eps: "
             "that would be a DDIM step."),
        ]
    return slips


def _consistency_cases(alphas_cumprod):
    g = torch.Generator().manual_seed(13)
    cases = []
    for t, t_next in ((999, 499), (749, 249), (499, None), (19, None)):
        x, eps, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
        if t == 999:
            x = eps.clone() + 0.01 * x  # at t = 999 x_t is almost pure noise: keep x0 of moderate size
        args = (x, eps, t, t_next, alphas_cumprod, z)
        cases.append((args, consistency_step(*args), _consistency_slips(*args)))
    return cases


def check_consistency_step(fn: Callable, alphas_cumprod) -> CheckResult:
    """``fn(x_t, eps, t, t_next, alphas_cumprod, noise)`` -> the next sample (``t_next`` None: the image)."""
    return check_cases("Exercise 3 (a consistency sampling step)", fn, _consistency_cases(alphas_cumprod),
                       atol=1e-4, rtol=1e-4,
                       hint="x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); c_skip, c_out = boundary_scalings(t); "
                            "f = c_skip x_t + c_out x0; return f if t_next is None, else "
                            "sqrt(a_next) f + sqrt(1 - a_next) noise.")


# --- Questions ---------------------------------------------------------------------------------------

FEW_STEPS_OPTIONS = [
    "DDIM follows an ODE whose paths are smooth, so big steps stay close to them",
    "DDIM uses a better-trained network than DDPM",
    "DDIM skips the noisy steps, which carry no information",
    "DDPM's 1,000 steps are needed only during training, never for sampling",
]


def few_steps_question():
    return ask_choice(
        "Question A (why 50 steps can do the work of 1,000)",
        "DDIM with 50 deterministic steps reaches nearly DDPM-1000's quality with the same network. Why?",
        FEW_STEPS_OPTIONS, FEW_STEPS_OPTIONS[0],
        explanation="DDIM (eta = 0) integrates the probability-flow ODE, whose trajectories are smooth curves: "
                    "a step of 20 timesteps follows them closely. DDPM adds fresh noise at every step, so "
                    "each step must be small for the noise to average out.",
        hints={FEW_STEPS_OPTIONS[1]: "The table uses the very same digits-ddpm network for DDPM and DDIM.",
               FEW_STEPS_OPTIONS[2]: "DDIM's 50 steps are spread over the whole range, from t = 980 down to 0.",
               FEW_STEPS_OPTIONS[3]: "DDPM sampling does take all 1,000 steps: it is the slowest row of the table."})


def fewest_calls(rows: Sequence[dict], target: float,
                 families: Sequence[str] = ("DDIM", "DPM-Solver++", "Euler-Karras", "Heun-Karras", "flow Euler",
                                            "student")) -> str:
    """The family whose cheapest row (fewest NFE) has a digits-FID of at most ``target``."""
    best = None
    for r in rows:
        family = r["label"].rsplit("-", 1)[0]
        if family in families and r["fid"] <= target and (best is None or r["nfe"] < best["nfe"]):
            best = r
    if best is None:
        raise ValueError(f"no row of {list(families)} has a digits-FID of at most {target:.3f}.")
    return best["label"].rsplit("-", 1)[0]


FAMILY_OPTIONS = ["DDIM", "DPM-Solver++", "Euler-Karras", "Heun-Karras", "flow Euler", "student"]
FEWEST_CALLS_FACTOR = 1.5  # x the real-vs-real floor: "as close to the data as DDIM-50 is asked to be"


def fewest_calls_question(rows: Sequence[dict], floor: float):
    """Answered from the reference table ``rows`` (``speed.reference_table()["rows"]``) and the
    real-vs-real digits-FID ``floor`` (``metrics.floor()["fid"]``)."""
    target = FEWEST_CALLS_FACTOR * floor
    answer = fewest_calls(rows, target)
    winner = min((r for r in rows if r["label"].rsplit("-", 1)[0] == answer and r["fid"] <= target),
                 key=lambda r: r["nfe"])
    return ask_choice(
        "Question B (reading the reference table)",
        f"In the reference table, which sampler family gets within {FEWEST_CALLS_FACTOR:g}x of the real-vs-real "
        f"floor (digits-FID at most {target:.3f}) with the fewest network calls?",
        FAMILY_OPTIONS, answer,
        explanation=f"{winner['label']} ({winner['model']}): FID {winner['fid']:.3f}, {winner['fid'] / floor:.2f}x "
                    f"the floor {floor:.3f}, with {winner['nfe']} network call{'s' * (winner['nfe'] > 1)} instead of "
                    "DDPM's 1,000.",
        hints={o: f"Find every row with a digits-FID at or below {target:.3f}, then the smallest NFE among them."
               for o in FAMILY_OPTIONS if o != answer})


__all__ = ["FAMILY_OPTIONS", "FEW_STEPS_OPTIONS", "alpha_and_s", "build_dpm_solver", "build_karras_sigmas",
           "check_consistency_step", "check_ddim_step", "check_dpm_solver", "check_dpm_update", "check_karras_sigmas",
           "dpm_solver_timesteps", "FEWEST_CALLS_FACTOR", "few_steps_question", "fewest_calls", "fewest_calls_question", "half_log_snr",
           "heun_digits", "package_dpm_solver"]
