"""course_utils.course.exercises.nb09_karras: the Karras-spacing build accepts a solution written apart,
names each plausible slip, and its outcome stage draws the package's digits."""

import math

import numpy as np
import pytest
import torch

from course_utils import pretrained
from course_utils.course.exercises import nb09, nb09_karras
from course_utils.samplers import karras_sigmas


@pytest.fixture(scope="module")
def digits():
    return pretrained.load("digits-ddpm")


def mine(sigma_min, sigma_max, n, rho=7.0, ramp=None, power=True, zero=False, order=1):
    """Eq. (5) of Karras et al. 2022 written apart (plain Python); the keywords make the slips."""
    ramp = [0.0] if n == 1 else [i / (n - 1) for i in range(n)] if ramp is None else ramp
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    levels = [(hi + r * (lo - hi)) ** (rho if power else 1) for r in ramp][::order]
    return torch.tensor(levels + [0.0] * zero, dtype=torch.float64)


def hint(fn, model):
    result = nb09.check_karras_sigmas(fn, model)
    assert result.status == "incorrect"
    return result.message


def test_a_solution_written_apart_passes_and_the_stub_is_not_attempted(digits, stub):
    result = nb09.check_karras_sigmas(mine, digits)
    assert result.correct, result.message
    assert "draws the package's 8 digits" in result.message
    assert nb09.check_karras_sigmas(stub, digits).status == "not attempted"
    assert nb09.check_karras_sigmas(lambda lo, hi, n, rho=7.0: karras_sigmas(lo, hi, n, rho).tolist(), digits).correct
    float32 = lambda lo, hi, n, rho=7.0: karras_sigmas(lo, hi, n, rho).float()  # noqa: E731
    assert nb09.check_karras_sigmas(float32, digits).correct
    assert "Graded on" in str(nb09.build_karras_sigmas())


def test_each_slip_gets_its_own_hint(digits):
    assert "without a trailing 0" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, zero=True), digits)
    assert "descending, sigma_max first" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, order=-1), digits)
    assert "raise it back to the power rho" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, power=False),
                                                    digits)
    assert "swapped" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, 1 / rho), digits)  # rho inside, 1/rho out
    assert "even spacing in sigma (rho = 1)" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, 1.0), digits)
    log = lambda lo, hi, n, rho=7.0: np.exp(np.linspace(math.log(hi), math.log(lo), n))  # noqa: E731
    assert "log sigma" in hint(log, digits)
    by_n = lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, ramp=[i / n for i in range(n)])  # noqa: E731
    assert "i / (n - 1)" in hint(by_n, digits)
    assert "not n + 1" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n + 1, rho), digits)
    inner = lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, ramp=np.linspace(0, 1, n + 2)[1:-1])  # noqa: E731
    assert "Both ends" in hint(inner, digits)
    by_zero = lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho, ramp=[i / (n - 1) for i in range(n)])  # noqa: E731
    assert "divides by zero" in hint(by_zero, digits)
    assert "forget `return`" in hint(lambda lo, hi, n, rho=7.0: None, digits)
    assert "1-D" in hint(lambda lo, hi, n, rho=7.0: mine(lo, hi, n, rho)[None], digits)


def test_every_slip_differs_from_the_right_levels():
    for case in nb09_karras.CASES:
        right = karras_sigmas(*case).numpy()
        for wrong, text in nb09_karras.slips(*case):
            assert wrong.shape != right.shape or not np.allclose(wrong, right, rtol=1e-6), (case, text)


def test_the_outcome_stage_is_heun_through_the_levels(digits):
    # heun_digits through the package's levels is what model.sample draws with the same Karras grid
    lo = float(torch.sqrt((1 - digits.schedule.alphas_cumprod[0]) / digits.schedule.alphas_cumprod[0]))
    x = nb09.heun_digits(digits, karras_sigmas(lo, 80.0, 4), 4)
    y = digits.sample(4, steps=4, sampler="heun", sampler_options={"use_karras_sigmas": True, "sigma_max": 80.0},
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, y)
