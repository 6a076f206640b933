"""course_utils._validation: the shared argument checks name what is accepted."""

import numpy as np
import pytest
import torch

from course_utils._validation import (as_tensor, broadcast_to_sample, check_choice, check_levels, check_positive_int,
                                      check_same_shape, check_timesteps, paired_tensors, unit_coefficient)


def test_check_choice_returns_the_value_or_names_every_accepted_one():
    assert check_choice("colour", "red", ("red", "blue")) == "red"
    with pytest.raises(ValueError, match="Unknown colour 'pink'. Accepted: 'red', 'blue'."):
        check_choice("colour", "pink", iter(("red", "blue")))  # any iterable, read once


@pytest.mark.parametrize("value, expected", [(1, 1), (7, 7), (torch.tensor(3), 3), (np.int64(4), 4), (2.0, 2),
                                             (np.float32(5.0), 5), (torch.tensor(2.0), 2)])
def test_check_positive_int_accepts_whole_numbers_from_one(value, expected):
    """numpy integers and whole floats (2.0) stand for the integer they equal (issue 30)."""
    assert check_positive_int("steps", value) == expected and type(check_positive_int("steps", value)) is int


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError), ("3", TypeError), (np.bool_(True), TypeError),
    (torch.tensor(2.5), TypeError), (torch.tensor([1, 2]), TypeError), (float("nan"), ValueError), (None, TypeError),
])
def test_check_positive_int_refuses_the_rest(value, error):
    with pytest.raises(error, match="steps must be a positive integer"):
        check_positive_int("steps", value)


def test_as_tensor_keeps_tensors_and_makes_python_data_float64():
    t = torch.ones(2, dtype=torch.float16)
    assert as_tensor(t) is t
    assert as_tensor([1, 2]).dtype == torch.float64 and as_tensor(np.arange(3)).dtype == torch.float64
    assert as_tensor(torch.arange(3)).dtype == torch.float64  # integer tensors become floats too
    assert as_tensor([1.5], dtype=torch.float32).dtype == torch.float32
    with pytest.raises(TypeError, match="x must be a number, a list of numbers, an array or a tensor; got str"):
        as_tensor("abc", "x")


def test_broadcast_to_sample_shapes_a_per_example_number_to_multiply_the_sample():
    sample = torch.zeros(3, 2, 4, 4, dtype=torch.float32)
    c = broadcast_to_sample(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), sample)
    assert c.shape == (3, 1, 1, 1) and c.dtype == torch.float32
    assert (c * torch.ones_like(sample))[:, 1, 2, 3].tolist() == [1.0, 2.0, 3.0]
    assert broadcast_to_sample(0.5, sample).shape == ()
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(B,\).*\(2,\) for a sample of shape"):
        broadcast_to_sample(torch.ones(2), sample, "alpha")


def test_unit_coefficient_is_in_the_open_interval_unless_one_is_allowed():
    like = torch.zeros(2, 3)
    assert unit_coefficient(0.5, "a", like, allow_one=False).item() == 0.5
    assert unit_coefficient(1.0, "beta", like, allow_one=True).item() == 1.0
    for bad in (0.0, 1.0, float("nan"), [0.5, 1.5]):
        with pytest.raises(ValueError, match=r"a must lie in \(0, 1\)"):
            unit_coefficient(bad, "a", like, allow_one=False)


def test_same_shapes_or_an_error_listing_each():
    check_same_shape(a=torch.zeros(2), b=torch.ones(2))
    with pytest.raises(ValueError, match=r"Shapes must match; got x0: \(2, 3\), noise: \(2, 4\)."):
        check_same_shape(x0=torch.zeros(2, 3), noise=torch.zeros(2, 4))
    a, b = paired_tensors([1.0, 2.0], [3, 4], "x", "eps")
    assert b.dtype == a.dtype == torch.float64


def test_check_levels_needs_a_size_that_halves_cleanly():
    check_levels((1, 2, 2), 16)  # 16 -> 8 -> 4
    with pytest.raises(ValueError, match=r"sample_size 18 must be divisible by 2\*\*2 for 3 levels"):
        check_levels((1, 2, 2), 18)
    with pytest.raises(ValueError, match="channel_mults must be positive integers"):
        check_levels((1, 0), 16)


def test_check_timesteps_accepts_0_indexed_integers_only():
    assert check_timesteps(5, 10).dtype == torch.long and check_timesteps([0, 9], 10).tolist() == [0, 9]
    with pytest.raises(ValueError, match=r"0-indexed, so they must lie in \[0, 9\]; got min 0, max 10"):
        check_timesteps(torch.tensor([0, 10]), 10)
    with pytest.raises(TypeError, match="integer timesteps, got dtype torch.float32"):
        check_timesteps(torch.tensor([1.0]), 10)
    with pytest.raises(TypeError, match="got a bool"):
        check_timesteps(True, 10)
    with pytest.raises(ValueError, match="a scalar or a 1-D batch"):
        check_timesteps(torch.zeros(2, 2, dtype=torch.long), 10)
