"""course_utils.course.exercises.nb03: right, wrong, stub and strict results; the seed's reverse-step numbers."""

import math

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed
from course_utils.course.exercises import nb03
from course_utils.forward import forward_step, q_sample
from course_utils.reverse import ddpm_mean


# --- Right answers, as a learner would write them ----------------------------------------------

def predict_x0(x_t, eps, alpha_bar_t):
    return (x_t - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)


def reverse_mean(x_t, eps_pred, beta_t, alpha_bar_t):
    return (x_t - beta_t / math.sqrt(1 - alpha_bar_t) * eps_pred) / math.sqrt(1 - beta_t)


def training_loss(model, x0, t, noise, schedule):
    a = schedule.alphas_cumprod[t].to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return torch.nn.functional.mse_loss(model(x_t, t), noise)


# --- Plausible wrong answers --------------------------------------------------------------------

def predict_x0_no_sqrt(x_t, eps, alpha_bar_t):
    return (x_t - (1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)


def reverse_mean_alpha_bar(x_t, eps_pred, beta_t, alpha_bar_t):  # divides by sqrt(alpha_bar) instead
    return (x_t - beta_t / math.sqrt(1 - alpha_bar_t) * eps_pred) / math.sqrt(alpha_bar_t)


def training_loss_sum(model, x0, t, noise, schedule):
    x_t = q_sample(x0, t, noise, schedule)
    return ((model(x_t, t) - noise) ** 2).sum()


CHECKS = [
    (nb03.check_predict_x0, predict_x0, predict_x0_no_sqrt, "square root of (1 - alpha_bar_t)"),
    (nb03.check_reverse_mean, reverse_mean, reverse_mean_alpha_bar, "sqrt(alpha_t)"),
    (nb03.check_training_loss, training_loss, training_loss_sum, "not the sum"),
]


@pytest.mark.parametrize("check, right, wrong, hint", CHECKS)
def test_right_answer_is_correct(check, right, wrong, hint):
    result = check(right)
    assert result.status == "correct", result


@pytest.mark.parametrize("check, right, wrong, hint", CHECKS)
def test_wrong_answer_is_incorrect_with_a_named_hint(check, right, wrong, hint):
    result = check(wrong)
    assert result.status == "incorrect"
    assert hint in result.message


@pytest.mark.parametrize("check, right, wrong, hint", CHECKS)
def test_stub_is_not_attempted(check, right, wrong, hint, stub):
    assert check(stub).status == "not attempted"


@pytest.mark.parametrize("check, right, wrong, hint", CHECKS)
def test_strict_mode_raises_for_a_wrong_answer(check, right, wrong, hint, monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        check(wrong)
    assert check(right).status == "correct"
    assert check(stub).status == "not attempted"


@pytest.mark.parametrize("check, right, wrong, hint", CHECKS)
def test_a_crashing_answer_is_incorrect_not_an_error(check, right, wrong, hint):
    def crashes(*args):
        raise ValueError("oops")

    result = check(crashes)
    assert result.status == "incorrect" and "ValueError" in result.message


def test_other_slips_get_their_own_hints():
    def x0_forgets_division(x_t, eps, a):
        return x_t - math.sqrt(1 - a) * eps

    def mean_is_x0(x_t, eps, b, a):
        return (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)

    def loss_against_x0(model, x0, t, noise, schedule):
        return torch.mean((model(q_sample(x0, t, noise, schedule), t) - x0) ** 2)

    def loss_per_example(model, x0, t, noise, schedule):
        return ((model(q_sample(x0, t, noise, schedule), t) - noise) ** 2).mean(dim=1)

    assert "undo the shrinking" in nb03.check_predict_x0(x0_forgets_division).message
    assert "clean x0" in nb03.check_reverse_mean(mean_is_x0).message
    assert "not the clean x0" in nb03.check_training_loss(loss_against_x0).message
    result = nb03.check_training_loss(loss_per_example)
    assert result.status == "incorrect" and "shape" in result.message


def test_reference_training_loss_orders_the_models():
    """The exact denoiser beats a model that predicts zero, whose loss is E[eps^2] = 1."""
    from course_utils.data import gaussian_mixture_params, make_toy2d
    from course_utils.oracle import GaussianMixtureOracle
    from course_utils.schedules import get_schedule

    schedule = get_schedule("cosine")
    oracle = GaussianMixtureOracle(*gaussian_mixture_params(), schedule)
    g = torch.Generator().manual_seed(0)
    x0 = make_toy2d("gaussian_mixture", 4000, seed=1)
    t = torch.randint(0, 1000, (4000,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    zero = nb03.reference_training_loss(lambda x, t: torch.zeros_like(x), x0, t, noise, schedule)
    exact = nb03.reference_training_loss(oracle, x0, t, noise, schedule)
    assert zero == pytest.approx(1.0, abs=0.05)
    assert exact < 0.6 * zero


# --- Widget questions -------------------------------------------------------------------------

@pytest.mark.widgets
def test_ddim_question(answer):
    box = nb03.ddim_determinism_question()
    assert box.result.status == "not attempted"
    assert answer(box, nb03.DDIM_OPTIONS[1]).status == "correct"
    wrong = answer(box, nb03.DDIM_OPTIONS[0])
    assert wrong.status == "incorrect" and "That is DDPM" in wrong.message


@pytest.mark.widgets
def test_zero_model_question(answer):
    box = nb03.zero_model_loss_question()
    assert box.result.status == "not attempted"
    assert answer(box, "1.0").status == "correct"
    assert answer(box, " 0.98 ").status == "correct"  # within 0.05 of E[eps^2] = 1
    wrong = answer(box, "0")
    assert wrong.status == "incorrect" and "N(0, 1)" in wrong.message
    assert answer(box, "").status == "not attempted"


# --- The seed's numbers (chapter 3 and Exercise 2 of chapter 6) ---------------------------------

@pytest.mark.widgets
def test_seed_reverse_example_rounded():
    # Seed, chapter 3: x1 = [0.863, -0.396] (rounded), eps = [0.5, -0.7], beta_1 = 0.02 and
    # alpha_bar_1 = 0.98 (a standalone example: the first step of a chain, so alpha_bar = alpha).
    # beta / sqrt(1 - alpha_bar) = 0.02 / sqrt(0.02) = sqrt(0.02) = 0.141421, so
    # mu = ([0.863, -0.396] - 0.141421 * [0.5, -0.7]) / sqrt(0.98)
    #    = [0.792289, -0.297005] / 0.989949 = [0.800333, -0.300020].
    mu = ddpm_mean([0.863, -0.396], [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(mu, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-3, rtol=0)


@pytest.mark.widgets
def test_seed_reverse_example_exact():
    # With the unrounded x1 = sqrt(0.98) x0 + sqrt(0.02) eps, the mean is
    # (sqrt(0.98) x0 + sqrt(0.02) eps - sqrt(0.02) eps) / sqrt(0.98) = x0 exactly.
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    torch.testing.assert_close(x1, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3, rtol=0)
    mu = ddpm_mean(x1, [0.5, -0.7], 0.02, 0.98)
    torch.testing.assert_close(mu, torch.tensor([0.8, -0.3], dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.widgets
def test_seed_exercise_2_manual_reverse_step():
    # Seed, chapter 6, Exercise 2: x_T = [0.1, 0.9, -0.5], beta_T = 0.02, alpha_bar_T = 0.001,
    # eps = [0.3, -0.1, 0.2].
    #   noise coefficient: 0.02 / sqrt(1 - 0.001) = 0.02 / 0.999500 = 0.020010
    #   x_T - 0.020010 * eps = [0.1 - 0.006003, 0.9 + 0.002001, -0.5 - 0.004002]
    #                        = [0.093997, 0.902001, -0.504002]
    #   divided by sqrt(1 - 0.02) = sqrt(0.98) = 0.989949: [0.094951, 0.911159, -0.509119]
    x_t, eps = [0.1, 0.9, -0.5], [0.3, -0.1, 0.2]
    mu = ddpm_mean(x_t, eps, 0.02, 0.001)
    torch.testing.assert_close(mu, torch.tensor([0.0950, 0.9112, -0.5091], dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(mu, torch.tensor([0.094951, 0.911159, -0.509119], dtype=torch.float64),
                               atol=2e-6, rtol=0)
    # The checker's reference is the same number.
    assert nb03.check_reverse_mean(lambda *a: ddpm_mean(*a)).correct


# --- Builds 1 and 2: the DDPM and DDIM sampling loops ---------------------------------------------
# Written here independently of the notebook; the keyword arguments switch in one slip each.

def ddpm_loop(model, schedule, shape, generator, variance="posterior", divide_by="alpha", order="down",
              noise_at_zero=False, global_noise=False, fixed_schedule=None):
    schedule = fixed_schedule or schedule  # a slip: a schedule of its own instead of the argument
    big_t = schedule.num_timesteps
    x = torch.randn(shape, generator=generator)
    for t in (range(big_t - 1, -1, -1) if order == "down" else range(big_t)):
        eps = model(x, t)
        b, ab = schedule.betas[t].item(), schedule.alphas_cumprod[t].item()
        ab_prev = schedule.alphas_cumprod[t - 1].item()  # at t = 0 this is index -1: used only by a slip
        mean = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(1 - b if divide_by == "alpha" else ab)
        if t > 0 or noise_at_zero:
            var = (1 - ab_prev) / (1 - ab) * b if variance == "posterior" else b
            z = torch.randn(shape) if global_noise else torch.randn(shape, generator=generator)
            mean = mean + math.sqrt(var) * z
        x = mean
    return x


def ddim_loop(model, schedule, shape, n, generator, previous="next", spacing="leading", final=1.0,
              global_start=False):
    big_t = schedule.num_timesteps
    if spacing == "leading":
        ts = [i * (big_t // n) for i in range(n)][::-1]
    else:  # "linspace": from T - 1 down to 0
        ts = torch.linspace(0, big_t - 1, n).round().long().tolist()[::-1]
    ab = schedule.alphas_cumprod
    x = torch.randn(shape) if global_start else torch.randn(shape, generator=generator)
    for i, t in enumerate(ts):
        eps = model(x, t)
        if i + 1 == len(ts):
            a_prev = final
        else:
            a_prev = ab[ts[i + 1] if previous == "next" else t - 1].item()
        x0 = (x - (1 - ab[t]).sqrt().item() * eps) / ab[t].sqrt().item()
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x


def _cosine():
    from course_utils.schedules import get_schedule

    return get_schedule("cosine")


def test_ddpm_build_accepts_a_right_loop_and_prints_the_figures():
    result = nb03.check_ddpm_sample(ddpm_loop)
    assert result.status == "correct", result
    assert "The same samples as the package's DDPMSampler" in result.message
    assert "sliced Wasserstein" in result.message and "threshold 0.1" in result.message


@pytest.mark.parametrize("slip, hint", [
    (dict(noise_at_zero=True), "adds no noise"),
    (dict(variance="beta"), "posterior variance"),
    (dict(divide_by="alpha_bar"), "not by sqrt(alpha_bar_t)"),
    (dict(order="up"), "noisiest timestep down"),
    (dict(global_noise=True), "global"),
])
def test_ddpm_build_names_each_slip(slip, hint):
    result = nb03.check_ddpm_sample(lambda *args: ddpm_loop(*args, **slip))
    assert result.status == "incorrect" and hint in result.message, result


def test_ddpm_build_that_ignores_its_schedule_fails_on_the_outcome():
    # Right on the cosine schedule of the unit stages, so only the outcome (on 'linear') catches it.
    result = nb03.check_ddpm_sample(lambda *args: ddpm_loop(*args, fixed_schedule=_cosine()))
    assert result.status == "incorrect", result
    assert "far from the data" in result.message and "`schedule` argument" in result.message


def test_ddpm_build_wants_no_draw_at_the_last_step():
    def draws_an_unused_z_at_zero(model, schedule, shape, generator):
        x = ddpm_loop(model, schedule, shape, generator)
        torch.randn(shape, generator=generator)  # sigma_0 * z with sigma_0 = 0: same samples, one draw too many
        return x

    result = nb03.check_ddpm_sample(draws_an_unused_z_at_zero)
    assert result.status == "incorrect" and "none at t = 0" in result.message, result


def test_ddim_build_accepts_a_right_loop_and_prints_the_figures():
    result = nb03.check_ddim_sample(ddim_loop)
    assert result.status == "correct", result
    assert "at 50 steps" in result.message and "at 7 steps" in result.message
    assert "sliced Wasserstein" in result.message


@pytest.mark.parametrize("slip, hint", [
    (dict(previous="t-1"), "NEXT timestep"),
    (dict(spacing="linspace"), "'leading' spacing"),
    (dict(final=0.0), "set_alpha_to_one"),  # alpha_bar_prev = 0 after t = 0: lands on pure eps
    (dict(global_start=True), "global"),
])
def test_ddim_build_names_each_slip(slip, hint):
    result = nb03.check_ddim_sample(lambda *args: ddim_loop(*args, **slip))
    assert result.status == "incorrect" and hint in result.message, result


def test_ddim_build_rejects_noise_and_a_foreign_schedule():
    def adds_noise(model, schedule, shape, n, generator):
        x = ddim_loop(model, schedule, shape, n, generator)
        return x + 0.0 * torch.randn(shape, generator=generator)

    assert "draws one thing" in nb03.check_ddim_sample(adds_noise).message
    result = nb03.check_ddim_sample(lambda m, s, *args: ddim_loop(m, _cosine(), *args))
    assert result.status == "incorrect" and "far from the data" in result.message, result


@pytest.mark.parametrize("check", [nb03.check_ddpm_sample, nb03.check_ddim_sample])
def test_build_stub_is_not_attempted_and_a_none_is_named(check, stub):
    assert check(stub).status == "not attempted"
    result = check(lambda *args: None)
    assert result.status == "incorrect" and "forget `return" in result.message


def test_builds_raise_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb03.check_ddim_sample(lambda *args: ddim_loop(*args, previous="t-1"))


def test_use_build_falls_back_to_the_package_loops(stub):
    from course_utils.course.exercises import use_build

    result = nb03.check_ddim_sample(stub)
    assert use_build(result, stub, nb03.package_ddim_sample, "DDIM loop") is nb03.package_ddim_sample


def test_traced_model_records_the_path():
    from course_utils.data import gaussian_mixture_params
    from course_utils.oracle import GaussianMixtureOracle

    schedule = _cosine()
    traced = nb03.TracedModel(GaussianMixtureOracle(*gaussian_mixture_params(), schedule))
    samples = nb03.package_ddim_sample(traced, schedule, (5, 2), 10, torch.Generator().manual_seed(0))
    assert traced.timesteps == list(range(900, -1, -100))
    path = traced.path(samples)
    assert path.shape == (11, 5, 2) and torch.equal(path[-1], samples)
    assert torch.equal(path[0], torch.randn(5, 2, generator=torch.Generator().manual_seed(0)))
