"""course_utils.course.exercises.nb03_score (Builds 3 and 4 of notebook 03, re-exported by nb03): right answers,
one hint per known slip, the stub, strict mode, and the pieces use_build falls back to."""

import math

import pytest
import torch

from course_utils.course.exercises import ExerciseFailed, nb03, nb03_score, use_build
from course_utils.data import gaussian_mixture_params
from course_utils.oracle import GaussianMixtureOracle
from course_utils.schedules import get_schedule
from course_utils.score import tweedie_x0


# --- Build 3: the score of the noised mixture, written here as a learner would, one slip per keyword ------------

def mixture_score(x_t, means, std, alpha_bar_t, centres="scaled", var="right", weights="softmax", divide="var",
                  sign=1.0):
    a = alpha_bar_t
    c = math.sqrt(a) * means if centres == "scaled" else means  # (K, D)
    v = {"right": a * std**2 + 1 - a, "noise": 1 - a, "unshrunk": std**2 + 1 - a, "std": a * std + 1 - a}[var]
    diff = x_t[:, None, :] - c[None]  # (B, K, D)
    logits = -(diff**2).sum(-1) / (2 * v)  # (B, K)
    r = torch.softmax(logits, dim=1) if weights == "softmax" else torch.full_like(logits, 1 / len(means))
    per_blob = -diff / (v if divide == "var" else math.sqrt(v))
    return sign * (r[..., None] * per_blob).sum(1)


def test_score_build_accepts_a_right_answer_and_prints_the_figures():
    result = nb03.check_mixture_score(mixture_score)
    assert result.status == "correct", result
    assert "exact on the five cases" in result.message and "sliced Wasserstein" in result.message


def test_package_mixture_score_is_the_oracle_score_and_passes():
    schedule = get_schedule("cosine")
    means, std = gaussian_mixture_params()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = schedule.alphas_cumprod[250].item()
    torch.testing.assert_close(nb03.package_mixture_score(x, means, std, a),
                               GaussianMixtureOracle(means, std, schedule).score(x, 250))
    torch.testing.assert_close(nb03.package_mixture_score(x, means.double(), std, a),
                               mixture_score(x, means.double(), std, a))


@pytest.mark.parametrize("slip, hint", [
    (dict(centres="unscaled"), "centred at sqrt(alpha_bar_t) * mu_k"),
    (dict(var="noise"), "the noise's only"),
    (dict(var="unshrunk"), "spread shrinks with the signal"),
    (dict(var="std"), "uses std**2"),
    (dict(divide="std"), "not by its square root"),
    (dict(sign=-1.0), "Check the sign"),
    (dict(weights="uniform"), "responsibility"),
])
def test_score_build_names_each_slip(slip, hint):
    result = nb03.check_mixture_score(lambda *args: mixture_score(*args, **slip))
    assert result.status == "incorrect" and hint in result.message, result


def test_score_build_outcome_catches_a_score_wrong_only_near_the_data():
    # Right on the five cases (alpha_bar <= 0.98), equal weights beyond: near the data every point is then pulled
    # towards the centre of all the blobs, -(x_t - mean_k c_k) / var, with var about 0.04.
    def wrong_near_data(x_t, means, std, a):
        return mixture_score(x_t, means, std, a, weights="uniform" if a > 0.985 else "softmax")

    result = nb03.check_mixture_score(wrong_near_data)
    assert result.status == "incorrect" and "does not reach the mixture" in result.message, result


def test_score_build_unnamed_error_shows_the_recipe():
    result = nb03.check_mixture_score(lambda x, m, s, a: 1.01 * mixture_score(x, m, s, a))
    assert result.status == "incorrect" and "softmax over k" in result.message, result


# --- Build 4: Tweedie's formula ----------------------------------------------------------------------------

def tweedie(x_t, score, alpha_bar_t):
    return (x_t + (1 - alpha_bar_t) * score) / math.sqrt(alpha_bar_t)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, s, a: (x + math.sqrt(1 - a) * s) / math.sqrt(a), "not by its square root"),
    (lambda x, s, a: (x - (1 - a) * s) / math.sqrt(a), "Check the sign"),
    (lambda x, s, a: (x + (1 - a) * s) / a, "not by alpha_bar_t"),
    (lambda x, s, a: x + (1 - a) * s, "undo the shrinking"),
    (lambda x, s, a: (x + (1 - a) * s) * math.sqrt(a), "rather than multiply"),
    (lambda x, s, a: (x + s) / math.sqrt(a), "scaled by the noise variance"),
    (lambda x, s, a: x / math.sqrt(a) + (1 - a) * s, "not x_t alone"),
])
def test_tweedie_build_names_each_slip(wrong, hint):
    result = nb03.check_tweedie_x0(wrong)
    assert result.status == "incorrect" and hint in result.message, result


def test_tweedie_build_accepts_right_answers_and_prints_the_errors():
    for right in (tweedie, tweedie_x0, nb03.package_tweedie_x0):
        result = nb03.check_tweedie_x0(right)
        assert result.status == "correct", result
    assert "t = 100" in result.message and "x_t / sqrt(alpha_bar_t)" in result.message


def test_tweedie_build_outcome_compares_with_the_posterior_mean():
    def right_only_on_small_batches(x, s, a):  # the unit cases have at most 6 rows
        return tweedie(x, s, a) if len(x) <= 6 else x / math.sqrt(a)

    result = nb03.check_tweedie_x0(right_only_on_small_batches)
    assert result.status == "incorrect" and "Your denoiser at t = 100" in result.message, result


# --- Both: stub, None, a crash, strict mode, use_build --------------------------------------------------------

CHECKS = [(nb03.check_mixture_score, mixture_score), (nb03.check_tweedie_x0, tweedie)]


@pytest.mark.parametrize("check, right", CHECKS)
def test_stub_is_not_attempted_none_and_a_crash_are_named(check, right, stub):
    assert check(stub).status == "not attempted"
    result = check(lambda *args: None)
    assert result.status == "incorrect" and "forget `return`" in result.message

    def crashes(*args):
        raise ValueError("oops")

    result = check(crashes)
    assert result.status == "incorrect" and "ValueError" in result.message


@pytest.mark.parametrize("check, right", CHECKS)
def test_a_wrong_shape_is_named(check, right):
    result = check(lambda *args: right(*args)[:, :1])
    assert result.status == "incorrect" and "shape" in result.message, result


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb03.check_tweedie_x0(lambda x, s, a: (x - (1 - a) * s) / math.sqrt(a))
    assert nb03.check_tweedie_x0(stub).status == "not attempted"


def test_use_build_falls_back_to_the_package_pieces(stub):
    score_result, tweedie_result = nb03.check_mixture_score(stub), nb03.check_tweedie_x0(stub)
    assert use_build(score_result, stub, nb03.package_mixture_score, "score") is nb03.package_mixture_score
    assert use_build(tweedie_result, stub, nb03.package_tweedie_x0, "Tweedie") is nb03.package_tweedie_x0
    assert nb03.check_mixture_score is nb03_score.check_mixture_score  # re-exported, not copied
