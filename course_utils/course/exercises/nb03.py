"""Checkers for notebook 03, the reverse process.

Each ``check_*`` takes the learner's function, runs it on fixed inputs, and compares the result
with the package's own code (``reverse``, ``parameterization``, ``forward``). When the answer
is wrong, the checker tries the common slips (a missing square root, the wrong alpha, the sum
instead of the mean) and names the one it recognises.

``*_question`` return a widget: a question with a Check button.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...data import gaussian_mixture_params, make_toy2d
from ...forward import forward_step, q_sample
from ...oracle import GaussianMixtureOracle
from ...parameterization import x0_from_epsilon
from ...reverse import ddpm_mean
from ...schedules import NoiseSchedule, get_schedule
from .core import CheckResult, ask_choice, ask_number, check_cases

# --- Exercise 1: x0 from a noise prediction -------------------------------------------------------

def _predict_x0_cases() -> list:
    # The course text's forward example, unrounded: x0 = [0.8, -0.3], eps = [0.5, -0.7], beta = 0.02.
    x0 = torch.tensor([0.8, -0.3], dtype=torch.float64)
    eps = torch.tensor([0.5, -0.7], dtype=torch.float64)
    x1 = forward_step(x0, 0.02, eps)
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps_b = torch.randn(4, 2, generator=g, dtype=torch.float64)
    cases = []
    for args in ((x1, eps, 0.98), (x_t, eps_b, 0.3), (x_t, eps_b, 0.01)):
        x, e, a = args
        slips = [
            ((x - (1 - a) * e) / a**0.5, "Take the square root of (1 - alpha_bar_t): the noise in x_t is "
                                         "scaled by sqrt(1 - alpha_bar_t), not by (1 - alpha_bar_t)."),
            ((x - (1 - a) ** 0.5 * e) / a, "Divide by sqrt(alpha_bar_t), not by alpha_bar_t: the signal in "
                                           "x_t is sqrt(alpha_bar_t) * x0."),
            (x - (1 - a) ** 0.5 * e, "You removed the noise but did not undo the shrinking of the signal: "
                                     "divide by sqrt(alpha_bar_t)."),
            ((x + (1 - a) ** 0.5 * e) / a**0.5, "Check the sign: the noise was added, so subtract it."),
            (x * a**0.5 - (1 - a) ** 0.5 * e, "Divide by sqrt(alpha_bar_t) rather than multiply."),
        ]
        cases.append((args, x0_from_epsilon(x, e, a), slips))
    return cases


def check_predict_x0(predict_x0: Callable) -> CheckResult:
    """Exercise 1: ``predict_x0(x_t, eps, alpha_bar_t)`` inverts ``x_t = sqrt(a) x0 + sqrt(1 - a) eps``."""
    return check_cases(
        "Exercise 1 (predict_x0)", predict_x0, _predict_x0_cases(),
        hint="Solve x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps for x0.",
    )


# --- Exercise 2: the reverse-step mean (the course text's manual reverse step) ---------------------------

def _reverse_mean_cases() -> list:
    # The course text's Exercise 2: x_T = [0.1, 0.9, -0.5], beta_T = 0.02, alpha_bar_T = 0.001,
    # eps = [0.3, -0.1, 0.2] -> mean about [0.0950, 0.9112, -0.5091].
    ex2 = (torch.tensor([0.1, 0.9, -0.5], dtype=torch.float64), torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64),
           0.02, 0.001)
    # The course text's reverse example: x1 from the forward step, beta = 0.02, alpha_bar = 0.98 -> [0.8, -0.3].
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    seed = (x1, torch.tensor([0.5, -0.7], dtype=torch.float64), 0.02, 0.98)
    g = torch.Generator().manual_seed(4)
    batch = (torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64),
             0.01, 0.4)
    cases = []
    for args in (ex2, seed, batch):
        x, e, b, a = args
        slips = [
            ((x - b / (1 - a) ** 0.5 * e) / a**0.5, "Divide by sqrt(alpha_t) = sqrt(1 - beta_t), the signal kept by "
                                                    "this one step, not by sqrt(alpha_bar_t)."),
            ((x - b / (1 - a) * e) / (1 - b) ** 0.5, "The noise coefficient is beta_t / sqrt(1 - alpha_bar_t): "
                                                     "take the square root of (1 - alpha_bar_t)."),
            ((x - b**0.5 * e) / (1 - b) ** 0.5, "The noise coefficient is beta_t / sqrt(1 - alpha_bar_t), "
                                                "not sqrt(beta_t) (they agree only when alpha_bar_t = alpha_t)."),
            (x - b / (1 - a) ** 0.5 * e, "Don't forget the factor 1 / sqrt(alpha_t) = 1 / sqrt(1 - beta_t) in front."),
            (x0_from_epsilon(x, e, a), "That is the estimate of the clean x0, a jump all the way to the end. "
                                       "The mean takes one step only: "
                                       "(x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(1 - beta_t)."),
        ]
        cases.append((args, ddpm_mean(x, e, b, a), slips))
    return cases


def check_reverse_mean(reverse_mean: Callable) -> CheckResult:
    """Exercise 2: ``reverse_mean(x_t, eps_pred, beta_t, alpha_bar_t)`` equals ``ddpm_mean``."""
    return check_cases(
        "Exercise 2 (reverse_mean)", reverse_mean, _reverse_mean_cases(),
        hint="mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_pred) / sqrt(1 - beta_t).",
    )


# --- Exercise 3: the simplified training loss ------------------------------------------------------

def reference_training_loss(model: Callable, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                            schedule: NoiseSchedule) -> torch.Tensor:
    """The simple loss of Ho et al. 2020 (Eq. (14)): ``mean((noise - model(x_t, t))**2)``.

    ``x0, noise: (B, ...)``, ``t: (B,)`` 0-indexed timesteps. Steps 1 to 3 (drawing ``x0``, ``t``
    and ``noise``) are the caller's, so the result is deterministic. Returns a 0-d tensor.
    """
    from ...training import simple_loss

    return simple_loss(model, x0, t, noise, schedule.alphas_cumprod.to(x0.dtype))  # steps 4 to 6


def _training_loss_cases() -> list:
    schedule = get_schedule("cosine")
    means, std = gaussian_mixture_params()
    oracle = GaussianMixtureOracle(means, std, schedule)

    def zero_model(x, t):
        return torch.zeros_like(x)

    def shrink_model(x, t):  # a crude denoiser: it depends on x and on t
        return 0.5 * x * (t[:, None].to(x.dtype) / 1000)

    g = torch.Generator().manual_seed(5)
    x0 = make_toy2d("gaussian_mixture", 256, seed=5)
    t = torch.randint(0, schedule.num_timesteps, (256,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    a = schedule.alphas_cumprod[t].float()[:, None]
    cases = []
    for model in (oracle, shrink_model, zero_model):
        x_t = q_sample(x0, t, noise, schedule)
        pred = model(x_t, t)
        slips = [
            (torch.mean((x0 - pred) ** 2), "The target is the noise that was added, not the clean x0."),
            (torch.mean((noise - pred).abs()), "Square the error (mean squared error), don't take its absolute value."),
            (torch.sum((noise - pred) ** 2), "Average over every coordinate (torch.mean or F.mse_loss), not the sum."),
            (torch.mean((noise - pred) ** 2, dim=tuple(range(1, x0.ndim))),
             "Return one number: the mean over the batch as well as over the coordinates."),
            (torch.mean((noise - model(x0, t)) ** 2), "Give the model the noisy x_t (step 4), not the clean x0."),
            (torch.mean((noise - model(a * x0 + (1 - a) * noise, t)) ** 2),
             "Form x_t with square roots: sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise (or use q_sample)."),
        ]
        cases.append(((model, x0, t, noise, schedule), reference_training_loss(model, x0, t, noise, schedule), slips))
    return cases


def check_training_loss(training_loss: Callable) -> CheckResult:
    """Exercise 3: ``training_loss(model, x0, t, noise, schedule)`` on an exact denoiser and two others."""
    return check_cases(
        "Exercise 3 (training_loss)", training_loss, _training_loss_cases(),
        hint="Form x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise (q_sample does it), "
             "call model(x_t, t), and return the mean of (noise - prediction)**2.",
        atol=1e-5, rtol=1e-4,
    )


# --- Questions -------------------------------------------------------------------------------------

DDIM_OPTIONS = (
    "two different samples, because each run draws its own noise",
    "the same sample twice: after x_T, DDIM with eta = 0 draws no noise",
    "the same sample only if the number of steps is 1000",
    "an error: DDIM needs the generator at every step",
)


def ddim_determinism_question():
    """A multiple-choice widget: what DDIM with eta = 0 does with a second generator."""
    return ask_choice(
        "Question A (DDIM and randomness)",
        "DDIM with eta = 0 is run twice from the same starting noise x_T, each run with its own "
        "torch.Generator (different seeds). What comes out?",
        DDIM_OPTIONS,
        answer=DDIM_OPTIONS[1],
        hints={
            DDIM_OPTIONS[0]: "That is DDPM. Look at DDIM's update with eta = 0: is any noise drawn after x_T?",
            DDIM_OPTIONS[2]: "The number of steps changes the path's accuracy, not whether it is random.",
            DDIM_OPTIONS[3]: "A generator is accepted but only used when eta > 0.",
        },
        explanation="With eta = 0 every DDIM step is a fixed function of x_t, so the generator is never "
                    "used after x_T is drawn: the sample is a deterministic function of the starting noise. "
                    "DDPM draws fresh noise at every step but the last, so its two runs differ.",
    )


def zero_model_loss_question():
    """A number widget: the simple loss of a model that always predicts zero noise."""
    return ask_number(
        "Question B (a model that predicts zero)",
        "A lazy 'network' always outputs zeros. What is its expected training loss, the mean of "
        "(eps - 0)^2 over all coordinates? (Two decimals are enough.)",
        expected=1.0, atol=0.05,
        hint="Each coordinate of eps is drawn from N(0, 1). What is the mean of its square?",
    )
