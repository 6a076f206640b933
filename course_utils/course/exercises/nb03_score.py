"""Checkers for notebook 03's score section: Builds 3 and 4 (re-exported by ``nb03``).

- Build 3, ``check_mixture_score``: the score of the noised Gaussian mixture, ``mixture_score(x_t, means, std,
  alpha_bar_t)``, graded on exact values (``GaussianMixtureOracle.score``) on five cases, each wrong answer
  compared with the known slips, then on an outcome: the reverse SDE driven by it turns noise into the mixture.
- Build 4, ``check_tweedie_x0``: Tweedie's formula, ``tweedie_x0(x_t, score, alpha_bar_t)``, graded on exact
  values (``course_utils.score.tweedie_x0``) and slips, then on an outcome: with the exact score it is the
  least-squares denoiser (its error to the true ``x0`` is the oracle's, below that of ``x_t / sqrt(alpha_bar_t)``).

``package_mixture_score`` and ``package_tweedie_x0`` are the package's pieces with the builds' signatures, for
``use_build``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...data import gaussian_mixture_params, make_toy2d
from ...forward import q_sample
from ...metrics.distances import sliced_wasserstein
from ...oracle import GaussianMixtureOracle
from ...schedules import NoiseSchedule, get_schedule
from ...score import solve_reverse_sde
from ...score import tweedie_x0 as package_tweedie_x0
from .core import BuildExercise, CheckResult, Miss, _diagnose, call_learner, expect_close, grade_build

SDE_START = 980  # the reverse SDE starts here, as in the notebook: the noisiest cosine timestep with beta_t <= 0.1
SCORE_THRESHOLD = 0.1  # sliced Wasserstein to the data; the package's score reaches about 0.05 (printed)
_OUTCOME_POINTS, _DATA_SEED, _NOISE_SEED = 2000, 123, 0


def package_mixture_score(x_t: torch.Tensor, means, std: float, alpha_bar_t: float) -> torch.Tensor:
    """Build 3's contract done by the package: ``GaussianMixtureOracle.score`` for equal weights, at the
    ``alpha_bar_t`` given (a one-step schedule whose ``alpha_bar_0`` is ``alpha_bar_t``). ``(B, D)``."""
    one_step = NoiseSchedule(torch.tensor([1.0 - float(alpha_bar_t)], dtype=torch.float64))
    return GaussianMixtureOracle(means, std, one_step).score(x_t, 0)


BUILD_SCORE = BuildExercise(
    "Build 3 (mixture_score)",
    "the score of the noised mixture, mixture_score(x_t, means, std, alpha_bar_t) -> (B, D): the gradient of "
    "log p_t at x_t, for equal-weight blobs N(mu_k, std^2 I) noised to alpha_bar_t.",
    ("exact values on five cases: the 8 blobs at alpha_bar = 0.98, 0.6 and 0.03, three wide blobs, and one "
     "point mass in 3-D (within 1e-5), with a hint for each known slip",
     f"outcome: the reverse SDE driven by your score, from N(0, I) at t = {SDE_START} of the cosine schedule, "
     f"turns {_OUTCOME_POINTS:,} points into the mixture: sliced Wasserstein distance below {SCORE_THRESHOLD:g} "
     "from the data"),
)

BUILD_TWEEDIE = BuildExercise(
    "Build 4 (tweedie_x0)",
    "Tweedie's formula, tweedie_x0(x_t, score, alpha_bar_t) -> E[x0 | x_t], the same shape as x_t.",
    ("exact values on four cases (alpha_bar = 0.98, 0.5, 0.01 and a 3-D batch; within 1e-6), with a hint for "
     "each known slip",
     "outcome: with the exact score of the 8-blob mixture it is the least-squares denoiser: its mean squared "
     "error to the true x0 at t = 100, 400 and 700 equals the exact posterior mean's, and is below that of "
     "x_t / sqrt(alpha_bar_t)"),
)


def _expect_cases(fn: Callable, cases: list, what: str, hint: str, atol: float, rtol: float) -> None:
    """``Miss`` at the first case ``(args, expected, slips, where)`` that ``fn`` gets wrong, with the hint of
    the slip its answer matches, if any."""
    for args, expected, slips, where in cases:
        got = call_learner(fn, *args)
        try:
            expect_close(got, expected, f"{what} {where}", hint, atol=atol, rtol=rtol)
        except Miss:
            slip = _diagnose(got, slips) if isinstance(got, torch.Tensor) else None
            if slip:
                raise Miss(f"{what} {where} is off. {slip}") from None
            raise


# --- Build 3: the score of the noised mixture ------------------------------------------------------

_RESPONSIBILITY_HINT = ("Weight each blob's score by its responsibility r_k(x_t), the softmax over k of "
                        "-|x_t - sqrt(alpha_bar_t) mu_k|^2 / (2 var), not by 1/K: near a blob, that blob's score "
                        "must dominate.")


def _score_variants(x: torch.Tensor, mu: torch.Tensor, std: float, a: float) -> tuple[torch.Tensor, list]:
    """The right score, and ``(wrong score, hint)`` for each known slip."""
    def score(centres, var, uniform=False, power=1.0, sign=1.0):
        diff = x[:, None, :] - centres[None]  # (B, K, D)
        logits = -(diff**2).sum(-1) / (2 * var)  # (B, K)
        r = torch.full_like(logits, 1 / len(mu)) if uniform else torch.softmax(logits, dim=1)
        return sign * (r[..., None] * (-diff / var**power)).sum(1)

    centres, var = a**0.5 * mu, a * std**2 + 1 - a
    slips = [
        (score(mu, var), "The noised blobs are centred at sqrt(alpha_bar_t) * mu_k, not at mu_k: the forward "
                         "process shrinks the signal before adding noise."),
        (score(centres, 1 - a), "Each noised blob has variance alpha_bar_t * std**2 + (1 - alpha_bar_t): its own "
                                "spread (shrunk) plus the noise's; 1 - alpha_bar_t alone is the noise's only."),
        (score(centres, std**2 + 1 - a), "The blob's own spread shrinks with the signal: its variance after "
                                         "noising is alpha_bar_t * std**2 + (1 - alpha_bar_t), not std**2 + "
                                         "(1 - alpha_bar_t)."),
        (score(centres, a * std + 1 - a), "std is a standard deviation: the variance uses std**2, "
                                          "var = alpha_bar_t * std**2 + (1 - alpha_bar_t)."),
        (score(centres, var, power=0.5), "Divide by the variance var, not by its square root: the score of "
                                         "N(c, var I) is -(x - c) / var."),
        (score(centres, var, sign=-1.0), "Check the sign: the score points towards higher density, -(x_t - c) / var, "
                                         "from x_t towards the centre c."),
        (score(centres, var, uniform=True), _RESPONSIBILITY_HINT),
    ]
    return score(centres, var), slips


def _score_cases() -> list:
    means, std = gaussian_mixture_params()  # (8, 2), 0.2
    means = means.double()
    wide = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
    point = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    cases = []
    for mu, std_k, a, seed, where in ((means, std, 0.98, 1, "at alpha_bar = 0.98"),
                                      (means, std, 0.6, 2, "at alpha_bar = 0.6"),
                                      (means, std, 0.03, 3, "at alpha_bar = 0.03"),
                                      (wide, 0.5, 0.5, 4, "for three wide blobs (std 0.5)"),
                                      (point, 0.0, 0.7, 5, "for one point mass in 3-D")):
        g = torch.Generator().manual_seed(seed)
        x0 = mu[torch.randint(len(mu), (12,), generator=g)] + std_k * torch.randn(12, mu.shape[1], generator=g,
                                                                                    dtype=torch.float64)
        x_t = a**0.5 * x0 + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)  # (12, D)
        expected, slips = _score_variants(x_t, mu, std_k, a)
        cases.append(((x_t, mu, std_k, a), expected, slips, where))
    return cases


def _outcome_data(num_points: int) -> torch.Tensor:
    return make_toy2d("gaussian_mixture", num_points, seed=_DATA_SEED)


def _sde_samples(mixture_score: Callable, num_points: int) -> torch.Tensor:
    """``num_points`` ends of the reverse SDE driven by ``mixture_score`` from N(0, I) at ``SDE_START``."""
    schedule = get_schedule("cosine")
    means, std = gaussian_mixture_params()
    ab = schedule.alphas_cumprod.tolist()
    g = torch.Generator().manual_seed(_NOISE_SEED)
    x_start = torch.randn(num_points, 2, generator=g, dtype=torch.float64)
    return solve_reverse_sde(lambda x, t: mixture_score(x, means.double(), std, ab[t]), x_start,
                             range(SDE_START, -1, -1), schedule, generator=g)[-1]


_package_sde_distance: dict[int, tuple[float, float]] = {}


def _package_distances(num_points: int) -> tuple[float, float]:
    """(the package's score, a second draw of the data): sliced Wasserstein to the outcome's data."""
    if num_points not in _package_sde_distance:
        data = _outcome_data(num_points)
        other = make_toy2d("gaussian_mixture", num_points, seed=_DATA_SEED + 1)
        _package_sde_distance[num_points] = (sliced_wasserstein(_sde_samples(package_mixture_score, num_points), data),
                                             sliced_wasserstein(other, data))
    return _package_sde_distance[num_points]


def check_mixture_score(mixture_score: Callable, num_points: int = _OUTCOME_POINTS) -> CheckResult:
    """Build 3: ``mixture_score(x_t, means, std, alpha_bar_t)`` against ``GaussianMixtureOracle.score``, then the
    reverse SDE it drives (``num_points`` samples) against the data."""
    def values():
        _expect_cases(mixture_score, _score_cases(), "Your score", atol=1e-5, rtol=1e-5,
                      hint="For each blob k: c_k = sqrt(alpha_bar_t) * mu_k, var = alpha_bar_t * std**2 + "
                           "(1 - alpha_bar_t); the score is sum_k r_k * -(x_t - c_k) / var with r_k the softmax "
                           "over k of -|x_t - c_k|^2 / (2 var).")
        return "exact on the five cases"

    def outcome():
        samples = _sde_samples(mixture_score, num_points)
        if not torch.isfinite(samples).all():
            raise Miss("The reverse SDE driven by your score produced NaN or inf: is your softmax stable? "
                       "torch.softmax(logits, dim=1) subtracts the largest logit for you.")
        distance = sliced_wasserstein(samples.float(), _outcome_data(num_points))
        package, data_vs_data = _package_distances(num_points)
        figures = (f"sliced Wasserstein distance to the data {distance:.3f} (threshold {SCORE_THRESHOLD:g}; the "
                   f"package's score {package:.3f}; a second draw of the data {data_vs_data:.3f})")
        if distance > SCORE_THRESHOLD:
            raise Miss(f"The reverse SDE driven by your score does not reach the mixture: {figures}.")
        return f"the reverse SDE driven by your score reaches the mixture: {figures}"

    return grade_build(BUILD_SCORE, values, outcome)


# --- Build 4: Tweedie's formula ---------------------------------------------------------------------

def _tweedie_slips(x: torch.Tensor, s: torch.Tensor, a: float) -> list:
    sa = a**0.5
    return [
        ((x + (1 - a) ** 0.5 * s) / sa, "Multiply the score by (1 - alpha_bar_t), the noise's variance, not by its "
                                        "square root: (x_t + (1 - alpha_bar_t) * score) / sqrt(alpha_bar_t)."),
        ((x - (1 - a) * s) / sa, "Check the sign: the score points towards the data, so Tweedie ADDS it: "
                                 "(x_t + (1 - alpha_bar_t) * score) / sqrt(alpha_bar_t)."),
        ((x + (1 - a) * s) / a, "Divide by sqrt(alpha_bar_t), not by alpha_bar_t: the signal in x_t is "
                                "sqrt(alpha_bar_t) * x0."),
        (x + (1 - a) * s, "That is sqrt(alpha_bar_t) * E[x0 | x_t]: divide by sqrt(alpha_bar_t) to undo the "
                          "shrinking of the signal."),
        ((x + (1 - a) * s) * sa, "Divide by sqrt(alpha_bar_t) rather than multiply."),
        ((x + s) / sa, "The score is scaled by the noise variance (1 - alpha_bar_t) before it is added to x_t."),
        (x / sa + (1 - a) * s, "Divide the whole sum x_t + (1 - alpha_bar_t) * score by sqrt(alpha_bar_t), not x_t "
                               "alone."),
    ]


def _tweedie_cases() -> list:
    cases = []
    for a, shape, seed in ((0.98, (6, 2), 11), (0.5, (6, 2), 12), (0.01, (6, 2), 13), (0.3, (4, 3), 14)):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        s = torch.randn(shape, generator=g, dtype=torch.float64)
        where = f"at alpha_bar = {a:g}" if shape[1] == 2 else f"for a {shape} batch at alpha_bar = {a:g}"
        cases.append(((x, s, a), package_tweedie_x0(x, s, a), _tweedie_slips(x, s, a), where))
    return cases


OUTCOME_TIMESTEPS = (100, 400, 700)


def check_tweedie_x0(tweedie_x0: Callable) -> CheckResult:
    """Build 4: ``tweedie_x0(x_t, score, alpha_bar_t)`` against ``course_utils.score.tweedie_x0``, then its error
    as a denoiser with the exact score of the 8-blob mixture."""
    def values():
        _expect_cases(tweedie_x0, _tweedie_cases(), "Your E[x0 | x_t]", atol=1e-6, rtol=1e-6,
                      hint="E[x0 | x_t] = (x_t + (1 - alpha_bar_t) * score) / sqrt(alpha_bar_t).")
        return "exact on the four cases"

    def outcome():
        schedule = get_schedule("cosine")
        oracle = GaussianMixtureOracle(*gaussian_mixture_params(), schedule)
        x0 = make_toy2d("gaussian_mixture", 2000, seed=_DATA_SEED).double()
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(_NOISE_SEED), dtype=torch.float64)
        rows = []
        for t in OUTCOME_TIMESTEPS:
            a = schedule.alphas_cumprod[t].item()
            x_t = q_sample(x0, t, noise, schedule)
            yours = call_learner(tweedie_x0, x_t, oracle.score(x_t, t), a)
            expect_close(yours, oracle.posterior_mean(x_t, t), f"Your denoiser at t = {t}",
                         "Tweedie's formula with the exact score is the exact posterior mean.", atol=1e-6, rtol=1e-6)
            mse = [float(((est - x0) ** 2).sum(1).mean()) for est in (yours, x_t / a**0.5)]
            if not mse[0] < mse[1]:
                raise Miss(f"At t = {t} your denoiser's error ({mse[0]:.3f}) is not below x_t / sqrt(alpha_bar_t)'s.")
            rows.append(f"t = {t}: {mse[0]:.3f} vs {mse[1]:.3f}")
        return ("mean squared error to the true x0, yours (= the exact posterior mean's) vs x_t / sqrt(alpha_bar_t): "
                + "; ".join(rows))

    return grade_build(BUILD_TWEEDIE, values, outcome)


__all__ = ["BUILD_SCORE", "BUILD_TWEEDIE", "SDE_START", "check_mixture_score", "check_tweedie_x0",
           "package_mixture_score", "package_tweedie_x0"]
