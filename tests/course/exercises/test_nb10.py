"""course_utils.course.exercises.nb10: the digits-FID build; copy-share, saturation and seeded-draw checkers; questions
read from rows."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from course_utils import metrics
from course_utils.course.exercises import ExerciseFailed, nb10
from course_utils.metrics.distances import nearest_data_distance


def broken(*args):
    raise ValueError("shapes do not match")


# --- Build: digits-FID from features ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model_samples():
    """Stand-ins for the notebook's model samples: 120 real digits, blurred and brightened (a model's flaws)."""
    x = metrics.reference_split()[1][-120:]
    return (torch.nn.functional.avg_pool2d(x, 3, 1, 1) * 0.9 + 0.05).clamp(-1, 1)


def frechet_with(cov=lambda f: np.cov(f, rowvar=False), root=lambda a, b: scipy.linalg.sqrtm(a @ b), factor=2,
                 real=True, means=lambda m1, m2: ((m1 - m2) ** 2).sum()):
    """A learner's Fréchet distance (scipy's sqrtm route, written without the package) with one part swapped."""
    def fn(f1, f2):
        f1, f2 = np.asarray(f1), np.asarray(f2)
        c1, c2 = cov(f1), cov(f2)
        tr_root = np.trace(root(c1, c2))
        return means(f1.mean(0), f2.mean(0)) + np.trace(c1) + np.trace(c2) - factor * (tr_root.real if real else tr_root)
    return fn


def frechet_eig_torch(f1, f2):
    """Another right answer: torch only, the eigenvalues of the product."""
    c1, c2 = torch.cov(f1.T), torch.cov(f2.T)
    return ((f1.mean(0) - f2.mean(0)) ** 2).sum() + c1.trace() + c2.trace() - 2 * torch.linalg.eigvals(c1 @ c2).sqrt().real.sum()


def per_feature(f1, f2, ddof, in_place_of_cov=False):
    f1, f2 = np.asarray(f1), np.asarray(f2)
    s1, s2 = f1.std(0, ddof=ddof), f2.std(0, ddof=ddof)
    spread = s1.sum() + s2.sum() - 2 * np.sqrt(s1 * s2).sum() if in_place_of_cov else ((s1 - s2) ** 2).sum()
    return ((f1.mean(0) - f2.mean(0)) ** 2).sum() + spread


def gram(f):
    centred = f - f.mean(0)
    return centred @ centred.T / (len(f) - 1)


FRECHET_SLIPS = {
    "covariance over the wrong axis (np.cov)": (frechet_with(cov=np.cov), "wrong axis"),
    "covariance over the wrong axis (torch.cov)": (frechet_with(cov=lambda f: torch.cov(torch.as_tensor(f)).numpy()),
                                                   "wrong axis"),
    "samples x samples covariance": (frechet_with(cov=gram), "wrong axis"),
    "no factor 2": (frechet_with(factor=1), "factor 2"),
    "elementwise square root": (frechet_with(root=lambda a, b: np.sqrt(np.abs(a @ b))), "square root of every entry"),
    "product of square roots": (frechet_with(root=lambda a, b: scipy.linalg.sqrtm(a) @ scipy.linalg.sqrtm(b)),
                                "not the product of the square roots"),
    "complex result": (frechet_with(real=False), "Keep the real part"),
    "complex tensor": (lambda f1, f2: torch.tensor(complex(frechet_with(real=False)(f1, f2))), "Keep the real part"),
    "float of a complex array": (lambda f1, f2: float(np.asarray(frechet_with(real=False)(f1, f2))), "Keep the real part"),
    "std (unbiased) instead of covariance": (lambda f1, f2: per_feature(f1, f2, 1), "per-feature standard deviations"),
    "std in the covariance's place": (lambda f1, f2: per_feature(f1, f2, 1, True), "per-feature standard deviations"),
    "numpy's std (over N)": (lambda f1, f2: per_feature(f1, f2, 0), "full (D, D) covariance"),
    "covariance over N": (frechet_with(cov=lambda f: np.cov(f, rowvar=False, ddof=0)), "divide by N - 1"),
    "norm of the means, not squared": (frechet_with(means=lambda m1, m2: np.linalg.norm(m1 - m2)), "SQUARED distance"),
    "no means term": (frechet_with(means=lambda m1, m2: 0.0), "means term |mu1 - mu2|^2 is missing"),
    "no return": (lambda f1, f2: None, "forget `return`"),
    "a vector": (lambda f1, f2: np.ones(3), "one number"),
}


def test_the_frechet_build_says_what_it_is_graded_on():
    text = str(nb10.FRECHET_BUILD)
    assert "Graded on:" in text and "identical sets" in text and "diagonal covariances" in text and "half B" in text


def test_right_frechet_builds_are_correct_with_their_figures(model_samples, stub):
    result = nb10.check_frechet(frechet_with(), model_samples)
    assert result.correct, result.message
    assert "5 unit cases" in result.message and "digits-FID at N = 120: real digits (half B)" in result.message
    assert nb10.check_frechet(frechet_eig_torch, model_samples).correct
    assert nb10.check_frechet(nb10.frechet_from_features, model_samples).correct  # the notebook's fallback
    assert nb10.check_frechet(stub, model_samples).status == "not attempted"


# ComplexWarning by its message: numpy.exceptions.ComplexWarning exists only from numpy 1.25 (the floor is 1.24)
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:Casting complex values to real")
@pytest.mark.parametrize("slip", FRECHET_SLIPS)
def test_each_frechet_slip_gets_its_own_hint(slip, model_samples):
    fn, phrase = FRECHET_SLIPS[slip]
    result = nb10.check_frechet(fn, model_samples)
    assert result.status == "incorrect" and phrase in result.message, result.message


def test_the_outcome_stage_scores_the_real_digit_features(model_samples):
    first_ten = lambda f1, f2: frechet_with()(f1[:, :10], f2[:, :10])  # noqa: E731  right on every unit case (D <= 10)
    result = nb10.check_frechet(first_ten, model_samples)
    assert result.status == "incorrect" and "for real digits (half B) against the reference, N = 120" in result.message


def test_the_frechet_unit_cases_have_the_numbers_they_promise():
    cases = {what: (f1, f2) for what, f1, f2 in nb10._frechet_cases()}
    (same, again), (base, shifted), (d1, d2), (n1, m2), (few1, few2) = cases.values()
    assert abs(nb10.frechet_from_features(same, again)) < 1e-9
    assert math.isclose(nb10.frechet_from_features(base, shifted), 14.25, rel_tol=1e-9)  # |shift|^2: 1 + 4 + 0.25 + 9
    for f in (d1, d2):  # sample covariances exactly diagonal
        cov = np.cov(f, rowvar=False)
        assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-12)
    # diagonal: |mu1 - mu2|^2 + sum (sd1 - sd2)^2 = (0.25 + 1 + 0 + 1) + (16/15) * (1 + 0.25 + 0 + 4)
    assert math.isclose(nb10.frechet_from_features(d1, d2), 2.25 + 16 / 15 * 5.25, rel_tol=1e-9)
    assert len(n1) != len(m2)
    assert len(few1) < few1.shape[1] and np.iscomplexobj(scipy.linalg.sqrtm(np.cov(few1, rowvar=False) @ np.cov(few2, rowvar=False)))


def test_check_frechet_refuses_samples_that_are_not_digits():
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\) digits"):
        nb10.check_frechet(frechet_with(), torch.zeros(4, 3, 32, 32))


def test_the_frechet_build_in_strict_mode(monkeypatch, stub, model_samples):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert nb10.check_frechet(stub, model_samples).status == "not attempted"
    with pytest.raises(ExerciseFailed, match="factor 2"):
        nb10.check_frechet(frechet_with(factor=1), model_samples)


# --- Exercise 1: the share of near-copies -----------------------------------------------------------


def pair_rms(samples, train, reduce="min", root=True, mean=True):
    """Written independently of the module: ``(N,)`` distance of each sample to the train images."""
    diff = samples.flatten(1)[:, None] - train.flatten(1)[None]  # (N, M, D)
    sq = diff.pow(2).mean(2) if mean else diff.pow(2).sum(2)
    d = sq.sqrt() if root else sq
    return d.min(1).values if reduce == "min" else d.max(1).values


def my_share(samples, train, threshold):
    return (pair_rms(samples, train) < threshold).float().mean().item()


def test_copy_share_checker(stub):
    assert nb10.check_copy_share(my_share).correct
    assert nb10.check_copy_share(lambda s, t, th: nb10.copy_share(s, t, th)).correct
    assert nb10.check_copy_share(stub).status == "not attempted"
    res = nb10.check_copy_share(broken)
    assert res.status == "incorrect" and "ValueError" in res.message


@pytest.mark.parametrize("slip, phrase", [
    (lambda s, t, th: (pair_rms(s, t, mean=False) < th).float().mean(), "Euclidean distance"),
    (lambda s, t, th: (pair_rms(s, t) < th).sum(), "how many samples"),
    (lambda s, t, th: (pair_rms(s, t.mean(0, keepdim=True)) < th).float().mean(), "AVERAGE training image"),
    (lambda s, t, th: (pair_rms(s, t, root=False) < th).float().mean(), "SQUARED difference"),
    (lambda s, t, th: (pair_rms(s, t, reduce="max") < th).float().mean(), "FARTHEST"),
])
def test_copy_share_slips_get_their_own_hints(slip, phrase):
    res = nb10.check_copy_share(slip)
    assert res.status == "incorrect" and phrase in res.message


def test_copy_cases_have_copies_and_no_ties():
    for (samples, train, threshold), expected, _ in nb10._copy_cases():
        d = nearest_data_distance(samples, train)
        assert 0 < expected < 1 and float((d - threshold).abs().min()) > 0.05
        assert expected == float((d < threshold).float().mean())


# --- Exercise 2: saturated pixel values -------------------------------------------------------------


def test_saturation_checker(stub):
    assert nb10.check_saturation(lambda x, t: float((x.abs() >= t).float().mean())).correct
    assert nb10.check_saturation(lambda x, t: metrics.saturation(x, t)).correct
    assert nb10.check_saturation(lambda x, t: (x.double().abs() >= t).double().mean().item()).correct
    assert nb10.check_saturation(stub).status == "not attempted"
    res = nb10.check_saturation(broken)
    assert res.status == "incorrect" and "ValueError" in res.message


@pytest.mark.parametrize("slip, phrase", [
    (lambda x, t: (x >= t).float().mean(), "only the bright end"),
    (lambda x, t: (x <= -t).float().mean(), "only the dark end"),
    (lambda x, t: (x.abs() >= t).sum(), "how many values"),
    (lambda x, t: (x > t).float().mean(), "take the absolute value"),
    (lambda x, t: (x.abs() > t).float().mean(), "use >=, not >"),
])
def test_saturation_slips_get_their_own_hints(slip, phrase):
    res = nb10.check_saturation(slip)
    assert res.status == "incorrect" and phrase in res.message


def test_a_saturation_case_sits_exactly_at_the_ends():
    (images, threshold), _, _ = nb10._saturation_cases()[0]
    assert threshold == 1.0 and (images == 1).any() and (images == -1).any()


# --- Exercise 3: a repeatable draw ------------------------------------------------------------------


def good_draw(seed):
    return torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_seeded_draw_checker_accepts_a_seeded_draw_and_restores_the_global_state(stub):
    before = torch.get_rng_state()
    assert nb10.check_seeded_draw(good_draw).correct
    assert torch.equal(torch.get_rng_state(), before)
    assert nb10.check_seeded_draw(stub).status == "not attempted"
    res = nb10.check_seeded_draw(broken)
    assert res.status == "incorrect" and "ValueError" in res.message


def test_seeded_draw_failures_are_told_apart():
    made_once = torch.Generator().manual_seed(0)
    for advancing in (lambda seed: torch.randn(4, generator=made_once),  # a generator made once
                      lambda seed: torch.randn(4)):  # the global random numbers
        res = nb10.check_seeded_draw(advancing)
        assert res.status == "incorrect" and "inside the function" in res.message
    ignores_seed = lambda seed: good_draw(0)  # noqa: E731
    assert "use the seed you are given" in nb10.check_seeded_draw(ignores_seed).message
    not_a_tensor = lambda seed: good_draw(seed).tolist()  # noqa: E731
    assert "torch.Tensor" in nb10.check_seeded_draw(not_a_tensor).message
    nan = lambda seed: good_draw(seed) * float("nan")  # noqa: E731
    assert "NaN" in nb10.check_seeded_draw(nan).message


def test_strict_mode_raises_for_incorrect_only(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert nb10.check_seeded_draw(good_draw).correct
    assert nb10.check_seeded_draw(stub).status == "not attempted"
    with pytest.raises(ExerciseFailed, match="inside the function"):
        nb10.check_seeded_draw(lambda seed: torch.randn(4))
    with pytest.raises(ExerciseFailed, match="FARTHEST"):
        nb10.check_copy_share(lambda s, t, th: (pair_rms(s, t, reduce="max") < th).float().mean())
    with pytest.raises(ExerciseFailed):
        nb10.check_saturation(broken)


# --- Questions ----------------------------------------------------------------------------------------


def fid_rows(fid_small=1.06, fid_large=0.24):
    return [{"n": 50, "fid": fid_small, "floor": 0.91, "ratio": fid_small / 0.91},
            {"n": 200, "fid": 0.5, "floor": 0.3, "ratio": 0.5 / 0.3},
            {"n": 898, "fid": fid_large, "floor": 0.11, "ratio": fid_large / 0.11}]


@pytest.mark.widgets
def test_fid_question_quotes_the_rows(answer):
    box = nb10.fid_count_question(fid_rows())
    assert box.result.status == "not attempted"
    assert "FID 1.06 at N = 50 and 0.24 at N = 898" in box.children[0].value
    res = answer(box, nb10.FID_COUNT_OPTIONS[0])
    assert res.status == "incorrect" and "only N changed" in res.message
    res = answer(box, nb10.FID_COUNT_OPTIONS[1])
    assert res.correct and "0.91 at N = 50" in res.message and "0.11 at N = 898" in res.message
    other = nb10.fid_count_question(list(reversed(fid_rows(2.5, 0.3))))  # any order: the ends are found by N
    assert "FID 2.50 at N = 50 and 0.30 at N = 898" in other.children[0].value


def test_fid_question_rejects_bad_rows():
    with pytest.raises(ValueError, match="at least two rows"):
        nb10.fid_count_question(fid_rows()[:1])
    with pytest.raises(ValueError, match="lacks"):
        nb10.fid_count_question([{"n": 50, "fid": 1.0}, {"n": 898, "fid": 0.2}])
    with pytest.raises(ValueError, match="do not show it"):
        nb10.fid_count_question(fid_rows(0.2, 1.06))  # swapped: FID rising with N is not the small-N bias
    with pytest.raises(ValueError, match="finite"):
        nb10.fid_count_question(fid_rows(float("nan")))
    with pytest.raises(ValueError, match="two different N"):
        nb10.fid_count_question([dict(fid_rows()[0]), dict(fid_rows()[0])])


LATENCY = {"sampling steps": ("25 -> 4 steps", 180.0), "resolution": ("64 -> 32 px", 40.0),
           "precision": ("fp32 -> fp16", 25.0), "VAE decode": ("full -> tiny decoder", 12.5),
           "text encode": ("cache the prompt", 3.2)}


def latency_rows(**ms):
    rows = [{"factor": f, "change": c, "ms": ms.get(f.replace(" ", "_"), v)} for f, (c, v) in LATENCY.items()]
    return rows[::-1]  # no order is promised


def correct_option(box, answer):
    for option in box.field.options:
        if answer(box, option).correct:
            return option
    raise AssertionError("no option is correct")


@pytest.mark.widgets
def test_bottleneck_question_takes_its_answer_from_the_rows(answer):
    box = nb10.bottleneck_question(latency_rows())
    assert box.result.status == "not attempted"
    assert correct_option(box, answer) == "sampling steps: 25 -> 4 steps"
    assert list(box.field.options) == sorted(box.field.options)  # the order gives nothing away
    res = answer(box, "sampling steps: 25 -> 4 steps")
    assert "sampling steps: 25 -> 4 steps (180 ms); resolution: 64 -> 32 px (40.0 ms); precision" in res.message
    assert res.message.index("VAE decode") < res.message.index("text encode")
    res = answer(box, "precision: fp32 -> fp16")
    assert res.status == "incorrect" and "25.0 ms" in res.message
    swapped = nb10.bottleneck_question(latency_rows(sampling_steps=3.2, text_encode=180.0))
    assert correct_option(swapped, answer) == "text encode: cache the prompt"
    two = nb10.bottleneck_question([{"factor": "VAE decode", "change": "tiny", "ms": 0.5},
                                    {"factor": "precision", "change": "fp16", "ms": 0.25}])
    assert correct_option(two, answer) == "VAE decode: tiny"
    costs = nb10.bottleneck_question(latency_rows(precision=-4.0))  # bf16 can cost time on a CPU
    res = answer(costs, "precision: fp32 -> fp16")
    assert res.status == "incorrect" and "saves nothing (-4.0 ms" in res.message
    assert correct_option(costs, answer) == "sampling steps: 25 -> 4 steps"


def test_bottleneck_question_rejects_bad_rows():
    with pytest.raises(ValueError, match="at least two rows"):
        nb10.bottleneck_question(latency_rows()[:1])
    with pytest.raises(ValueError, match="lacks"):
        nb10.bottleneck_question([{"factor": "a", "ms": 1.0}, {"factor": "b", "change": "x", "ms": 2.0}])
    with pytest.raises(ValueError, match="tie"):
        nb10.bottleneck_question(latency_rows(resolution=180.0))
    with pytest.raises(ValueError, match="finite"):
        nb10.bottleneck_question(latency_rows(precision=math.inf))
    with pytest.raises(ValueError, match="no change cuts latency"):
        nb10.bottleneck_question([{"factor": "a", "change": "x", "ms": -1.0}, {"factor": "b", "change": "y", "ms": 0.0}])
    with pytest.raises(ValueError, match="longer than 100"):
        nb10.bottleneck_question(latency_rows() + [{"factor": "x" * 90, "change": "y" * 20, "ms": 1.0}])
    with pytest.raises(ValueError, match="same option"):
        nb10.bottleneck_question(latency_rows() + [dict(latency_rows()[0], ms=1000.0)])


def test_question_options_fit_on_one_line():
    assert all(len(o) <= nb10.MAX_OPTION_CHARS for o in nb10.FID_COUNT_OPTIONS)
