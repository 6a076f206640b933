"""Checkers for notebook 09, fast sampling.

Exercises: the DDIM update with ``eta`` (Song et al. 2021, Eq. (12)), the DPM-Solver++(2M) update
(Lu et al. 2022, Algorithm 2), and one step of multistep consistency sampling (Song et al. 2023,
Algorithm 1); plus questions on why few deterministic steps suffice and on what the measured table
says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ...samplers.consistency import boundary_scalings
from .core import CheckResult, ask_choice, check_cases

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
        hints={FEW_STEPS_OPTIONS[1]: "The table uses the very same digits-class network for DDPM and DDIM.",
               FEW_STEPS_OPTIONS[2]: "DDIM's 50 steps are spread over the whole range, from t = 980 down to 0.",
               FEW_STEPS_OPTIONS[3]: "DDPM sampling does take all 1,000 steps: it is the slowest row of the table."})


def fewest_calls(rows: Sequence[dict], reference: str = "DDPM-1000", factor: float = 1.1,
                 families: Sequence[str] = ("DDIM", "DPM-Solver++", "flow Euler", "student")) -> str:
    """The family whose cheapest row (fewest NFE) has an FID within ``factor`` of ``reference``'s."""
    ref = next(r["fid"] for r in rows if r["label"] == reference)
    best = None
    for r in rows:
        family = r["label"].rsplit("-", 1)[0]
        if family in families and r["fid"] <= factor * ref and (best is None or r["nfe"] < best["nfe"]):
            best = r
    if best is None:
        raise ValueError(f"no row of {list(families)} is within {factor}x of {reference}'s FID.")
    return best["label"].rsplit("-", 1)[0]


FAMILY_OPTIONS = ["DDIM", "DPM-Solver++", "flow Euler", "student"]


def fewest_calls_question(rows: Sequence[dict]):
    """Answered from the reference table ``rows`` (``speed.reference_table()["rows"]``)."""
    answer = fewest_calls(rows)
    ref = next(r["fid"] for r in rows if r["label"] == "DDPM-1000")
    winner = min((r for r in rows if r["label"].rsplit("-", 1)[0] == answer and r["fid"] <= 1.1 * ref),
                 key=lambda r: r["nfe"])
    return ask_choice(
        "Question B (reading the reference table)",
        "In the reference table, which sampler family gets within 1.1x of DDPM-1000's digits-FID with the "
        "fewest network calls?",
        FAMILY_OPTIONS, answer,
        explanation=f"{winner['label']}: FID {winner['fid']:.2f} against DDPM-1000's {ref:.2f}, with "
                    f"{winner['nfe']} network calls instead of 1,000.",
        hints={o: "Look at the FID / ref column and at NFE: find every row at or below 1.10x, then the "
                  "smallest NFE among them." for o in FAMILY_OPTIONS if o != answer})


__all__ = ["FAMILY_OPTIONS", "FEW_STEPS_OPTIONS", "alpha_and_s", "check_consistency_step", "check_ddim_step",
           "check_dpm_update", "few_steps_question", "fewest_calls", "fewest_calls_question", "half_log_snr"]
