"""Checkers for notebook 08, flow matching.

Exercises: the straight path ``interpolate``, the flow-matching loss with its noise and sigma
given, one Euler step of the flow ODE, and the ``straightness`` of a sampled path; plus questions
on where one Euler step lands and on why reflow straightens the paths.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ... import flow_matching as fm
from ...metrics.distances import straightness
from .core import CheckResult, ask_choice, check_cases

_BATCH_HINT = ("sigma holds one number per example, shape (B,), while x0 is (B, ...): give it the sample's "
               "other axes, e.g. sigma.view(-1, *[1] * (x0.ndim - 1)), so each example gets its own sigma.")


def _batch_hint(fn: Callable) -> Callable:
    """``fn`` with a shape error explained: a per-example sigma needs the sample's other axes."""

    def wrapped(*args):
        try:
            return fn(*args)
        except RuntimeError as err:
            if "must match the size" in str(err) or "cannot be broadcast" in str(err):
                raise RuntimeError(f"{err}. {_BATCH_HINT}") from err
            raise  # NotImplementedError (a RuntimeError) included: it means "not attempted"

    return wrapped


def _col(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.view(-1, *[1] * (x.ndim - 1))  # (B, 1, ...)


def _pairs(seed: int):
    """``(x0, eps, sigma)`` cases; B differs from every other axis except in the last, square case."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for shape in ((3, 2), (2, 1, 4, 4), (4, 4)):
        x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        out.append((x0, eps, torch.rand(shape[0], generator=g)))
    return out


# --- Exercise 1: the straight path ------------------------------------------------------------------


def check_interpolate(fn: Callable) -> CheckResult:
    """``fn(x0, eps, sigma)``: ``(B, ...)``, ``(B, ...)``, ``(B,)`` -> ``(1 - sigma) x0 + sigma eps``."""
    cases = []
    for x0, eps, sigma in _pairs(0):
        s = _col(sigma, x0)
        slips = [((1 - s) * eps + s * x0, "The convention is reversed: sigma = 0 is data and sigma = 1 is noise, so "
                                          "x0 gets the weight (1 - sigma) and eps the weight sigma."),
                 ((1 - s).sqrt() * x0 + s.sqrt() * eps, "No square roots: those give DDPM's curved path. Flow "
                                                         "matching mixes x0 and eps linearly in sigma."),
                 (x0 + s * eps, "The data must fade out as the noise comes in: weight x0 by (1 - sigma).")]
        if x0.shape[-1] == len(sigma):  # the square case: a sigma left as (B,) broadcasts along the last axis
            slips.append(((1 - sigma) * x0 + sigma * eps, _BATCH_HINT + " Yours matched sigma with the LAST axis."))
        cases.append(((x0.clone(), eps.clone(), sigma.clone()), fm.interpolate(x0, eps, sigma), slips))
    return check_cases("Exercise 1 (the straight path)", _batch_hint(fn), cases, atol=1e-6, rtol=1e-6,
                       hint="x_sigma = (1 - sigma) * x0 + sigma * eps, with sigma shaped (B, 1, ...).")


# --- Exercise 2: the loss ---------------------------------------------------------------------------


class _FixedVelocityNet(torch.nn.Module):
    """A small fixed network ``(B, ...)``, timestep ``(B,)`` -> ``(B, ...)`` that depends on both,
    so a wrong timestep scale or a wrong input shows in the loss."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a, self.b = torch.randn(1, generator=g), torch.randn(1, generator=g)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=x.dtype).reshape(-1)
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
        return torch.tanh(self.a * x) + _col(t / 1000.0, x) * self.b * x.roll(1, dims=-1)


def check_flow_loss(fn: Callable) -> CheckResult:
    """``fn(model, x0, eps, sigma)`` -> the scalar ``mean (model(x_sigma, 1000 sigma) - (eps - x0))^2``."""
    model = _FixedVelocityNet()
    cases = []
    for x0, eps, sigma in _pairs(1):
        s = _col(sigma, x0)
        x, x_rev = (1 - s) * x0 + s * eps, (1 - s) * eps + s * x0
        target = eps - x0

        def mse(pred, tgt):
            return F.mse_loss(pred, tgt)

        slips = [(mse(model(x, sigma * 1000), x0 - eps), "The velocity is d x_sigma / d sigma = eps - x0 (towards "
                                                         "the noise, as sigma grows); you used x0 - eps."),
                 (mse(model(x, sigma), target), "The network sees the timestep sigma * 1000, the scale its "
                                                "timestep embedding was built for; you passed sigma itself."),
                 (mse(model(x, (1 - sigma) * 1000), target), "The timestep is sigma * 1000 (sigma = 1 is noise, "
                                                              "as timestep 1000 is in DDPM), not (1 - sigma) * 1000."),
                 (mse(model(x_rev, sigma * 1000), target), "x_sigma is (1 - sigma) x0 + sigma eps: sigma = 1 is "
                                                           "noise. Your interpolation is reversed."),
                 (mse(model(x, sigma * 1000), eps), "The target is the velocity eps - x0, not the noise eps: "
                                                    "that is DDPM's target."),
                 (((model(x, sigma * 1000) - target) ** 2).sum(), "Take the mean of the squared error, not the sum.")]
        with torch.no_grad():
            cases.append(((model, x0.clone(), eps.clone(), sigma.clone()),
                          mse(model(fm.interpolate(x0, eps, sigma), sigma * 1000), fm.velocity_target(x0, eps)),
                          slips))
    return check_cases("Exercise 2 (the flow-matching loss)", _batch_hint(fn), cases, atol=1e-6, rtol=1e-5,
                       hint="loss = mean((model(x_sigma, sigma * 1000) - (eps - x0)) ** 2).")


# --- Exercise 3: one Euler step -----------------------------------------------------------------------


def check_euler_step(fn: Callable) -> CheckResult:
    """``fn(x, v, sigma, sigma_next)`` -> ``x + (sigma_next - sigma) v``, with ``sigma > sigma_next`` numbers."""
    g = torch.Generator().manual_seed(2)
    cases = []
    for shape, sigma, sigma_next in (((3, 2), 1.0, 0.75), ((2, 1, 4, 4), 0.6, 0.2), ((5, 2), 0.25, 0.0)):
        x, v = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        slips = [(x + (sigma - sigma_next) * v, "Wrong sign: sampling walks sigma DOWN, so sigma_next - sigma is "
                                                "negative and the step moves against v (v points towards the noise)."),
                 (x - sigma * v, "That is the jump all the way to sigma = 0 (the x0 prediction), not one step to "
                                 "sigma_next."),
                 (x - sigma_next * v, "The step size is the change in sigma, sigma_next - sigma.")]
        cases.append(((x.clone(), v.clone(), sigma, sigma_next), x + (sigma_next - sigma) * v, slips))
    return check_cases("Exercise 3 (one Euler step)", fn, cases, atol=1e-6, rtol=1e-6,
                       hint="x_next = x + (sigma_next - sigma) * v.")


# --- Exercise 4: straightness -------------------------------------------------------------------------


def check_straightness(fn: Callable) -> CheckResult:
    """``fn(trajectory)``: ``(K + 1, B, ...)`` -> ``(B,)`` chord / length, as ``metrics.distances.straightness``."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for shape in ((6, 3, 2), (4, 2, 1, 3, 3), (9, 5, 2)):
        traj = torch.randn(shape, generator=g).cumsum(0)  # (K + 1, B, ...) a random walk per sample
        flat = traj.flatten(2)
        chord = (flat[-1] - flat[0]).norm(dim=-1)
        seg = (flat[1:] - flat[:-1]).norm(dim=-1)  # (K, B)
        slips = [(seg.sum(0) / chord, "Upside down: the straight-line distance (chord) goes on top, so a straight "
                                      "path gives 1 and a bent one less."),
                 (chord / (flat[1:] - flat[0]).norm(dim=-1).sum(0), "The length is the sum of the steps "
                                                                    "|x_{k+1} - x_k|, not of distances from the start."),
                 (chord / seg.pow(2).sum(0), "Add the lengths |x_{k+1} - x_k| of the steps, not their squares."),
                 (chord / seg.sum(0).mean(), "Divide each sample's chord by its own length, not by the batch mean.")]
        cases.append(((traj.clone(),), straightness(traj), slips))
    return check_cases("Exercise 4 (straightness)", fn, cases, atol=1e-5, rtol=1e-5,
                       hint="Flatten each point to a vector; chord = |x_K - x_0|; length = sum_k |x_{k+1} - x_k|; "
                            "return chord / length, one number per sample.")


# --- Questions --------------------------------------------------------------------------------------

ONE_STEP_OPTIONS = [
    "near the data's mean: at sigma = 1 the best velocity is eps - E[x0], whatever the noise",
    "on the mode nearest to the noise: the velocity points at the closest data point",
    "exactly on the data: the paths are straight lines, so one Euler step is exact",
    "where it started: one step does not move the sample",
]


def one_step_question():
    return ask_choice(
        "Question A (one Euler step)",
        "A flow-matching model trained to perfection on the 8 Gaussians takes ONE Euler step, from sigma = 1 "
        "to 0: x0 = eps - v(eps, 1). Where do its samples land?",
        ONE_STEP_OPTIONS, ONE_STEP_OPTIONS[0],
        explanation="At sigma = 1 the input is pure noise and says nothing about which x0 it will be paired "
                    "with, so the best prediction of eps - x0 is eps - E[x0]; the step lands on E[x0], the "
                    "centre of the ring, for every noise. The grid above shows it.",
        hints={ONE_STEP_OPTIONS[1]: "What does the network know about x0 when its input is pure noise, "
                                    "independent of x0?",
               ONE_STEP_OPTIONS[2]: "Each training pair's path is straight, but the model learns the AVERAGE "
                                    "velocity over all pairs through a point, and those average directions bend.",
               ONE_STEP_OPTIONS[3]: "That is DDIM-1 with diffusers' default 'leading' spacing, which runs its one "
                                    "step at t = 0. The flow step goes from sigma = 1 all the way to 0."})


REFLOW_OPTIONS = [
    "its pairs come from one ODE, so their lines do not cross and each point has one direction",
    "it trains longer, and every flow becomes straighter with more training",
    "it samples with Heun's second-order method instead of Euler's",
    "it drops the noise: the new model maps data to data",
]


def reflow_question():
    return ask_choice(
        "Question B (why reflow straightens)",
        "Reflow trains a flow again on pairs (ODE endpoint, its noise) drawn from the first flow. Why are "
        "the new paths straighter?",
        REFLOW_OPTIONS, REFLOW_OPTIONS[0],
        explanation="With independent pairs, many straight lines pass through each point, heading to different "
                    "data; the model learns their average, and the averaged field bends. The ODE's pairs are "
                    "deterministic and its paths never cross, so the lines between them rarely cross either: "
                    "the average through a point is close to the one line that passes there, and the new "
                    "flow follows those lines (Liu et al. 2022, 'Flow straight and fast').",
        hints={REFLOW_OPTIONS[1]: "The first flow's paths stay bent however long it trains: the bend comes from "
                                  "averaging crossing lines, not from too little training.",
               REFLOW_OPTIONS[2]: "The notebook samples both flows with the same Euler sampler; only the training "
                                  "pairs changed.",
               REFLOW_OPTIONS[3]: "The pairs still join noise to data: (ODE endpoint, the noise it started from)."})


__all__ = ["ONE_STEP_OPTIONS", "REFLOW_OPTIONS", "check_euler_step", "check_flow_loss", "check_interpolate",
           "check_straightness", "one_step_question", "reflow_question"]
