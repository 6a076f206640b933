"""course_utils.forward: the forward process, one step of the chain and the closed form."""

import pytest
import torch

from course_utils.forward import forward_step, q_sample
from course_utils.schedules import get_schedule


def test_seed_forward_step():
    # Seed, chapter 2: sqrt(0.98) * [0.8, -0.3] + sqrt(0.02) * [0.5, -0.7] = [0.792, -0.297] + [0.071, -0.099].
    x1 = forward_step([0.8, -0.3], 0.02, [0.5, -0.7])
    torch.testing.assert_close(x1, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3, rtol=0)


def test_closed_form_matches_the_chain_exactly_with_one_step():
    s = get_schedule("linear")
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(q_sample(x0, 0, eps, s), forward_step(x0, s.betas[0].item(), eps))


def test_closed_form_matches_the_chain_in_distribution():
    # Running t+1 chain steps from x0 = 1 gives mean sqrt(alpha_bar_t), variance 1 - alpha_bar_t.
    s, t, n = get_schedule("linear", 200), 149, 40000
    g = torch.Generator().manual_seed(0)
    x = torch.ones(n, dtype=torch.float64)
    for k in range(t + 1):
        x = forward_step(x, s.betas[k].item(), torch.randn(n, generator=g, dtype=torch.float64))
    a = s.alphas_cumprod[t].item()
    assert x.mean().item() == pytest.approx(a**0.5, abs=0.02)
    assert x.var().item() == pytest.approx(1 - a, abs=0.02)


def test_batched_timesteps_and_variance_preservation():
    s = get_schedule("cosine")
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 20000, generator=g)
    t = torch.tensor([0, 500, 999])
    xt = q_sample(x0, t, torch.randn(3, 20000, generator=g), s)
    assert xt.shape == x0.shape
    torch.testing.assert_close(xt.var(dim=1), torch.ones(3), atol=0.05, rtol=0)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: q_sample(torch.zeros(2, 3), 1000, torch.zeros(2, 3), get_schedule("linear")), ValueError, r"\[0, 999\]"),
        (lambda: q_sample(torch.zeros(2, 3), -1, torch.zeros(2, 3), get_schedule("linear")), ValueError, "0-indexed"),
        (lambda: q_sample(torch.zeros(2, 3), 0.5, torch.zeros(2, 3), get_schedule("linear")), TypeError, "int"),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([1.0]), torch.zeros(2, 3), get_schedule("linear")),
         TypeError, "integer"),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([1, 2, 3]), torch.zeros(2, 3), get_schedule("linear")),
         ValueError, r"shape \(B,\)"),
        (lambda: q_sample(torch.zeros(2, 3), 5, torch.zeros(2, 4), get_schedule("linear")), ValueError, "Shapes must match"),
        (lambda: q_sample(torch.zeros(2, 3), 5, torch.zeros(2, 3), "linear"), TypeError, "NoiseSchedule"),
        (lambda: forward_step([1.0, 2.0], 0.0, [0.0, 0.0]), ValueError, r"beta_t must lie in \(0, 1\]"),
        (lambda: forward_step([1.0, 2.0], 1.5, [0.0, 0.0]), ValueError, r"beta_t must lie"),
        (lambda: forward_step([1.0, 2.0], 0.1, [0.0]), ValueError, "Shapes must match"),
        (lambda: forward_step("abc", 0.1, [0.0]), TypeError, "number"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
