"""Checkers for notebook 10, evaluation, failure modes and production notes.

The build, ``FRECHET_BUILD``: the Fréchet distance between two sets of features (digits-FID's formula),
graded by ``check_frechet`` on unit cases and on the notebook's real digit features beside the package's
``frechet_distance``; ``frechet_from_features`` is the package's version the notebook falls back on.

Exercises: the share of samples that are near-copies of a training image (nearest-neighbour RMS
distance under a threshold, as ``evaluation.memorization_report`` counts them), the share of
saturated pixel values (``metrics.saturation`` with both ends), and a draw that a seed makes
repeatable; plus questions on why one set of samples scores a different FID at a different N and
on which change would cut a model's latency the most, both answered from the notebook's measurements.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ...metrics import NUM_SAMPLES, features, reference_features, reference_split, saturation
from ...metrics.distances import nearest_data_distance
from ...metrics.frechet import frechet_distance, gaussian_stats
from .core import (CORRECT, INCORRECT, NOT_ATTEMPTED, BuildExercise, CheckResult, LearnerTimeout, Miss, _finish,
                   ask_choice, call_learner, check_cases, expect_close, grade_build)

MAX_OPTION_CHARS = 100  # a radio-button option longer than this wraps badly in the notebook

# --- Build: digits-FID from features -----------------------------------------------------------------

FRECHET_BUILD = BuildExercise(
    "Build 1 (digits-FID from features)",
    "write my_frechet(f1, f2): the Fréchet distance between Gaussians fitted to two feature matrices, f1 (N, D) "
    "and f2 (M, D), one row per image; this notebook's FID figures then use it.",
    ("unit cases against the package's frechet_distance: identical sets (about 0), shifted means "
     "(|mu1 - mu2|^2), known diagonal covariances, correlated features with N != M, and fewer samples than "
     "features (where a matrix square root comes out with complex round-off)",
     "the outcome: on the digit classifier's 64-d features, real digits (half B) and digits-ddpm's samples each "
     "scored against the reference half A, your digits-FID matches the package's within 0.1%"),
)

FRECHET_HINT = ("d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), with mu the (D,) mean over the rows "
                "(samples) and S the (D, D) covariance of the columns (features): np.cov(f, rowvar=False); "
                "(S1 S2)^(1/2) is the matrix square root, scipy.linalg.sqrtm, whose trace you take the real part of.")
COMPLEX_HINT = ("The distance is a real number, but a matrix square root (scipy.linalg.sqrtm, or the eigenvalues of "
                "the non-symmetric product S1 S2) can come out complex, with tiny imaginary parts, when the covariances "
                "are singular, as here with fewer samples than features. Keep the real part: np.trace(covmean).real.")


def frechet_from_features(f1, f2) -> float:
    """The package's version of the build: ``frechet_distance`` of the Gaussians ``gaussian_stats`` fits to
    ``(N, D)`` and ``(M, D)`` features."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def _tr_sqrt(a: np.ndarray, b: np.ndarray) -> float:
    """``Tr((a b)^{1/2})`` for symmetric PSD ``a``, ``b`` of any one size (the package's eigenvalue route)."""
    w, v = np.linalg.eigh(a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ b @ root), 0, None)).sum())


def _root(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _frechet_slips(f1: np.ndarray, f2: np.ndarray) -> list[tuple[Callable[[], float], str]]:
    """``(what the slip gives, its hint)``, each value a thunk (a slip that cannot be computed is skipped)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d2 = float(((mu1 - mu2) ** 2).sum())
    tr = float(np.trace(c1) + np.trace(c2))
    same_n = len(f1) == len(f2)

    def gram(f):
        centred = f - f.mean(0)
        return centred @ centred.T / (len(f) - 1)

    wrong_axis = ("Your covariance is taken over the wrong axis: the features are (N, D), one row per sample, so "
                  "the covariance is (D, D) between the columns: np.cov(f, rowvar=False) or torch.cov(f.T), not "
                  "np.cov(f) or torch.cov(f), which treat each row as a variable.")
    std_hint = ("You used per-feature standard deviations (or variances) where the formula needs the full (D, D) "
                "covariance matrix: the features are correlated, and the off-diagonal entries count. "
                "np.cov(f, rowvar=False).")
    slips = [
        (lambda: d2 + tr - _tr_sqrt(c1, c2),
         "The trace term is Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)): the factor 2 on the last trace is missing."),
        (lambda: d2 + tr - 2 * float(np.sqrt(np.diag(c1 @ c2)).sum()),
         "np.sqrt (or torch.sqrt) of the product S1 @ S2 takes the square root of every entry; the formula needs "
         "the MATRIX square root, the matrix R with R @ R = S1 @ S2: scipy.linalg.sqrtm(S1 @ S2)."),
        (lambda: d2 + tr - 2 * float(np.trace(_root(c1) @ _root(c2))),
         "The square root of the product is not the product of the square roots: take sqrtm(S1 @ S2), not "
         "sqrtm(S1) @ sqrtm(S2)."),
    ]
    if same_n:  # covariances of the wrong axis are (N, N): comparable only when N == M
        slips += [(lambda: d2 + float(np.trace(np.cov(f1)) + np.trace(np.cov(f2))) - 2 * _tr_sqrt(np.cov(f1), np.cov(f2)),
                   wrong_axis),
                  (lambda: d2 + float(np.trace(gram(f1)) + np.trace(gram(f2))) - 2 * _tr_sqrt(gram(f1), gram(f2)),
                   wrong_axis),
                  (lambda: frechet_from_features(f1.T, f2.T), wrong_axis)]
    b1, b2 = np.cov(f1, rowvar=False, ddof=0), np.cov(f2, rowvar=False, ddof=0)
    slips.append((lambda: d2 + float(np.trace(b1) + np.trace(b2)) - 2 * _tr_sqrt(b1, b2),
                  "Your covariances (or per-feature variances) divide by N; the package's, like np.cov's and "
                  "torch.cov's by default, divide by N - 1 (the unbiased estimate). Use the full (D, D) covariance "
                  "np.cov(f, rowvar=False), which does."))
    for ddof in (1, 0):  # after N - 1: on diagonal covariances numpy's std (ddof=0) gives the same number
        s1, s2 = f1.std(0, ddof=ddof), f2.std(0, ddof=ddof)
        slips += [(lambda s1=s1, s2=s2: d2 + float(((s1 - s2) ** 2).sum()), std_hint),
                  (lambda s1=s1, s2=s2: d2 + float(s1.sum() + s2.sum() - 2 * np.sqrt(s1 * s2).sum()), std_hint)]
    slips += [
        (lambda: d2 ** 0.5 + tr - 2 * _tr_sqrt(c1, c2),
         "The means term is the SQUARED distance |mu1 - mu2|^2 = ((mu1 - mu2) ** 2).sum(), not its norm."),
        (lambda: tr - 2 * _tr_sqrt(c1, c2),
         "The means term |mu1 - mu2|^2 is missing: two sets with the same spread but shifted means must be apart."),
    ]
    return slips


def _frechet_case(g: np.random.Generator, n: int, m: int, d: int, shift: float = 0.0, scale: float = 1.0):
    """Correlated features: ``(n, d)`` and ``(m, d)`` from two related Gaussians."""
    mix = np.eye(d) + 0.6 * g.standard_normal((d, d))
    f1 = g.standard_normal((n, d)) @ mix
    f2 = (g.standard_normal((m, d)) @ (mix + 0.3 * g.standard_normal((d, d)))) * scale + shift
    return f1, f2


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h


def _frechet_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(what, f1, f2)``: identical sets (distance 0), a shifted copy (|shift|^2 = 14.25), diagonal sample
    covariances (orthogonal +-1 columns: 2.25 + (16/15) * 5.25 = 7.85), correlated sets of two sizes, and
    fewer samples than features, where sqrtm's answer has complex round-off."""
    g = np.random.default_rng(2031)
    base, _ = _frechet_case(g, 40, 40, 5)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])  # |shift|^2 = 14.25
    columns = _hadamard(16)[:, 1:5]  # (16, 4): columns of mean 0, orthogonal, so sample covariances are diagonal
    diag1 = np.array([0.5, -1.0, 2.0, 0.0]) + columns * np.array([1.0, 2.0, 0.5, 3.0])
    diag2 = np.array([1.0, 0.0, 2.0, -1.0]) + columns[g.permutation(16)] * np.array([2.0, 1.5, 0.5, 1.0])
    return [("for two identical sets (40 x 5 features)", base, base.copy()),
            ("for a set and the same set shifted by a constant vector", base, base + shift),
            ("for features with diagonal covariances (16 x 4 each)", diag1, diag2),
            ("for correlated features, N = 60 against M = 45 (D = 6)", *_frechet_case(g, 60, 45, 6, 0.4, 1.3)),
            ("for fewer samples than features (6 x 10 each)", *_frechet_case(g, 6, 6, 10, 0.2, 1.2))]


def _is_complex_answer(x) -> bool:
    if isinstance(x, complex):
        return True
    if isinstance(x, torch.Tensor):
        return x.is_complex()
    return bool(np.iscomplexobj(x)) if isinstance(x, (np.ndarray, np.generic)) else False


def _frechet_answer(fn: Callable, f1: np.ndarray, f2: np.ndarray, where: str) -> float:
    """The learner's ``fn(f1, f2)`` on float64 tensor copies, as a float; ``Miss`` for complex or odd answers."""
    try:
        got = call_learner(fn, torch.tensor(f1, dtype=torch.float64), torch.tensor(f2, dtype=torch.float64))
    except (NotImplementedError, LearnerTimeout):
        raise
    except Exception as err:  # a known slip's error gets its hint; grade_build reports any other
        text = str(err)
        if "complex" in text or "without overflow" in text:
            raise Miss(f"Your code raised {type(err).__name__} {where}: {text}. {COMPLEX_HINT}") from err
        if "mismatch" in text or "shape" in text or "size" in text or "aligned" in text:
            raise Miss(f"Your code raised {type(err).__name__} {where}: {text}. Check the axes: f1 is (N, D) and f2 is "
                       "(M, D) with N != M here; the means are (D,) and the covariances (D, D), "
                       "np.cov(f, rowvar=False) or torch.cov(f.T).") from err
        raise
    if got is None:
        raise Miss(f"my_frechet returned None {where}: did you forget `return`?")
    if _is_complex_answer(got):
        raise Miss(f"my_frechet returned a complex number {where} ({complex(np.asarray(got).item()):.6g}). "
                   f"{COMPLEX_HINT}")
    try:
        value = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Miss(f"my_frechet should return one number {where}, got {type(got).__name__}.") from None
    if value.size != 1:
        raise Miss(f"my_frechet should return one number {where}, got an array of shape {value.shape}: sum the "
                   "means term and take the traces.")
    value = float(value.reshape(()))
    if not np.isfinite(value):
        raise Miss(f"my_frechet returned {value} {where}: a square root of a negative number? np.sqrt of the "
                   "matrix product takes the square root of every entry; the matrix square root is "
                   "scipy.linalg.sqrtm.")
    return value


def _frechet_stage_cases(fn: Callable) -> Callable[[], str]:
    def stage():
        cases = _frechet_cases()
        for where, f1, f2 in cases:
            got = _frechet_answer(fn, f1, f2, where)
            expected = frechet_from_features(f1, f2)
            hint = FRECHET_HINT
            if not np.isclose(got, expected, atol=1e-5, rtol=1e-5):
                for value, slip_hint in _frechet_slips(f1, f2):
                    try:
                        v = float(value())
                    except (ValueError, np.linalg.LinAlgError):
                        continue
                    if np.isfinite(v) and np.isclose(got, v, atol=1e-6, rtol=1e-4):
                        hint = slip_hint
                        break
            expect_close(got, expected, f"my_frechet {where}", hint, atol=1e-5, rtol=1e-5)
        return f"{len(cases)} unit cases match frechet_distance"
    return stage


def _frechet_stage_outcome(fn: Callable, samples: torch.Tensor) -> Callable[[], str]:
    def stage():
        n = min(len(samples), NUM_SAMPLES)
        reference = reference_features().numpy()
        scored = {"real digits (half B)": features(reference_split()[1][:n]).numpy(),
                  "digits-ddpm's samples": features(samples[:n]).numpy()}
        figures = []
        for what, f in scored.items():
            where = f"for {what} against the reference, N = {n}"
            got, expected = _frechet_answer(fn, f, reference, where), frechet_from_features(f, reference)
            expect_close(got, expected, f"my_frechet {where}", FRECHET_HINT, atol=1e-4, rtol=1e-3)
            figures.append(f"{what} {got:.4f} (the package's {expected:.4f})")
        return f"digits-FID at N = {n}: " + ", ".join(figures)
    return stage


def check_frechet(fn: Callable, samples: torch.Tensor) -> CheckResult:
    """Grade the build ``fn(f1 (N, D), f2 (M, D)) -> float``, the Fréchet distance of two feature sets: unit
    cases against ``frechet_distance``, then digits-FID of real digits and of ``samples`` (``(N, 1, 16, 16)``
    digits in [-1, 1], the notebook's model samples) against the reference features, beside the package's."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or tuple(samples.shape[1:]) != (1, 16, 16) \
            or len(samples) < 2:
        raise ValueError("samples must be (N, 1, 16, 16) digits with N >= 2 (the notebook's model samples), got "
                         f"{tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__}.")
    return grade_build(FRECHET_BUILD, _frechet_stage_cases(fn), _frechet_stage_outcome(fn, samples))


# --- Exercise 1: the share of near-copies ------------------------------------------------------------


def copy_share(samples: torch.Tensor, train: torch.Tensor, threshold: float) -> float:
    """The reference: the share of ``samples`` ``(N, C, H, W)`` whose RMS distance to the nearest image
    of ``train`` ``(M, C, H, W)`` is strictly below ``threshold``."""
    return float((nearest_data_distance(samples, train) < threshold).float().mean())


def _mean_squared(samples: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` float64: the mean over C, H, W of the squared difference of every pair."""
    diff = samples.double()[:, None] - others.double()[None]  # (N, M, C, H, W)
    return diff.pow(2).flatten(2).mean(2)


def _copy_slips(samples, train, threshold):
    msq = _mean_squared(samples, train)  # (N, M)
    dim = samples[0].numel()
    to_mean = _mean_squared(samples, train.mean(0, keepdim=True))[:, 0]  # (N,)
    share = lambda d: float((d < threshold).double().mean())  # noqa: E731
    return [
        (share((msq * dim).min(1).values.sqrt()),
         "That is the Euclidean distance (a SUM of squares): take the MEAN over the C*H*W pixel values before "
         "the square root, so the distance is in pixel units like the threshold."),
        (float((nearest_data_distance(samples, train) < threshold).sum()),
         "That is how many samples are copies: divide by the number of samples for a share in [0, 1]."),
        (share(to_mean.sqrt()),
         "You measured the distance to the AVERAGE training image: a copy is close to one particular training "
         "image, so take the distance to every training image and keep the nearest (min)."),
        (share(msq.min(1).values),
         "That compares the mean SQUARED difference with the threshold: take its square root first (RMS)."),
        (share(msq.max(1).values.sqrt()),
         "You kept the FARTHEST training image (max): a copy is close to its NEAREST one (min)."),
    ]


def _at_distance(image: torch.Tensor, rms: float, g: torch.Generator) -> torch.Tensor:
    """``image`` ``(C, H, W)`` moved in a random direction to RMS distance exactly ``rms``."""
    u = torch.randn(image.shape, generator=g)
    return image + rms * u / u.pow(2).mean().sqrt()


def _copy_case(g, shape, n_train, threshold, copy_radii, n_near_mean, n_fresh):
    """Near-copies of training images at the given RMS radii, samples near the average training image
    (far from every single one) and fresh samples, shuffled: ``(samples, train, threshold)``."""
    train = torch.randn(n_train, *shape, generator=g)
    parts = [_at_distance(train[i % n_train], r, g) for i, r in enumerate(copy_radii)]
    parts += [_at_distance(train.mean(0), 0.1, g) for _ in range(n_near_mean)]
    parts += [torch.randn(shape, generator=g) for _ in range(n_fresh)]
    samples = torch.stack(parts)[torch.randperm(len(parts), generator=g)]
    return samples, train, threshold


def _copy_cases():
    g = torch.Generator().manual_seed(10)
    # The first case tells every slip apart: 3 of 13 samples are copies, the Euclidean distance
    # finds 1, the squared one 6, the average image 4, the farthest image none.
    inputs = [_copy_case(g, (1, 4, 4), 6, 0.25, [0.03, 0.15, 0.15, 0.4, 0.4, 0.4], 4, 3),
              _copy_case(g, (3, 4, 4), 8, 0.3, [0.02, 0.1, 0.2, 0.5, 0.5], 1, 3),
              _copy_case(g, (1, 8, 8), 5, 0.5, [0.05, 0.3, 0.8], 0, 4)]
    return [(args, copy_share(*args), _copy_slips(*args)) for args in inputs]


def check_copy_share(fn: Callable) -> CheckResult:
    """``fn(samples (N, C, H, W), train (M, C, H, W), threshold) -> float``: the share of samples whose RMS
    distance to the nearest training image is below ``threshold``."""
    return check_cases("Exercise 1 (a nearest-neighbour copy check)", fn, _copy_cases(), atol=1e-6, rtol=1e-6,
                       hint="For each sample: the RMS distance sqrt(mean over C, H, W of the squared difference) to "
                            "every training image, the smallest of those; then the fraction of samples with that "
                            "distance < threshold.")


# --- Exercise 2: saturated pixel values --------------------------------------------------------------


def _saturation_slips(images, threshold):
    return [
        (float((images >= threshold).double().mean()),
         "That counts only the bright end: a value at -1 is saturated too, so compare |x| with the threshold."),
        (float((images <= -threshold).double().mean()),
         "That counts only the dark end: a value at +1 is saturated too, so compare |x| with the threshold."),
        (float((images.abs() >= threshold).sum()),
         "That is how many values are saturated: divide by the number of values for a share in [0, 1]."),
        (float((images > threshold).double().mean()),
         "Two things: take the absolute value (both ends count), and use >= so that a value exactly at the "
         "threshold counts as saturated."),
        (float((images.abs() > threshold).double().mean()),
         "A value exactly at the threshold counts as saturated: use >=, not >."),
    ]


def _exact_ends_images(g: torch.Generator) -> torch.Tensor:
    """``(2, 1, 4, 8)``: values inside (-0.9, 0.9), 5 at exactly +1, 7 at exactly -1, and (unclamped
    samples can overshoot) 2 above +1 and 3 below -1, in random places."""
    flat = torch.rand(64, generator=g) * 1.8 - 0.9
    ends = torch.tensor([1.0] * 5 + [-1.0] * 7 + [1.2] * 2 + [-1.3] * 3)
    flat[torch.randperm(64, generator=g)[: len(ends)]] = ends
    return flat.reshape(2, 1, 4, 8)


def _saturation_cases():
    g = torch.Generator().manual_seed(20)
    # The first case tells every slip apart; the others are images as samplers produce them. No value
    # lies within float32 rounding of a threshold, so float64 arithmetic gives the same answer.
    inputs = [(_exact_ends_images(g), 1.0),
              (torch.tanh(2 * torch.randn(4, 1, 8, 8, generator=g)), 0.98),
              (torch.tanh(torch.randn(2, 3, 8, 8, generator=g)).clamp(-0.85, 0.95), 0.9)]
    return [((x, t), saturation(x, t, ends="both"), _saturation_slips(x, t)) for x, t in inputs]


def check_saturation(fn: Callable) -> CheckResult:
    """``fn(images (N, C, H, W), threshold) -> float``: the share of pixel values with ``|x| >= threshold``."""
    return check_cases("Exercise 2 (the share of saturated pixels)", fn, _saturation_cases(), atol=1e-6, rtol=1e-6,
                       hint="Saturated means at either end: (images.abs() >= threshold), as a float, averaged over "
                            "every value of every image.")


# --- Exercise 3: a repeatable draw -------------------------------------------------------------------

SEEDED_NAME = "Exercise 3 (a seeded, repeatable draw)"


def _draw(fn: Callable, seed: int):
    """``(result, None)``, or ``(None, CheckResult)`` when ``fn(seed)`` raises or returns no usable tensor."""
    try:
        out = fn(seed)
    except NotImplementedError:
        return None, CheckResult(SEEDED_NAME, NOT_ATTEMPTED, "Fill in the function above, run its cell, then run "
                                                             "this one.")
    except Exception as err:  # a learner's bug is an answer to report, not a crash
        return None, CheckResult(SEEDED_NAME, INCORRECT, f"Your code raised {type(err).__name__} for seed {seed}: "
                                                         f"{err}")
    if not isinstance(out, torch.Tensor):
        return None, CheckResult(SEEDED_NAME, INCORRECT, f"Return the drawn images as a torch.Tensor (what "
                                                         f"model.sample gives), got {type(out).__name__}.")
    if not bool(torch.isfinite(out).all()):
        return None, CheckResult(SEEDED_NAME, INCORRECT, f"The draw for seed {seed} contains NaN or inf.")
    return out, None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b.to(a.device)))


def _seeded_result(fn: Callable) -> CheckResult:
    first, problem = _draw(fn, 0)
    if problem is None:
        torch.rand(100)  # other code uses the global random numbers in between
        again, problem = _draw(fn, 0)
    if problem is None and not _same(first, again):
        problem = CheckResult(SEEDED_NAME, INCORRECT,
                              "Two calls with seed 0 gave different images. Make the generator inside the function, "
                              "from the seed, on every call (a generator made once keeps advancing), and pass it "
                              "to every random draw: torch.Generator().manual_seed(seed).")
    if problem is None:
        other, problem = _draw(fn, 1)
    if problem is None and _same(first, other):
        problem = CheckResult(SEEDED_NAME, INCORRECT,
                              "Seeds 0 and 1 gave the same images: use the seed you are given to make the generator.")
    return problem or CheckResult(SEEDED_NAME, CORRECT, "The same seed gives bit-identical images, whatever ran in "
                                                        "between, and another seed gives other images.")


def check_seeded_draw(fn: Callable) -> CheckResult:
    """``fn(seed: int) -> torch.Tensor``: the same seed must give identical results even after other code
    used the global random numbers, and seeds 0 and 1 must differ. Calls ``fn`` three times (seeds 0, 0, 1).
    The global CPU random state is restored afterwards, so checking leaves the notebook's random numbers
    as they were."""
    state = torch.get_rng_state()
    try:
        return _finish(_seeded_result(fn))
    finally:
        torch.set_rng_state(state)


# --- Questions ---------------------------------------------------------------------------------------


def _check_rows(rows, keys: Sequence[str], what: str) -> list[dict]:
    """``rows`` as a list of at least two dicts that each hold ``keys``, or a ValueError naming ``what``."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or len(rows) < 2:
        raise ValueError(f"{what} needs a list of at least two rows, got {rows!r:.200}.")
    for row in rows:
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"every row of {what} needs the keys {list(keys)}; {row!r:.200} lacks {missing}.")
    return list(rows)


def _finite_number(row: dict, key: str, what: str) -> float:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what}: {key!r} must be a finite number, got {value!r} in {row!r:.200}.")
    return float(value)


FID_COUNT_OPTIONS = [
    "The model improved between the two measurements",
    "FID is biased upwards at small N: compare FIDs only at equal N, next to the floor at that N",
    "FID at small N is the more reliable figure, so the larger number is the true score",
    "The feature classifier was re-trained between the two measurements",
]


def _fid_ends(rows) -> tuple[dict, dict]:
    """The rows of the smallest and the largest N, checked."""
    what = "fid_count_question"
    rows = _check_rows(rows, ("n", "fid", "floor", "ratio"), what)
    for row in rows:
        for key in ("n", "fid", "floor"):
            _finite_number(row, key, what)
    small, large = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
    if small["n"] == large["n"]:
        raise ValueError(f"{what} needs rows at two different N, got only N = {small['n']}.")
    if not (small["fid"] > large["fid"] and small["floor"] > large["floor"]):
        raise ValueError(f"{what} asks why FID falls as N grows, but these rows do not show it: FID {small['fid']:.3g} "
                         f"and floor {small['floor']:.3g} at N = {small['n']}, FID {large['fid']:.3g} and floor "
                         f"{large['floor']:.3g} at N = {large['n']}.")
    return small, large


def fid_count_question(rows: Sequence[dict]):
    """Why one set of samples scores differently at different N, quoting ``rows`` (as returned by
    ``evaluation.fid_by_sample_count``: ``[{"n", "fid", "floor", "ratio"}]``, at least two N)."""
    small, large = _fid_ends(rows)
    o = FID_COUNT_OPTIONS
    return ask_choice(
        "Question A (FID and the number of samples)",
        f"The same samples scored FID {small['fid']:.2f} at N = {small['n']} and {large['fid']:.2f} at "
        f"N = {large['n']}. What explains the difference?",
        o, o[1],
        explanation=f"Real digits, which no model can beat, score {small['floor']:.2f} at N = {small['n']} and "
                    f"{large['floor']:.2f} at N = {large['n']}: with few samples the estimated mean and covariance "
                    f"are noisy, and the noise adds to the distance. An FID means something only next to the floor "
                    f"at the same N.",
        hints={o[0]: "The same samples of the same model were scored both times: only N changed.",
               o[2]: "Fewer samples give a noisier estimate, and the noise only adds to FID: look at the floor column, "
                     "which falls with N too.",
               o[3]: "Every row uses the same shipped classifier's features; only N changed."})


def _latency_rows(rows) -> list[tuple[str, float]]:
    """``[(option, ms)]`` of ``rows``, checked: options unique, short enough, and one clear largest ms.

    A negative ``ms`` is allowed: a change that costs time on this machine (bf16 on some CPUs).
    """
    what = "bottleneck_question"
    rows = _check_rows(rows, ("factor", "change", "ms"), what)
    out = []
    for row in rows:
        option = f"{row['factor']}: {row['change']}"
        if len(option) > MAX_OPTION_CHARS:
            raise ValueError(f"{what}: the option {option!r} is longer than {MAX_OPTION_CHARS} characters.")
        out.append((option, _finite_number(row, "ms", what)))
    options = [o for o, _ in out]
    if len(set(options)) != len(options):
        raise ValueError(f"{what}: two rows give the same option, {options}.")
    top = sorted(ms for _, ms in out)
    if top[-1] <= 0:
        raise ValueError(f"{what}: no factor accounts for any time (largest 'ms' {top[-1]}), so no change cuts latency.")
    if top[-1] == top[-2]:
        raise ValueError(f"{what}: two factors tie for the largest latency ({top[-1]} ms), so no single answer.")
    return out


def _fmt_ms(ms: float) -> str:
    """``ms`` with a sensible number of digits: "180 ms", "12.5 ms", "0.0123 ms", "-3.2 ms"."""
    size = abs(ms)
    digits = f"{size:.0f}" if size >= 100 else f"{size:.1f}" if size >= 1 else f"{size:.3g}"
    return f"{'-' if ms < 0 else ''}{digits} ms"


def _latency_hint(ms: float, most: float) -> str:
    what = (f"That accounts for {_fmt_ms(ms)} per image" if ms > 0 else
            f"On this machine that change saves nothing ({_fmt_ms(ms)} per image)")
    return f"{what}; another factor accounts for {_fmt_ms(most)}. Look for the largest number in the breakdown."


def bottleneck_question(rows: Sequence[dict]):
    """Which one change cuts latency the most, answered from ``rows`` (as returned by
    ``production.latency_breakdown``: ``[{"factor", "change", "ms"}]`` in any order, at least two;
    ``ms`` is the per-image time the factor accounts for, negative where the change costs time).

    The options are sorted by name, so their order gives nothing away whatever order the rows come in.
    """
    measured = _latency_rows(rows)
    answer, most = max(measured, key=lambda pair: pair[1])
    ranked = "; ".join(f"{o} ({_fmt_ms(ms)})" for o, ms in sorted(measured, key=lambda pair: -pair[1]))
    return ask_choice(
        "Question B (the latency bottleneck)",
        "Which one change would cut this model's latency the most?",
        sorted(o for o, _ in measured), answer,
        explanation=f"Measured per image, largest first: {ranked}. Cut the largest share first: that is where the "
                    f"time goes.",
        hints={o: _latency_hint(ms, most) for o, ms in measured if o != answer})


__all__ = ["FID_COUNT_OPTIONS", "FRECHET_BUILD", "MAX_OPTION_CHARS", "bottleneck_question", "check_copy_share",
           "check_frechet", "check_saturation", "check_seeded_draw", "copy_share", "fid_count_question",
           "frechet_from_features"]
