"""course_utils.course.exercises.nb02: the forward-process checkers, and the course text's numbers for chapter 2."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed, nb02
from course_utils.forward import forward_step, q_sample
from course_utils.schedules import get_schedule


# --- reference answers and plausible mistakes -------------------------------------------------

def step_right(x_prev, beta_t, noise):
    return math.sqrt(1 - beta_t) * x_prev + math.sqrt(beta_t) * noise


def step_wrong(x_prev, beta_t, noise):  # noise scaled by beta instead of sqrt(beta): the seed's prose
    return math.sqrt(1 - beta_t) * x_prev + beta_t * noise


def below_right(alphas_cumprod, threshold):
    return int(torch.nonzero(alphas_cumprod < threshold)[0])


def below_wrong(alphas_cumprod, threshold):  # the 1-indexed step number
    return int(torch.nonzero(alphas_cumprod < threshold)[0]) + 1


def closed_right(x0, t, noise, alphas_cumprod):
    a = alphas_cumprod[t].to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def closed_wrong(x0, t, noise, alphas_cumprod):  # off by one timestep
    a = alphas_cumprod[t - 1].to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


CHECKERS = {
    "one_step": (nb02.check_one_step, step_right, step_wrong),
    "first_step_below": (nb02.check_first_step_below, below_right, below_wrong),
    "closed_form": (nb02.check_closed_form, closed_right, closed_wrong),
}


@pytest.mark.parametrize("name", CHECKERS)
def test_right_answer_is_correct(name):
    check, right, _ = CHECKERS[name]
    assert check(right).status == "correct"


@pytest.mark.parametrize("name", CHECKERS)
def test_wrong_answer_is_incorrect_with_a_hint(name):
    check, _, wrong = CHECKERS[name]
    result = check(wrong)
    assert result.status == "incorrect"
    assert len(result.message) > 40  # a hint, not just "wrong"


@pytest.mark.parametrize("name", CHECKERS)
def test_stub_is_not_attempted(name, monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")  # not attempted never raises, even in strict mode
    check, _, _ = CHECKERS[name]
    assert check(stub).status == "not attempted"


@pytest.mark.parametrize("name", CHECKERS)
def test_strict_mode_raises_for_a_wrong_answer(name, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    check, right, wrong = CHECKERS[name]
    assert check(right).status == "correct"
    with pytest.raises(ExerciseFailed):
        check(wrong)


def test_code_that_crashes_is_incorrect():
    result = nb02.check_closed_form(lambda x0, t, noise, ab: x0 + noise[:2])  # shapes do not broadcast
    assert result.status == "incorrect" and "raised" in result.message


# --- specific hints for the classic mistakes ---------------------------------------------------

def test_hints_name_the_mistake():
    assert "sqrt(beta_t)" in nb02.check_one_step(step_wrong).message
    assert "1-indexed" in nb02.check_first_step_below(below_wrong).message
    assert "strict" in nb02.check_first_step_below(lambda a, th: int(torch.nonzero(a <= th)[0])).message
    assert "t - 1" in nb02.check_closed_form(closed_wrong).message
    no_sqrt = nb02.check_closed_form(lambda x0, t, e, ab: ab[t].float() * x0 + (1 - ab[t]).sqrt().float() * e)
    assert "square root" in no_sqrt.message


def test_answers_may_be_numpy_or_tensors():
    assert nb02.check_one_step(lambda x, b, e: step_right(x, b, e).numpy()).correct
    assert nb02.check_first_step_below(lambda a, th: torch.nonzero(a < th)[0, 0]).correct


# --- question widgets ------------------------------------------------------------------------

@pytest.mark.widgets
def test_signal_question(answer):
    box = nb02.signal_question(t=500)
    assert box.result.status == "not attempted"
    wrong = answer(box, "linear")
    assert wrong.status == "incorrect" and "0.078" in wrong.message
    assert answer(box, "they are all equal").status == "incorrect"
    assert answer(box, "cosine").status == "correct"


@pytest.mark.widgets
def test_snr_question(answer):
    box = nb02.snr_question("cosine")
    assert box.result.status == "not attempted"
    assert answer(box, "100").status == "incorrect"
    # cosine: alpha_bar[495] = 0.5008 >= 0.5 > alpha_bar[496] = 0.4992, so SNR first drops below 1 at t = 496.
    assert answer(box, "496").status == "correct"
    assert answer(box, "490").status == "correct"  # within the +-10 the question allows


# --- the course text's numbers (chapter 2) -----------------------------------------------------

def test_seed_forward_step_example():
    # x1 = sqrt(0.98) * [0.8, -0.3] + sqrt(0.02) * [0.5, -0.7]
    #    = 0.98995 * [0.8, -0.3] + 0.14142 * [0.5, -0.7] = [0.79196, -0.29698] + [0.07071, -0.09899]
    #    = [0.86267, -0.39598]
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    assert torch.allclose(x1, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3)


def test_seed_exercise_1_alpha_bar_below_one_percent():
    # Linear schedule, 0-indexed: beta_s = 1e-4 + s * (0.02 - 1e-4) / 999 for s = 0..999, and
    # ln alpha_bar_t = sum_{s<=t} ln(1 - beta_s) = -(S1 + S2/2 + S3/3 + ...), with S_k = sum_{s<=t} beta_s^k.
    # S1(t) = (t + 1) * 1e-4 + 1.99199e-5 * t (t + 1) / 2.
    #   t = 672: S1 = 0.0673 + 1.99199e-5 * 226128 = 4.57175, S2/2 = 0.02057, S3/3 = 0.00014
    #            -> ln alpha_bar = -4.59246 -> alpha_bar = 0.010128 >= 0.01
    #   t = 673: S1 = 0.0674 + 1.99199e-5 * 226801 = 4.58526, S2/2 = 0.02066, S3/3 = 0.00014
    #            -> ln alpha_bar = -4.60606 -> alpha_bar = 0.009991 < 0.01   (ln 0.01 = -4.60517)
    # So t = 673 is the first timestep below 0.01: the 674th application of the step.
    ab = get_schedule("linear").alphas_cumprod
    assert ab[672] >= 0.01 > ab[673]
    assert int(torch.nonzero(ab < 0.01)[0]) == 673
    assert math.isclose(float(ab[672]), 0.010128, rel_tol=1e-4)
    assert math.isclose(float(ab[673]), 0.009991, rel_tol=1e-4)


def test_closed_form_matches_chain_in_distribution():
    # Many copies of one pixel pushed through the chain have mean sqrt(alpha_bar) x0 and std sqrt(1 - alpha_bar).
    schedule = get_schedule("linear")
    g = torch.Generator().manual_seed(0)
    n, t_end, x0 = 50_000, 299, 0.8
    x = torch.full((n,), x0, dtype=torch.float64)
    for t in range(t_end + 1):
        x = forward_step(x, float(schedule.betas[t]), torch.randn(n, generator=g, dtype=torch.float64))
    a = float(schedule.alphas_cumprod[t_end])
    assert abs(float(x.mean()) - math.sqrt(a) * x0) < 5 * math.sqrt(1 - a) / math.sqrt(n)
    assert abs(float(x.std()) / math.sqrt(1 - a) - 1) < 5 / math.sqrt(2 * n)
    # and q_sample's mean with zero noise is exactly sqrt(alpha_bar) x0
    assert math.isclose(float(q_sample(torch.tensor([x0]), t_end, torch.zeros(1), schedule)), math.sqrt(a) * x0,
                        rel_tol=1e-6)


# --- the build: a batch of images noised at a batch of timesteps ------------------------------------

def batch_right(x0, t, schedule, generator):
    """Written independently of the package: the closed form, one timestep per image."""
    noise = torch.randn(x0.shape, generator=generator)
    ab = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise, noise


def batch_with(alpha_bar=lambda s, t: s.alphas_cumprod[t].view(-1, 1, 1, 1), signal=torch.sqrt,
               spread=lambda a: (1 - a).sqrt(), draw=lambda x0, g: torch.randn(x0.shape, generator=g)):
    """A learner's build with one part swapped for a slip."""
    def fn(x0, t, schedule, generator):
        noise = draw(x0, generator)
        a = alpha_bar(schedule, t)
        return signal(a) * x0 + spread(a) * noise, noise
    return fn


def column(v):
    return v.view(-1, 1, 1, 1)


BATCH_SLIPS = {
    "alphas, not their product": (batch_with(alpha_bar=lambda s, t: column(s.alphas[t])), "alphas_cumprod[t]"),
    "no square roots": (batch_with(signal=lambda a: a, spread=lambda a: 1 - a), "are the square roots"),
    "no square root on the image": (batch_with(signal=lambda a: a), "multiplied by alpha_bar_t; use its square root"),
    "no square root on the noise": (batch_with(spread=lambda a: 1 - a), "noise is multiplied by 1 - alpha_bar_t"),
    "coefficients swapped": (batch_with(signal=lambda a: (1 - a).sqrt(), spread=torch.sqrt), "swapped"),
    "one t for the batch": (batch_with(alpha_bar=lambda s, t: s.alphas_cumprod[t[0]]), "timestep of the first image"),
    "t broadcast over the width": (batch_with(alpha_bar=lambda s, t: s.alphas_cumprod[t]), "the width"),
    "t as one int": (batch_with(alpha_bar=lambda s, t: s.alphas_cumprod[int(t)]), "one timestep per image"),
    "1-indexed t": (batch_with(alpha_bar=lambda s, t: column(s.alphas_cumprod[t - 1])), "as if t counted from 1"),
    "1-indexed t, clamped": (batch_with(alpha_bar=lambda s, t: column(s.alphas_cumprod[(t - 1).clamp(min=0)])),
                             "as if t counted from 1"),
    "t + 1": (batch_with(alpha_bar=lambda s, t: column(s.alphas_cumprod[t + 1])), "index alphas_cumprod with t itself"),
    "the global generator": (batch_with(draw=lambda x0, g: torch.randn(x0.shape)), "not from torch's global one"),
    "randn_like": (batch_with(draw=lambda x0, g: torch.randn_like(x0)), "not from torch's global one"),
    "a generator of its own": (batch_with(draw=lambda x0, g: torch.randn(x0.shape, generator=torch.Generator())),
                               "the generator you are given is ignored"),
    "uniform noise": (batch_with(draw=lambda x0, g: torch.rand(x0.shape, generator=g)), "that is torch.rand"),
    "noise of variance 2": (batch_with(draw=lambda x0, g: 2 ** 0.5 * torch.randn(x0.shape, generator=g)),
                            "standard Gaussian noise has 0 and 1"),
    "one noise for every image": (batch_with(draw=lambda x0, g: torch.randn(1, *x0.shape[1:], generator=g).expand_as(x0)),
                                  "Every image got the same noise"),
    "noise that leaks the image": (batch_with(draw=lambda x0, g: torch.randn(x0.shape, generator=g) + x0),
                                   "noised digits have mean"),
    "x_t alone": (lambda x0, t, s, g: batch_right(x0, t, s, g)[0], "returned one tensor"),
    "no return": (lambda x0, t, s, g: None, "forget `return x_t, noise`"),
    "noise of another shape": (lambda x0, t, s, g: (batch_right(x0, t, s, g)[0], torch.randn(x0.shape[1:])),
                               "must have x0's shape"),
}


def test_the_build_says_what_it_is_graded_on():
    text = str(nb02.NOISE_BATCH_BUILD)
    assert "Graded on:" in text and "q_sample" in text and "generator" in text and "signal-to-noise" in text


def test_a_right_build_is_correct_with_its_figures(stub):
    result = nb02.check_noise_batch(batch_right)
    assert result.correct, result.message
    assert "3 batches of mixed timesteps match q_sample" in result.message and "SNR at t = 0, 250, 500, 750" in result.message
    assert nb02.check_noise_batch(nb02.noise_batch).correct  # the package's version, which the notebook falls back on
    assert nb02.check_noise_batch(stub).status == "not attempted"
    double = lambda x0, t, s, g: tuple(v.double() for v in batch_right(x0.double(), t, s, g))  # noqa: E731
    assert nb02.check_noise_batch(double).correct  # float64 answers are fine


@pytest.mark.parametrize("slip", BATCH_SLIPS)
def test_each_build_slip_gets_its_own_hint(slip):
    fn, phrase = BATCH_SLIPS[slip]
    result = nb02.check_noise_batch(fn)
    assert result.status == "incorrect" and phrase in result.message, result.message


def test_the_unit_cases_hold_mixed_timesteps_both_ends_and_both_image_shapes():
    cases = nb02._batch_cases()
    assert {tuple(x0.shape[1:]) for _, x0, _, _ in cases} == {(1, 16, 16), (3, 32, 32)}
    assert {s.name for _, _, _, s in cases} == {"linear", "cosine", "scaled_linear"}
    for _, x0, t, s in cases:
        assert len(t) == len(x0) and len(set(t.tolist())) > 1
    everything = torch.cat([t for _, _, t, _ in cases])
    assert 0 in everything and 999 in everything


def test_checking_the_build_leaves_the_global_random_numbers_alone():
    before = torch.get_rng_state()
    nb02.check_noise_batch(BATCH_SLIPS["the global generator"][0])
    assert torch.equal(torch.get_rng_state(), before)


def test_the_build_in_strict_mode(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert nb02.check_noise_batch(batch_right).correct
    assert nb02.check_noise_batch(stub).status == "not attempted"
    with pytest.raises(ExerciseFailed, match="as if t counted from 1"):
        nb02.check_noise_batch(BATCH_SLIPS["1-indexed t"][0])


def test_the_package_build_is_q_sample_with_a_seeded_draw():
    x0, t, s = torch.rand(3, 1, 4, 4), torch.tensor([0, 500, 999]), get_schedule("linear")
    x_t, noise = nb02.noise_batch(x0, t, s, torch.Generator().manual_seed(5))
    assert torch.equal(noise, torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(x_t, q_sample(x0, t, noise, s))
