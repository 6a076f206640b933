"""course_utils.reflow: reflow's coupled pairs follow the ODE, and the paired loss and its trainer."""

import pytest
import torch

from course_utils.models.mlp import ToyMLP
from course_utils.reflow import fit_pairs, paired_flow_loss, reflow_pairs


def test_reflow_pairs_follow_the_ode():
    # dx/dsigma = x from sigma = 1 to 0 gives x(0) = x(1) / e; Euler with N steps gives
    # x(1) * prod(1 - h_k), within 1% of 1/e at N = 200 (the grid ends at 1/T, then jumps to 0).
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    x0, same = reflow_pairs(lambda x, t: x, noise, steps=200)
    assert same is noise
    torch.testing.assert_close(x0, noise * torch.exp(torch.tensor(-1.0)), atol=0, rtol=1e-2)
    # A single data point c: the straight flow v = (x - c) / sigma is followed exactly.
    c = torch.tensor([[0.5, -1.0]])
    x0, _ = reflow_pairs(lambda x, t: (x - c) / (t / 1000), torch.randn(4, 2), steps=3)
    torch.testing.assert_close(x0, c.expand(4, 2))


def test_paired_loss_is_zero_for_the_coupled_velocity_and_fit_pairs_learns_it():
    # Pairs whose noise is the data shifted by d: the velocity noise - x0 = d is the same everywhere.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(512, 2, generator=g)
    d = torch.tensor([1.5, -0.5])
    assert paired_flow_loss(lambda x, t: d.expand_as(x), x0, x0 + d).item() < 1e-12
    assert paired_flow_loss(lambda x, t: torch.zeros_like(x), x0, x0 + d).item() == pytest.approx(
        (d**2).mean().item())  # mean over both coordinates of d^2 = (2.25 + 0.25) / 2
    torch.manual_seed(0)
    net = ToyMLP()
    losses = fit_pairs(net, x0, x0 + d, steps=150, lr=3e-3)
    assert len(losses) == 150 and losses[0] > 1.0 and max(losses[-10:]) < 0.02


def test_the_paired_loss_draws_only_sigma_and_keeps_each_pair_together():
    # x_sigma = (1 - sigma) x0 + sigma noise with each row's own noise; the network sees t = sigma * 1000.
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    seen = []

    def spy(x, t):
        seen.append((x, t))
        return torch.zeros_like(x)

    loss = paired_flow_loss(spy, x0, noise, torch.Generator().manual_seed(1))
    sigma = torch.rand(6, generator=torch.Generator().manual_seed(1))
    x, t = seen[0]
    torch.testing.assert_close(t, sigma * 1000)
    torch.testing.assert_close(x, (1 - sigma[:, None]) * x0 + sigma[:, None] * noise)
    torch.testing.assert_close(loss, (noise - x0).pow(2).mean())  # a zero prediction pays the whole velocity
    with pytest.raises(ValueError, match="Shapes must match"):
        paired_flow_loss(spy, x0, noise[:3])


def test_fit_pairs_trains_a_frozen_copy_and_refuses_bad_input():
    torch.manual_seed(0)
    net = ToyMLP().requires_grad_(False)  # an EMA copy arrives frozen
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(2))
    before = [p.clone() for p in net.parameters()]
    losses = fit_pairs(net, x0, x0 + 1.0, steps=3, batch_size=8)
    assert len(losses) == 3 and any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fit_pairs(net, x0, x0, steps=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        reflow_pairs(net, x0, steps=0)
