"""Flow matching: the straight path, its velocity, the loss, straightness, and the Euler sampler
against diffusers' FlowMatchEulerDiscreteScheduler."""

import pytest
import torch

from course_utils.denoisers import ClampX0
from course_utils.flow_matching import flow_matching_loss, interpolate, velocity_target, velocity_to_x0
from course_utils.metrics.distances import straightness
from course_utils.samplers import FlowMatchEulerSampler, sample_loop


def test_path_ends_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    torch.testing.assert_close(interpolate(x0, eps, 0.0), x0)  # sigma = 0 is data
    torch.testing.assert_close(interpolate(x0, eps, 1.0), eps)  # sigma = 1 is noise
    sigma = torch.tensor([0.1, 0.5, 0.9])
    x = interpolate(x0, eps, sigma)
    # The velocity is the derivative along the path: a finite difference in sigma recovers it.
    h = 1e-3
    fd = (interpolate(x0, eps, sigma + h) - interpolate(x0, eps, sigma - h)) / (2 * h)
    torch.testing.assert_close(fd, velocity_target(x0, eps), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(velocity_to_x0(velocity_target(x0, eps), x, sigma), x0, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate(x0, eps, 1.5)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        interpolate(x0, eps, torch.tensor([0.1, 0.2]))


def test_loss_is_zero_for_the_exact_velocity_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 1, 4, 4, generator=g)
    # With every x0 equal to one point c, the exact velocity field is v(x, s) = (x - c) / s.
    c = x0[:1].expand_as(x0)

    def exact(x, timestep):
        s = (timestep / 1000).view(-1, 1, 1, 1)
        return (x - c) / s

    assert flow_matching_loss(exact, c, torch.Generator().manual_seed(2)).item() < 1e-8
    assert flow_matching_loss(lambda x, t: torch.zeros_like(x), c, torch.Generator().manual_seed(2)).item() > 0.5


def test_straightness():
    line = torch.linspace(0, 1, 5).view(5, 1, 1) * torch.tensor([[3.0, 4.0]])  # (5, 1, 2): a straight path
    assert straightness(line).item() == pytest.approx(1.0)
    corner = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])  # two sides of a unit square
    assert straightness(corner).item() == pytest.approx(2**0.5 / 2)
    with pytest.raises(ValueError, match="at least 2 points"):
        straightness(line[:1])


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [1, 4, 8, 50])
def test_euler_matches_diffusers_over_whole_loops(steps, shift):
    from diffusers import FlowMatchEulerDiscreteScheduler

    ours, theirs = FlowMatchEulerSampler(shift=shift), FlowMatchEulerDiscreteScheduler(shift=shift)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, atol=0, rtol=0)
    torch.testing.assert_close(ours.sigmas, theirs.sigmas, atol=0, rtol=0)

    def field(x, t):  # a smooth velocity field that depends on x and t
        return torch.sin(x) + (t.float() / 1000) * x

    out = {}
    for name, sampler in (("ours", ours), ("diffusers", theirs)):
        out[name] = sample_loop(field, sampler, (2, 3, 4, 4), steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["ours"], out["diffusers"], atol=1e-6, rtol=1e-6)


def test_euler_integrates_a_straight_flow_exactly_in_one_step():
    # For a single data point c the flow is straight: one Euler step from noise lands on c.
    c = torch.full((1, 1, 2, 2), 0.3)
    sampler = FlowMatchEulerSampler()
    sampler.set_timesteps(1)
    x1 = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    v = (x1 - c) / (sampler.timesteps[0] / 1000)
    out = sampler.step(v, sampler.timesteps[0], x1)
    torch.testing.assert_close(out.prev_sample, c)
    torch.testing.assert_close(out.pred_original_sample, c)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shift must be a positive number"):
        FlowMatchEulerSampler(shift=0)
    s = FlowMatchEulerSampler()
    with pytest.raises(RuntimeError, match="set_timesteps"):
        s.step(torch.zeros(1), 1000.0, torch.zeros(1))
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="not one of this sampler's timesteps"):
        s.step(torch.zeros(1), 123.0, torch.zeros(1))
    with pytest.raises(ValueError, match="Shapes must match"):
        s.step(torch.zeros(2), s.timesteps[0], torch.zeros(1))


def test_the_shared_loop_trains_a_flow_on_toy_data():
    # Eight Gaussians (std 0.2) on a circle of radius 2 (real points: median 0.24 from their mode).
    # After 1,500 steps Euler-16 samples sit at a median 0.31 from a mode (Euler-1: 1.89, near the
    # centre; one step is not enough without reflow or distillation); noise sits at about 1.
    from course_utils.data import make_toy2d
    from course_utils.data.toy2d import gaussian_mixture_params
    from course_utils.models.mlp import ToyMLP
    from course_utils.training import TrainConfig, train

    torch.manual_seed(0)
    data = make_toy2d("gaussian_mixture", 4000, seed=0).float()
    cfg = TrainConfig(steps=1500, batch_size=256, lr=2e-3, warmup_steps=20, ema_decay=0.99,
                      objective="flow_matching", log_every=100)
    result = train(ToyMLP(), data, None, cfg, device="cpu", progress=False, value_range=None)
    assert result.losses[-1][1] < 0.85 * result.losses[0][1]  # the loss has a high floor: v is random given x
    means, _ = gaussian_mixture_params()

    def mode_distance(x):  # (B,) distance to the nearest mode
        return torch.cdist(x.double(), means).min(1).values

    sampler = FlowMatchEulerSampler()
    samples = sample_loop(lambda x, t: result.ema_model(x, t), sampler, (1000, 2), 16,
                          generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    assert mode_distance(samples).median() < 0.4 < mode_distance(noise).median()


def test_flow_objective_needs_no_schedule_but_diffusion_does():
    from course_utils.models.mlp import ToyMLP
    from course_utils.training import TrainConfig, train

    data = torch.randn(64, 2)
    with pytest.raises(ValueError, match="needs the noise schedule"):
        train(ToyMLP(), data, None, TrainConfig(steps=1, batch_size=8), progress=False, value_range=None)
    with pytest.raises(ValueError, match="'diffusion', 'flow_matching'"):
        TrainConfig(objective="score")


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [1, 2, 5, 20])
def test_heun_matches_diffusers_over_whole_loops(steps, shift):
    from diffusers import FlowMatchHeunDiscreteScheduler

    from course_utils.samplers import FlowMatchHeunSampler

    ours, theirs = FlowMatchHeunSampler(shift=shift), FlowMatchHeunDiscreteScheduler(shift=shift)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps, atol=0, rtol=0)

    def field(x, t):
        return torch.sin(x) + (t.float() / 1000) * x

    out = {name: sample_loop(field, s, (2, 3, 4, 4), None, generator=torch.Generator().manual_seed(0))
           for name, s in (("ours", ours), ("diffusers", theirs))}
    # diffusers recovers v as (x - (x - sigma v)) / sigma, which loses float32 digits when sigma is
    # small (its last corrector runs at sigma = 1/T): measured up to 1.4e-5 here.
    torch.testing.assert_close(out["ours"], out["diffusers"], atol=1e-4, rtol=1e-4)


def test_heun_is_second_order():
    # dx/dsigma = x has the solution x(0) = x(1) * e^{-1}. Halving the step divides Euler's error by
    # about 2 and Heun's by about 4 (its one Euler step at the end adds only a local, O(h^2), error).
    from course_utils.samplers import FlowMatchHeunSampler

    x1 = torch.ones(1, 1)
    exact = x1 * torch.exp(torch.tensor(-1.0))

    def err(sampler, n):
        sampler.set_timesteps(n)
        x = x1.clone()
        for t in sampler.timesteps:
            x = sampler.step(x, t, x).prev_sample
        return (x - exact).abs().item()

    # Measured: Euler 0.0214 / 0.0099 at 10 / 20 steps (ratio 2.2), Heun 0.00082 / 0.00018 (ratio 4.7).
    euler = [err(FlowMatchEulerSampler(), n) for n in (10, 20)]
    heun = [err(FlowMatchHeunSampler(), n) for n in (10, 20)]
    assert 1.8 < euler[0] / euler[1] < 2.5 and heun[0] / heun[1] > 3.5 and heun[1] < 0.1 * euler[1]


def test_flow_model_in_the_pipeline():
    from course_utils.models import UNet, UNetConfig
    from course_utils.pipeline import DiffusionModel
    from course_utils.schedules import get_schedule

    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(), num_classes=10))
    for p in net.parameters():  # a non-zero velocity field
        torch.nn.init.normal_(p, std=0.05)
    model = DiffusionModel(net, None, "flow", info={"name": "f", "conditioning": "class"})
    assert model.is_flow and "flow matching" in repr(model)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model.sample(4, steps=6, labels=[1, 2, 3, 4], generator=g())  # Euler by default
    b = model.sample(4, steps=6, labels=[1, 2, 3, 4], generator=g(), sampler="heun")
    assert a.shape == b.shape == (4, 1, 16, 16) and a.abs().max() <= 1 and not torch.equal(a, b)
    # The consistent clamp: the velocity it returns points at an x0 inside [-1, 1].
    x, t = 3 * torch.randn(2, 1, 16, 16), torch.tensor(500.0)
    v = ClampX0(lambda x_t, t_: torch.randn(2, 1, 16, 16), None, "flow")(x, t)
    assert (x - 0.5 * v).abs().max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="Accepted: 'euler', 'heun'"):
        model.sample(2, sampler="ddim")
    with pytest.raises(ValueError, match="takes schedule=None"):
        DiffusionModel(net, get_schedule("cosine"), "flow")
    with pytest.raises(ValueError, match="needs its noise schedule"):
        DiffusionModel(net, None, "epsilon")


# --- Reflow and the toy distance (notebook 08) -----------------------------------------------------


def test_reflow_pairs_follow_the_ode():
    from course_utils.reflow import reflow_pairs

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
    from course_utils.reflow import fit_pairs, paired_flow_loss
    from course_utils.models.mlp import ToyMLP

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


def test_sliced_wasserstein():
    from course_utils.metrics.distances import sliced_wasserstein

    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-12)
    # A translation by c moves every projection on u by c . u: the mean of |c . u| over unit
    # directions in 2-D is |c| * E|cos| = |c| * 2 / pi (= 1.273 for |c| = 2).
    c = torch.tensor([2.0, 0.0])
    assert sliced_wasserstein(x, x + c, num_projections=4000) == pytest.approx(2 * 2 / torch.pi, rel=0.03)
    assert sliced_wasserstein(x, x[:500]) < 0.1  # a subsample of the same cloud: close, N != M allowed
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sliced_wasserstein(x, torch.zeros(3, 3))
