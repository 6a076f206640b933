"""course_utils.parameterization: the eps / x0 / v conversions, their round trips, and the consistent x0 clamp."""

import pytest
import torch

from course_utils.parameterization import (
    PREDICTION_TYPES,
    clamp_x0_prediction,
    convert_prediction,
    epsilon_from_v,
    epsilon_from_x0,
    predict_x0_and_epsilon,
    v_from_epsilon_x0,
    x0_from_epsilon,
    x0_from_v,
)


@pytest.mark.parametrize("a", [0.999, 0.5, 0.01])
def test_prediction_round_trips(a):
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    xt = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    torch.testing.assert_close(x0_from_epsilon(xt, eps, a), x0)
    torch.testing.assert_close(epsilon_from_x0(xt, x0, a), eps)
    v = v_from_epsilon_x0(eps, x0, a)
    torch.testing.assert_close(x0_from_v(xt, v, a), x0)
    torch.testing.assert_close(epsilon_from_v(xt, v, a), eps)
    outputs = {"epsilon": eps, "sample": x0, "v_prediction": v}
    for src in PREDICTION_TYPES:
        for dst in PREDICTION_TYPES:
            torch.testing.assert_close(convert_prediction(outputs[src], xt, a, src, dst), outputs[dst])


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: epsilon_from_x0([1.0], [1.0], 1.0), ValueError, r"\(0, 1\)"),
        (lambda: convert_prediction([1.0], [1.0], 0.5, "noise", "sample"), ValueError, "'epsilon', 'sample', 'v_prediction'"),
        (lambda: convert_prediction([1.0], [1.0], 0.5, "epsilon", "x0"), ValueError, "Accepted"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_clamp_x0_prediction_clamps_x0_and_keeps_the_pair_consistent(prediction_type):
    g = torch.Generator().manual_seed(0)
    x_t, out, a = 2 * torch.randn(8, 1, 4, 4, generator=g), 3 * torch.randn(8, 1, 4, 4, generator=g), 0.3
    clamped = clamp_x0_prediction(out, x_t, a, prediction_type)
    x0, eps = predict_x0_and_epsilon(clamped, x_t, a, prediction_type)
    x0_raw, _ = predict_x0_and_epsilon(out, x_t, a, prediction_type)
    assert x0_raw.abs().max() > 1 and x0.abs().max() <= 1 + 1e-6
    torch.testing.assert_close(x0, x0_raw.clamp(-1, 1))
    torch.testing.assert_close(a**0.5 * x0 + (1 - a) ** 0.5 * eps, x_t)  # both describe the same x_t
    inside = x0_raw.abs() < 1  # where nothing was clamped, the prediction is unchanged
    torch.testing.assert_close(clamped[inside], out[inside], atol=1e-5, rtol=1e-5)
