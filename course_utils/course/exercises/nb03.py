"""Checkers for notebook 03, the reverse process.

Each ``check_*`` takes the learner's function, runs it on fixed inputs, and compares the result
with the package's own code (``reverse``, ``parameterization``, ``forward``). When the answer
is wrong, the checker tries the common slips (a missing square root, the wrong alpha, the sum
instead of the mean) and names the one it recognises.

Builds 1 and 2 (``check_ddpm_sample``, ``check_ddim_sample``) grade whole sampling loops on the
exact denoiser of the 8-blob mixture: the timesteps the model sees, the generator, the same samples
as the package's ``DDPMSampler`` / ``DDIMSampler`` step by step, and the sliced Wasserstein distance
of their samples to the data. ``package_ddpm_sample`` / ``package_ddim_sample`` are the package's
loops with the builds' signatures (for ``use_build``); ``TracedModel`` records a loop's path.

Builds 3 and 4 (the score of the noised mixture, Tweedie's formula) live in ``nb03_score`` and are
re-exported here: ``nb03.check_mixture_score``, ``nb03.check_tweedie_x0``, ``nb03.package_mixture_score``, ...

``*_question`` return a widget: a question with a Check button.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from ...data import gaussian_mixture_params, make_toy2d
from ...forward import forward_step, q_sample
from ...metrics.distances import sliced_wasserstein
from ...oracle import GaussianMixtureOracle
from ...parameterization import x0_from_epsilon
from ...reverse import ddpm_mean
from ...samplers import DDIMSampler, DDPMSampler, sample_loop
from ...schedules import NoiseSchedule, get_schedule
from .core import (BuildExercise, CheckResult, Miss, ask_choice, ask_number, call_learner, check_cases, expect_close,
                   expect_seeded, grade_build)
# Builds 3 and 4, the score section, live in nb03_score; re-exported so that the notebook calls nb03.check_... alone.
from .nb03_score import (BUILD_SCORE, BUILD_TWEEDIE, SDE_START, check_mixture_score, check_tweedie_x0,  # noqa: F401
                         package_mixture_score, package_tweedie_x0)

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


# --- Builds 1 and 2: the DDPM and DDIM sampling loops --------------------------------------------
#
# Each build is graded in four stages: the timesteps its model calls see (a ``TracedModel`` records
# them), its use of the generator, the same samples as the package's sampler step by step (the
# first step that differs is compared with known slips), and an outcome on a second schedule.

SAMPLE_THRESHOLD = 0.1  # sliced Wasserstein to the data; the package's samplers reach about 0.05 and 0.07
_UNIT_SHAPE, _SEEDED_SHAPE = (8, 2), (4, 2)
_SAMPLE_SEED, _DATA_SEED = 0, 123
_STEP_TOL = 1e-4  # one step recomputed in float64 from the learner's own x_t: float32 rounding is ~1e-7

_X_T_HINT = ("Your starting noise is not x_T = torch.randn(shape, generator=generator): draw it first, before "
             "any other draw, with the default dtype (float32), from the generator you are given.")
_ORDER_HINT = ("Iterate from the noisiest timestep down ({first}, ..., {last}); your loop called the model at "
               "{got} first.")
_SCHEDULE_HINT = ("they matched the package on the cosine schedule: does your loop read the schedule it is given "
                  "(its `schedule` argument), not the notebook's `schedule` variable or one of its own?")


class TracedModel:
    """A model that remembers its calls: ``timesteps`` (ints), ``inputs`` and ``outputs`` (``(B, D)`` each).

    ``path(samples)``: ``(calls + 1, B, D)``, every ``x_t`` the model was given, then the samples.
    """

    def __init__(self, model: Callable):
        self.model = model
        self.timesteps: list[int] = []
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        out = self.model(x_t, t)
        self.timesteps.append(int(torch.as_tensor(t).reshape(-1)[0]))
        self.inputs.append(x_t.detach().clone())
        self.outputs.append(out.detach().clone())
        return out

    def path(self, samples: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.to(samples.dtype) for x in self.inputs] + [samples])


def package_ddpm_sample(model: Callable, schedule: NoiseSchedule, shape: tuple, generator: torch.Generator):
    """Build 1's contract done by the package: ``DDPMSampler`` (posterior variance, no clipping), all T steps."""
    return sample_loop(model, DDPMSampler(schedule, clip_sample=False), shape, schedule.num_timesteps,
                       generator=generator)


def package_ddim_sample(model: Callable, schedule: NoiseSchedule, shape: tuple, num_inference_steps: int,
                        generator: torch.Generator):
    """Build 2's contract done by the package: ``DDIMSampler`` (eta = 0, "leading" spacing, no clipping)."""
    return sample_loop(model, DDIMSampler(schedule, clip_sample=False), shape, num_inference_steps,
                       generator=generator)


BUILD_DDPM = BuildExercise(
    "Build 1 (ddpm_sample)",
    "the whole DDPM sampling loop, ddpm_sample(model, schedule, shape, generator) -> (B, D) samples, "
    "written from the schedule's betas and alphas_cumprod.",
    ("timesteps: one model call per step, at t = T-1, T-2, ..., 0, and samples of shape `shape` "
     "(8 points, the cosine schedule, the exact denoiser)",
     "randomness: the same generator seed gives the same samples, another seed other samples",
     "the same samples as the package's DDPMSampler for the same generator: every step within 1e-4 of "
     "x_(t-1) = mu + sigma_t z recomputed from your x_t, the generator left where the package leaves it",
     f"outcome: 2,000 samples on a second schedule ('linear', with its exact denoiser) at sliced Wasserstein "
     f"distance below {SAMPLE_THRESHOLD:g} from the data"),
)

BUILD_DDIM = BuildExercise(
    "Build 2 (ddim_sample)",
    "the whole DDIM loop with eta = 0, ddim_sample(model, schedule, shape, num_inference_steps, generator) "
    "-> (B, D) samples, on diffusers' 'leading' subsequence of timesteps.",
    ("timesteps: one model call per step, at (n-1)k, ..., 2k, k, 0 with k = T // n (n = 50 and n = 7), "
     "and samples of shape `shape`",
     "randomness: the same generator seed gives the same samples, another seed other samples",
     "the same samples as the package's DDIMSampler for the same generator (n = 50 and 7): every step within "
     "1e-4 of Eq. (12) recomputed from your x_t, and nothing drawn after x_T",
     f"outcome: 2,000 samples in 50 steps on a second schedule ('linear', with its exact denoiser) at sliced "
     f"Wasserstein distance below {SAMPLE_THRESHOLD:g} from the data"),
)


def _unit_setup():
    schedule = get_schedule("cosine")
    return schedule, GaussianMixtureOracle(*gaussian_mixture_params(), schedule)


def _expect_samples(out, shape: tuple, what: str) -> None:
    """``Miss`` unless ``out`` is a tensor of ``shape``."""
    if out is None:
        raise Miss("Your function returned None: did you forget `return x` at the end?")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Miss(f"Return {what} as one tensor of shape `shape` = {shape}, got {got}.")


def _traced_run(loop: Callable, schedule, oracle, *args) -> tuple[TracedModel, torch.Tensor, torch.Generator]:
    """Run the learner's loop on the unit case (``_UNIT_SHAPE``, seed ``_SAMPLE_SEED``) with a traced model."""
    traced, g = TracedModel(oracle), torch.Generator().manual_seed(_SAMPLE_SEED)
    out = call_learner(loop, traced, schedule, _UNIT_SHAPE, *args, g)
    _expect_samples(out, _UNIT_SHAPE, "the samples")
    return traced, out, g


def _check_timesteps_seen(got: list[int], expected: list[int], alternatives: list[tuple[list[int], str]]) -> None:
    """``Miss`` unless the model saw ``expected``; a known wrong list names its slip."""
    if got == expected:
        return
    if got == expected[::-1]:
        raise Miss(_ORDER_HINT.format(first=expected[0], last=expected[-1], got=got[:3]))
    for wrong, hint in alternatives:
        if got == wrong:
            raise Miss(hint)

    def shown(ts):
        return f"{ts[:3]} ... {ts[-2:]} ({len(ts)} calls)" if len(ts) > 5 else f"{ts} ({len(ts)} calls)"
    raise Miss(f"The model should be called once per step, at {shown(expected)}; yours was called at {shown(got)}.")


def _seeded_stage(loop: Callable, schedule, oracle, runs: dict, *args) -> Callable[[], None]:
    """``expect_seeded`` on a small case; skipped when the traced runs did not stay finite (the step stage
    then names the slip, where a NaN would read as 'another result for the same seed')."""
    def stage():
        if not all(torch.isfinite(out).all() for _, out, _ in runs.values()):
            return
        expect_seeded(lambda g: torch.nan_to_num(loop(oracle, schedule, _SEEDED_SHAPE, *args, g)), "set of samples")
    return stage


def _first_bad_step(traced: TracedModel, out: torch.Tensor, expected_step: Callable, slips: Callable,
                    generic: Callable) -> None:
    """Recompute every step from the learner's own ``x_t`` (float64); ``Miss`` at the first that differs."""
    xs = traced.inputs + [out]
    for k, t in enumerate(traced.timesteps):
        x, eps, got = xs[k].double(), traced.outputs[k].double(), xs[k + 1].double()
        want = expected_step(k, t, x, eps)
        if torch.allclose(got, want, atol=_STEP_TOL, rtol=_STEP_TOL):
            continue
        for value, hint in slips(k, t, x, eps):
            if torch.allclose(got, value, atol=_STEP_TOL, rtol=_STEP_TOL):
                raise Miss(hint)
        err = (got - want).abs().max().item()
        raise Miss(generic(k, t, err))


def _expect_start(traced: TracedModel) -> None:
    """``Miss`` unless the first ``x_t`` the model saw is the generator's first draw."""
    x_T = torch.randn(_UNIT_SHAPE, generator=torch.Generator().manual_seed(_SAMPLE_SEED))
    if not torch.allclose(traced.inputs[0].double(), x_T.double(), atol=1e-6):
        raise Miss(_X_T_HINT)


def _outcome_setup(num_points: int):
    """The outcome case: the linear schedule, ``num_points`` of data and the exact denoiser."""
    schedule = get_schedule("linear")
    oracle = GaussianMixtureOracle(*gaussian_mixture_params(), schedule)
    return schedule, make_toy2d("gaussian_mixture", num_points, seed=_DATA_SEED), oracle


@lru_cache(maxsize=8)
def _package_distances(kind: str, num_points: int) -> tuple[float, float]:
    """(the package's sampler, a second draw of the data): sliced Wasserstein to the data on the outcome case."""
    schedule, data, oracle = _outcome_setup(num_points)
    g = torch.Generator().manual_seed(_SAMPLE_SEED)
    shape = (num_points, 2)
    samples = (package_ddpm_sample(oracle, schedule, shape, g) if kind == "ddpm" else
               package_ddim_sample(oracle, schedule, shape, 50, g))
    other = make_toy2d("gaussian_mixture", num_points, seed=_DATA_SEED + 1)
    return sliced_wasserstein(samples, data), sliced_wasserstein(other, data)


def _outcome_stage(loop: Callable, kind: str, num_points: int, *args) -> Callable[[], str]:
    name = {"ddpm": "DDPM", "ddim": "DDIM"}[kind]

    def stage():
        schedule, data, oracle = _outcome_setup(num_points)
        shape = (num_points, 2)
        samples = call_learner(loop, oracle, schedule, shape, *args, torch.Generator().manual_seed(_SAMPLE_SEED))
        _expect_samples(samples, shape, "the samples")
        if not torch.isfinite(samples).all():
            raise Miss(f"Your samples on the 'linear' schedule contain NaN or inf. Yet {_SCHEDULE_HINT}")
        distance = sliced_wasserstein(samples.detach().float(), data)
        package, data_vs_data = _package_distances(kind, num_points)
        figures = (f"sliced Wasserstein distance to the data {distance:.3f} (threshold {SAMPLE_THRESHOLD:g}; "
                   f"the package's {name} {package:.3f}; a second draw of the data {data_vs_data:.3f})")
        if distance > SAMPLE_THRESHOLD:
            raise Miss(f"On the 'linear' schedule your {num_points:,} samples are far from the data: {figures}. "
                       f"Yet {_SCHEDULE_HINT}")
        return f"{num_points:,} samples on the 'linear' schedule: {figures}"
    return stage


# Build 1: DDPM -------------------------------------------------------------------------------------

def _ddpm_numbers(schedule: NoiseSchedule, t: int) -> tuple[float, float, float]:
    """(beta_t, alpha_bar_t, beta_tilde_t) with alpha_bar_{-1} = 1."""
    b, a = schedule.betas[t].item(), schedule.alphas_cumprod[t].item()
    a_prev = schedule.alphas_cumprod[t - 1].item() if t > 0 else 1.0
    return b, a, (1 - a_prev) / (1 - a) * b


def _ddpm_step_checks(schedule: NoiseSchedule, num_steps: int):
    g = torch.Generator().manual_seed(_SAMPLE_SEED)
    torch.randn(_UNIT_SHAPE, generator=g)  # x_T
    z = [torch.randn(_UNIT_SHAPE, generator=g).double() for _ in range(num_steps - 1)]  # one per step with t > 0

    def mean(t, x, eps):  # Eq. (11) of Ho et al. 2020
        b, a, _ = _ddpm_numbers(schedule, t)
        return (x - b / (1 - a) ** 0.5 * eps) / (1 - b) ** 0.5

    def expected(k, t, x, eps):
        return mean(t, x, eps) + (_ddpm_numbers(schedule, t)[2] ** 0.5 * z[k] if t > 0 else 0)

    def slips(k, t, x, eps):
        if t == 0:
            return []  # every slip at the last step gets the last-step hint of `generic`
        b, a, var = _ddpm_numbers(schedule, t)
        mu = mean(t, x, eps)
        return [
            (mu + b**0.5 * z[k], "You added noise with variance beta_t; the package (like diffusers' default, "
                                 "variance_type='fixed_small') uses the posterior variance "
                                 "beta_tilde_t = (1 - alpha_bar_(t-1)) / (1 - alpha_bar_t) * beta_t."),
            ((x - b / (1 - a) ** 0.5 * eps) / a**0.5 + var**0.5 * z[k],
             "The mean divides by sqrt(alpha_t) = sqrt(1 - beta_t), not by sqrt(alpha_bar_t): one reverse step "
             "undoes one forward step's shrinking (Eq. 11)."),
            (mu, "Add sigma_t * z to the mean at every step with t > 0, z = torch.randn(shape, generator=generator): "
                 "without it DDPM is not DDPM and its samples crowd the blob centres."),
            (mu + var * z[k], "Multiply z by the standard deviation sigma_t = sqrt(beta_tilde_t), not by the variance."),
        ]

    def generic(k, t, err):
        if t == 0:
            return ("The last step (t = 0) adds no noise: x_0 = mu there, and nothing is drawn from the generator "
                    "(sigma_0 = 0; diffusers does the same). If you read alphas_cumprod[t - 1] at t = 0, note that "
                    "index -1 is the LAST entry (alpha_bar_(T-1), close to 0), not alpha_bar_(-1) = 1.")
        return (f"Your step from t = {t} is off by up to {err:.3g}: x_(t-1) = mu + sigma_t z with "
                "mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(1 - beta_t), "
                "sigma_t^2 = (1 - alpha_bar_(t-1)) / (1 - alpha_bar_t) * beta_t and z this step's draw.")

    return expected, slips, generic


def check_ddpm_sample(ddpm_sample: Callable, num_points: int = 2000) -> CheckResult:
    """Build 1: ``ddpm_sample(model, schedule, shape, generator)`` against ``package_ddpm_sample``, then its
    samples' sliced Wasserstein distance to the data (``num_points`` of them) on the linear schedule."""
    schedule, oracle = _unit_setup()
    big_t = schedule.num_timesteps
    runs = {}

    def timesteps():
        runs[big_t] = _traced_run(ddpm_sample, schedule, oracle)
        down = list(range(big_t - 1, -1, -1))
        _check_timesteps_seen(runs[big_t][0].timesteps, down, [
            (down[:-1], "Your loop stops before t = 0: the last step, from t = 0 to the clean sample, is a step too "
                        "(range(T - 1, -1, -1) includes 0)."),
            ([t + 1 for t in down], "Timesteps are 0-indexed: the loop runs t = T-1 down to 0, not T down to 1."),
        ])

    def same_samples():
        traced, out, g = runs[big_t]
        _expect_start(traced)
        _first_bad_step(traced, out, *_ddpm_step_checks(schedule, big_t))
        g_ref = torch.Generator().manual_seed(_SAMPLE_SEED)
        reference = package_ddpm_sample(oracle, schedule, _UNIT_SHAPE, g_ref)
        expect_close(out, reference, "Your samples", "Compare your loop with the package's step by step.", atol=1e-3)
        if not torch.equal(g.get_state(), g_ref.get_state()):
            raise Miss("Your samples are right, but your loop drew more noise from the generator than the package: "
                       "one randn(shape) for x_T, then one per step with t > 0, and none at t = 0 (the last step "
                       "returns the mean), so that whoever uses the generator next gets the same numbers.")
        return f"The same samples as the package's DDPMSampler (max difference {(out - reference).abs().max():.1e})"

    return grade_build(BUILD_DDPM, timesteps, _seeded_stage(ddpm_sample, schedule, oracle, runs), same_samples,
                       _outcome_stage(ddpm_sample, "ddpm", num_points))


# Build 2: DDIM -------------------------------------------------------------------------------------

def _grid(schedule: NoiseSchedule, n: int, spacing: str = "leading") -> list[int]:
    sampler = DDIMSampler(schedule, timestep_spacing=spacing)
    sampler.set_timesteps(n)
    return sampler.timesteps.tolist()


def _ddim_step_checks(schedule: NoiseSchedule, ts: list[int]):
    ab = schedule.alphas_cumprod

    def step(x, eps, a, a_prev, a_dir=None):  # Eq. (12) of Song et al. 2021 with eta = 0
        x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
        return a_prev**0.5 * x0 + (1 - (a_prev if a_dir is None else a_dir)) ** 0.5 * eps

    def a_prev_of(k):
        return ab[ts[k + 1]].item() if k + 1 < len(ts) else 1.0

    def expected(k, t, x, eps):
        return step(x, eps, ab[t].item(), a_prev_of(k))

    def slips(k, t, x, eps):
        a, a_prev = ab[t].item(), a_prev_of(k)
        if k + 1 == len(ts):
            return []  # every slip at the last step gets the last-step hint of `generic`
        return [
            (step(x, eps, a, ab[t - 1].item()),
             "DDIM jumps over timesteps: alpha_bar_prev is alpha_bar at the NEXT timestep of your subsequence "
             "(t - T // n), not alphas_cumprod[t - 1]."),
            (step(x, eps, a, a_prev, a_dir=a),
             "The direction term is sqrt(1 - alpha_bar_prev) * eps (the noise level where the step lands), "
             "not sqrt(1 - alpha_bar_t) * eps."),
        ]

    def generic(k, t, err):
        if k + 1 == len(ts):
            return ("After the last timestep (t = 0) use alpha_bar_prev = 1 (diffusers' set_alpha_to_one): the last "
                    "step lands on x0_hat itself. (alphas_cumprod[-1] is the LAST entry, not 'before t = 0'.)")
        return (f"Your step from t = {t} to {ts[k + 1]} is off by up to {err:.3g}: x0_hat = (x_t - sqrt(1 - "
                "alpha_bar_t) * eps) / sqrt(alpha_bar_t), then x_prev = sqrt(alpha_bar_prev) * x0_hat + "
                "sqrt(1 - alpha_bar_prev) * eps (Eq. 12 with eta = 0).")

    return expected, slips, generic


def check_ddim_sample(ddim_sample: Callable, num_points: int = 2000) -> CheckResult:
    """Build 2: ``ddim_sample(model, schedule, shape, num_inference_steps, generator)`` against
    ``package_ddim_sample`` at 50 and 7 steps, then its 50-step samples' distance to the data."""
    schedule, oracle = _unit_setup()
    big_t = schedule.num_timesteps
    runs = {}

    def timesteps():
        for n in (50, 7):
            runs[n] = _traced_run(ddim_sample, schedule, oracle, n)
            lead = _grid(schedule, n)
            spacing = (f"Use diffusers' 'leading' spacing: k = T // n, timesteps (n-1)k, ..., 2k, k, 0 (for n = {n}: "
                       f"{lead[0]}, {lead[1]}, ..., {lead[-2]}, 0).")
            _check_timesteps_seen(runs[n][0].timesteps, lead, [
                (_grid(schedule, n, "linspace"), spacing + " Yours are 'linspace' (they start at T - 1)."),
                (_grid(schedule, n, "trailing"), spacing + " Yours are 'trailing' (they start at T - 1)."),
                (list(range(big_t - 1, -1, -(big_t // n))), spacing + " Yours count down from T - 1."),
                (list(range(0, big_t, big_t // n))[::-1], spacing + f" Take exactly n = {n} steps: "
                 "torch.arange(0, T, T // n) makes one too many when n does not divide T."),
            ])

    def same_samples():
        notes = []
        for n, (traced, out, g) in runs.items():
            _expect_start(traced)
            _first_bad_step(traced, out, *_ddim_step_checks(schedule, _grid(schedule, n)))
            g_ref = torch.Generator().manual_seed(_SAMPLE_SEED)
            reference = package_ddim_sample(oracle, schedule, _UNIT_SHAPE, n, g_ref)
            expect_close(out, reference, "Your samples", "Compare your loop with the package's step by step.",
                         atol=1e-3)
            if not torch.equal(g.get_state(), g_ref.get_state()):
                raise Miss("DDIM with eta = 0 draws one thing from the generator, x_T: add no noise afterwards.")
            notes.append(f"{(out - reference).abs().max():.1e} at {n} steps")
        return "The same samples as the package's DDIMSampler (max difference " + ", ".join(notes) + ")"

    return grade_build(BUILD_DDIM, timesteps, _seeded_stage(ddim_sample, schedule, oracle, runs, 50), same_samples,
                       _outcome_stage(ddim_sample, "ddim", num_points, 50))
