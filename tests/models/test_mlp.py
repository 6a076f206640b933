"""course_utils.models.mlp: the toy MLP denoiser's shapes, zero start, timestep input and config checks."""

import pytest
import torch

from course_utils.models.mlp import ToyMLP, ToyMLPConfig
from tests.helpers import random_weights


def test_it_predicts_zero_at_first_for_any_batch_and_timestep():
    model = ToyMLP()
    x = torch.randn(5, 2)
    assert torch.equal(model(x, torch.arange(5)), torch.zeros(5, 2))  # zero-initialised output layer
    assert model(x, 500).shape == (5, 2)  # a scalar timestep is broadcast


def test_the_timestep_changes_the_output_once_trained():
    torch.manual_seed(0)
    model = random_weights(ToyMLP(ToyMLPConfig(dim=3, hidden=16, layers=2)))
    x = torch.randn(4, 3)
    assert (model(x, 10) - model(x, 900)).abs().max() > 1e-3


def test_parameter_count_follows_the_widths():
    # Default: Linear(2 + 32 -> 128), 2 x Linear(128 -> 128), Linear(128 -> 2), weights and biases:
    # (34 * 128 + 128) + 2 * (128 * 128 + 128) + (128 * 2 + 2) = 4,480 + 33,024 + 258 = 37,762.
    assert ToyMLP().num_parameters() == 37_762


@pytest.mark.parametrize("make, error, match", [
    (lambda: ToyMLPConfig(time_dim=7), ValueError, "time_dim must be even"),
    (lambda: ToyMLPConfig(layers=0), ValueError, "layers must be a positive integer"),
    (lambda: ToyMLPConfig(hidden=2.5), TypeError, "hidden must be a positive integer"),
    (lambda: ToyMLP()(torch.zeros(4, 3), 1), ValueError, r"x must have shape \(B, 2\)"),
    (lambda: ToyMLP()(torch.zeros(4, 2), torch.tensor([1, 2])), ValueError, r"\(B,\) = \(4,\)"),
])
def test_bad_input_is_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
