"""The score view of diffusion: the gradient of the noised data's log density, and the two reverse-time
processes it drives (Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations", ICLR; below "Song 2021").

Notation, with ``a = alpha_bar_t`` and ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` (``x_t: (B, ...)``):

- the **score** ``s(x_t, t) = grad_x log p_t(x_t)``, ``p_t`` the density of the noised data: ``(B, ...)``;
- the noise it implies, ``E[eps | x_t] = -sqrt(1 - a) s`` (Vincent 2011; Song & Ermon 2019): a network
  trained to predict the noise estimates the score, up to the factor ``-1 / sqrt(1 - a)``;
- **Tweedie's formula** ``E[x0 | x_t] = (x_t + (1 - a) s) / sqrt(a)`` (Robbins 1956; Efron 2011).

The reverse processes are written in DDIM's variables (Song, Meng & Ermon 2021, Eq. (14)):

    y = x_t / sqrt(a),   sigma = sqrt((1 - a) / a),   so that   y = x0 + sigma * eps.

In them the forward process only adds noise (Song 2021's variance-exploding SDE: no drift, ``g^2 dt = d[sigma^2]``),
so the schedule's own timesteps are the grid and no continuous ``beta(t)`` is needed. The score in ``y`` is
``grad_y log p = sqrt(a) s = -eps / sigma``, and going from ``sigma`` down to ``sigma'``:

    reverse SDE, Eq. (6), Euler-Maruyama:  y' = y + (sigma^2 - sigma'^2) grad_y log p + sqrt(sigma^2 - sigma'^2) z
    probability-flow ODE, Eq. (13):        dy/dsigma = eps;  Euler:  y' = y + (sigma' - sigma) eps

Euler's step on the ODE is DDIM's update with ``eta = 0`` (Eq. (12) of Song, Meng & Ermon 2021), term for term.
Timesteps are 0-indexed (``schedules``); after the last timestep of a grid comes ``alpha_bar = 1`` (``sigma = 0``,
the data), as with diffusers' ``set_alpha_to_one``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._validation import as_tensor, check_choice, check_generator, check_timesteps, paired_tensors, unit_coefficient
from .schedules import NoiseSchedule

ODE_SOLVERS = ("euler", "heun")


# --- The score, the noise and Tweedie's formula --------------------------------------------------

def score_from_epsilon(eps, alpha_bar_t) -> torch.Tensor:
    """``s = -eps / sqrt(1 - a)``: the score a noise prediction ``eps (B, ...)`` implies; ``a`` in (0, 1),
    a float or ``(B,)``."""
    eps = as_tensor(eps, "eps")
    a = unit_coefficient(alpha_bar_t, "alpha_bar_t", eps, allow_one=False)
    return -eps / torch.sqrt(1 - a)


def epsilon_from_score(score, alpha_bar_t) -> torch.Tensor:
    """``eps = -sqrt(1 - a) * s``: the noise prediction a score ``(B, ...)`` implies (the inverse of
    ``score_from_epsilon``)."""
    score = as_tensor(score, "score")
    a = unit_coefficient(alpha_bar_t, "alpha_bar_t", score, allow_one=False)
    return -torch.sqrt(1 - a) * score


def tweedie_x0(x_t, score, alpha_bar_t) -> torch.Tensor:
    """Tweedie's formula, ``E[x0 | x_t] = (x_t + (1 - a) s) / sqrt(a)``: ``(B, ...)``.

    For ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` with Gaussian ``eps``, the posterior mean of ``x0`` needs only
    the score of ``x_t``'s own density (Efron 2011, here with the signal scaled by ``sqrt(a)``). It equals
    ``parameterization.x0_from_epsilon(x_t, eps, a)`` with ``eps = -sqrt(1 - a) s``. ``a`` in (0, 1].
    """
    x_t, score = paired_tensors(x_t, score, "x_t", "score")
    a = unit_coefficient(alpha_bar_t, "alpha_bar_t", x_t, allow_one=True)
    return (x_t + (1 - a) * score) / torch.sqrt(a)


# --- DDIM's variables ------------------------------------------------------------------------------

def sigma_from_alpha_bar(alpha_bar) -> torch.Tensor:
    """``sigma = sqrt((1 - a) / a)``, the noise level of ``y = x_t / sqrt(a) = x0 + sigma eps``; ``a`` in (0, 1]
    (a float or a tensor of any shape; 0 at ``a = 1``). float64, ``alpha_bar``'s shape."""
    a = as_tensor(alpha_bar, "alpha_bar", dtype=torch.float64)
    if not torch.isfinite(a).all() or bool(((a <= 0) | (a > 1)).any()):
        raise ValueError(f"alpha_bar must lie in (0, 1]; got {a.tolist()}.")
    return torch.sqrt((1 - a) / a)


def alpha_bar_from_sigma(sigma) -> torch.Tensor:
    """``a = 1 / (1 + sigma^2)``, the inverse of ``sigma_from_alpha_bar``; ``sigma >= 0``. float64."""
    s = as_tensor(sigma, "sigma", dtype=torch.float64)
    if not torch.isfinite(s).all() or bool((s < 0).any()):
        raise ValueError(f"sigma must be finite and >= 0 (a noise level); got {s.tolist()}.")
    return 1 / (1 + s**2)


# --- One step of each reverse process --------------------------------------------------------------

def _step_setup(x_t, score, alpha_bar_t, alpha_bar_next):
    """``(x_t, score, sqrt(a), sqrt(a'), sigma, sigma')``, shaped to multiply ``x_t``."""
    x_t, score = paired_tensors(x_t, score, "x_t", "score")
    a = unit_coefficient(alpha_bar_t, "alpha_bar_t", x_t, allow_one=False)
    a_next = unit_coefficient(alpha_bar_next, "alpha_bar_next", x_t, allow_one=True)
    return x_t, score, a.sqrt(), a_next.sqrt(), ((1 - a) / a).sqrt(), ((1 - a_next) / a_next).sqrt()


def probability_flow_step(x_t, score, alpha_bar_t, alpha_bar_next) -> torch.Tensor:
    """One Euler step of the probability-flow ODE (Song 2021, Eq. (13)) in DDIM's variables: ``(B, ...)``.

    ``y' = y + (sigma' - sigma) eps`` with ``y = x_t / sqrt(a)``, ``eps = -sqrt(1 - a) s``; returns
    ``x' = sqrt(a') y'``. This is DDIM's step with ``eta = 0``. ``alpha_bar_next`` in (0, 1] may lie on either
    side of ``alpha_bar_t``: above it the step removes noise, below it runs the ODE forwards (DDIM inversion).
    """
    x_t, score, sa, sa_next, sigma, sigma_next = _step_setup(x_t, score, alpha_bar_t, alpha_bar_next)
    eps = -sigma * sa * score  # -sqrt(1 - a) s, the slope dy/dsigma
    y = x_t / sa
    return sa_next * (y + (sigma_next - sigma) * eps)


def reverse_sde_step(x_t, score, alpha_bar_t, alpha_bar_next, noise) -> torch.Tensor:
    """One Euler-Maruyama step of the reverse-time SDE (Song 2021, Eq. (6)) in DDIM's variables: ``(B, ...)``.

    ``y' = y + (sigma^2 - sigma'^2) grad_y log p + sqrt(sigma^2 - sigma'^2) z``, ``grad_y log p = sqrt(a) s``,
    ``z = noise (B, ...)`` standard normal; returns ``x' = sqrt(a') y'``. The drift is ``(sigma + sigma') / sigma``
    times the ODE's (twice it for small steps), and the step adds back noise. Reverse time only: ``alpha_bar_next``
    in (``alpha_bar_t``, 1].
    """
    x_t, score, sa, sa_next, sigma, sigma_next = _step_setup(x_t, score, alpha_bar_t, alpha_bar_next)
    noise = paired_tensors(x_t, noise, "x_t", "noise")[1]
    if bool((sa_next <= sa).any()):
        raise ValueError("the reverse SDE runs towards the data: alpha_bar_next must be larger than alpha_bar_t "
                         f"(less noise); got alpha_bar_t = {(sa**2).flatten().tolist()} and alpha_bar_next = "
                         f"{(sa_next**2).flatten().tolist()}.")
    dvar = sigma**2 - sigma_next**2  # > 0: the noise variance this step removes
    y = x_t / sa
    return sa_next * (y + dvar * sa * score + dvar.sqrt() * noise)


# --- Whole paths on a grid of timesteps ------------------------------------------------------------

def _grid(timesteps, schedule: NoiseSchedule) -> tuple[list[int], list[float]]:
    """The timesteps as ints, and alpha_bar at each of them followed by 1 (the data)."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
    empty = isinstance(timesteps, Sequence) and len(timesteps) == 0  # [] would read as a float tensor
    ts = torch.zeros(0, dtype=torch.long) if empty else check_timesteps(timesteps, schedule.num_timesteps, "timesteps")
    if ts.ndim != 1 or len(ts) == 0 or bool((ts[1:] >= ts[:-1]).any()):
        raise ValueError(f"timesteps must be a non-empty 1-D sequence of decreasing timesteps (noisiest first), "
                         f"got {ts.tolist()[:8]}{' ...' if ts.numel() > 8 else ''}.")
    return ts.tolist(), schedule.alphas_cumprod[ts].tolist() + [1.0]


def solve_probability_flow(score_fn: Callable, x_start: torch.Tensor, timesteps: Sequence[int],
                           schedule: NoiseSchedule, solver: str = "euler") -> torch.Tensor:
    """The probability-flow ODE from ``x_start`` at ``timesteps[0]`` down to the data: the path, ``(K + 1, B, ...)``.

    Args:
        score_fn: ``score_fn(x_t, t) -> (B, ...)``, the score at an int timestep ``t``.
        x_start: ``(B, ...)`` the points at ``timesteps[0]``.
        timesteps: ``K`` decreasing int timesteps; after the last one comes ``alpha_bar = 1``.
        schedule: the ``NoiseSchedule`` that gives ``alpha_bar`` at each timestep.
        solver: ``"euler"`` (``probability_flow_step``: DDIM) or ``"heun"`` (second order: Euler's step, then
            the average of the slopes at both ends; the last step, to ``sigma = 0``, is Euler's, as in Karras
            et al. 2022, Algorithm 1).
    """
    solver = check_choice("solver", solver, ODE_SOLVERS)
    ts, ab = _grid(timesteps, schedule)
    path = [x_start]
    x = x_start
    for k, t in enumerate(ts):
        s = score_fn(x, t)
        x_next = probability_flow_step(x, s, ab[k], ab[k + 1])  # Euler: DDIM's step
        if solver == "heun" and k + 1 < len(ts):
            # Heun: the same step again, with the mean of the slopes eps = -sqrt(1 - a) s at both of its ends
            eps = (epsilon_from_score(s, ab[k]) + epsilon_from_score(score_fn(x_next, ts[k + 1]), ab[k + 1])) / 2
            x_next = probability_flow_step(x, score_from_epsilon(eps, ab[k]), ab[k], ab[k + 1])
        x = x_next
        path.append(x)
    return torch.stack(path)


def solve_reverse_sde(score_fn: Callable, x_start: torch.Tensor, timesteps: Sequence[int], schedule: NoiseSchedule,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """The reverse-time SDE by Euler-Maruyama from ``x_start`` down to the data: the path, ``(K + 1, B, ...)``.

    Arguments as ``solve_probability_flow``; ``generator`` draws one ``z`` of ``x_start``'s shape per step, on
    the generator's device, with ``x_start``'s dtype (the last step, to ``sigma = 0``, draws one too).
    """
    check_generator(generator)
    ts, ab = _grid(timesteps, schedule)
    path = [x_start]
    x = x_start
    device = generator.device if generator is not None else x_start.device
    for k, t in enumerate(ts):
        z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        x = reverse_sde_step(x, score_fn(x, t), ab[k], ab[k + 1], z)
        path.append(x)
    return torch.stack(path)
