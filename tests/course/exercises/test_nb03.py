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
