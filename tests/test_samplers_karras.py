"""Euler and Heun in sigma (course_utils.samplers.euler, .heun_discrete) and Karras spacing (.karras):
diffusers' numbers, the timesteps they visit, the registry's dispatch and DiffusionModel.sample.

Parity, as tests/test_parity_diffusers.py: handed our float64 schedule, diffusers' EulerDiscreteScheduler
and HeunDiscreteScheduler compute the same float32 timesteps and sigmas, and whole loops agree to
float32 rounding (measured: bit for bit, all three schedules, 1 to 25 steps). With diffusers' own
float32 schedule the sigmas differ by float32 rounding of alpha_bar (up to 2.7e-4 relative, at the
cosine schedule's last sigma), so loops are compared on an exact denoiser, which contracts the start.
"""

import math

import numpy as np
import pytest
import torch

from course_utils.denoisers import ClampX0
from course_utils.parameterization import from_x0_eps
from course_utils.samplers import (SAMPLERS, DDIMSampler, EulerSampler, FlowMatchEulerSampler, FlowMatchHeunSampler,
                                   HeunSampler, get_entry, karras_sigmas, make_sampler, sample_loop, samplers_for)
from course_utils.samplers.karras import alpha_bar_at, sigma_at_timestep, sigma_to_t, training_sigmas
from course_utils.schedules import DIFFUSERS_BETA_SCHEDULE, SCHEDULE_NAMES, get_schedule

# diffusers 0.42 reads a tensor schedule with np.array(copy=False), which numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
STEPS = (1, 4, 10, 25)
SCHEDULES = {name: get_schedule(name) for name in SCHEDULE_NAMES}


def diffusers_scheduler(kind: str, name: str, ours: bool = True, **config):
    """diffusers' Euler or Heun for schedule ``name``; ``ours``: handed our float64 alpha_bar."""
    from diffusers import EulerDiscreteScheduler, HeunDiscreteScheduler

    cfg = {"beta_schedule": DIFFUSERS_BETA_SCHEDULE[name], "beta_start": 0.0001, "beta_end": 0.02}
    if name == "scaled_linear":
        cfg |= {"beta_start": 0.00085, "beta_end": 0.012}
    scheduler = {"euler": EulerDiscreteScheduler, "heun": HeunDiscreteScheduler}[kind](**cfg, **config)
    if ours:
        schedule = SCHEDULES[name]
        scheduler.betas, scheduler.alphas = schedule.betas.clone(), schedule.alphas.clone()
        scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    return scheduler


def ours(kind: str, name: str, **config):
    return {"euler": EulerSampler, "heun": HeunSampler}[kind](SCHEDULES[name], **config)


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for a network: smooth in x, depends on (fractional) t."""
    return torch.tanh(0.7 * x + 0.001 * t.to(x.dtype)) * 0.9 - 0.05 * x


def mixture_denoiser(schedule, prediction_type: str = "epsilon"):
    """The exact prediction for 2-D data drawn from two Gaussians (means (+-0.5, 0.3), std 0.2), at
    fractional timesteps too (``alpha_bar_at``): a model whose ODE pulls every start onto the data."""
    means, var = torch.tensor([[0.5, 0.3], [-0.5, 0.3]], dtype=torch.float64), 0.04

    def model(x, t):
        a = alpha_bar_at(schedule, t)
        xd = x.double()
        total = a * var + 1 - a  # the variance of x_t given the component
        logits = -((xd[:, None] - a**0.5 * means) ** 2).sum(-1) / (2 * total)  # (B, 2)
        r = torch.softmax(logits, -1)[..., None]  # (B, 2, 1)
        x0 = (r * (means + a**0.5 * var / total * (xd[:, None] - a**0.5 * means))).sum(1)  # E[x0 | x_t], (B, 2)
        eps = (xd - a**0.5 * x0) / (1 - a) ** 0.5
        return from_x0_eps(x0, eps, a**0.5, (1 - a) ** 0.5, prediction_type).to(x.dtype)

    return model


def run(sampler, model, steps, shape=(2, 1, 4, 4), seed=0):
    return sample_loop(model, sampler, shape, steps, generator=torch.Generator().manual_seed(seed))


# --- karras_sigmas -------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_min, sigma_max, n, rho", [
    (0.002, 80.0, 18, 7.0), (0.0064, 20291.0, 10, 7.0), (0.029, 14.6, 1, 7.0), (0.1, 1.0, 5, 3.0), (0.5, 0.5, 4, 7.0)])
def test_karras_sigmas_are_diffusers_and_eq_5(sigma_min, sigma_max, n, rho):
    from diffusers import EulerDiscreteScheduler

    got = karras_sigmas(sigma_min, sigma_max, n, rho)
    assert got.dtype == torch.float64 and got.shape == (n,)
    if rho == 7.0:  # diffusers' fixed rho, with the config's ends
        theirs = EulerDiscreteScheduler(sigma_min=sigma_min, sigma_max=sigma_max)._convert_to_karras(np.ones(2), n)
        np.testing.assert_array_equal(got.numpy(), theirs)
    # Eq. (5) of Karras et al. 2022, written out: (max^(1/rho) + i / (N - 1) (min^(1/rho) - max^(1/rho)))^rho
    ramp = [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    eq5 = [(sigma_max ** (1 / rho) + r * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho for r in ramp]
    np.testing.assert_allclose(got.numpy(), eq5, rtol=1e-13)
    assert math.isclose(got[0], sigma_max, rel_tol=1e-12)
    assert n == 1 or math.isclose(got[-1], sigma_min, rel_tol=1e-12)
    assert bool((got[:-1] >= got[1:]).all())  # descending


def test_rho_one_is_even_spacing_and_larger_rho_packs_steps_at_small_sigma():
    np.testing.assert_allclose(karras_sigmas(0.1, 10.0, 6, rho=1.0).numpy(), np.linspace(10.0, 0.1, 6), rtol=1e-12)
    below_one = {rho: int((karras_sigmas(0.002, 80.0, 20, rho) < 1).sum()) for rho in (1.0, 3.0, 7.0)}
    assert below_one[1.0] < below_one[3.0] < below_one[7.0]  # measured: 1, 7, 10 of the 20 levels


@pytest.mark.parametrize("args, error, match", [
    ((0.1, 10.0, 0), ValueError, "num_inference_steps must be a positive integer"),
    ((0.1, 10.0, 2.5), TypeError, "num_inference_steps"),
    ((20.0, 10.0, 5), ValueError, r"sigma_min must lie in \[0, 10\] \(at most sigma_max\)"),
    ((-0.1, 10.0, 5), ValueError, "sigma_min"),
    ((0.1, float("inf"), 5), ValueError, "sigma_max"),
    ((0.1, 10.0, 5, 0.0), ValueError, "rho must be a positive number"),
    (("0.1", 10.0, 5), TypeError, "sigma_min"),
])
def test_karras_sigmas_refuses_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        karras_sigmas(*args)


# --- Parity with diffusers ------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("kind", ["euler", "heun"])
@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_loops_match_diffusers_handed_our_schedule(name, kind, karras, prediction_type):
    for n in STEPS:
        a, b = (ours(kind, name, prediction_type=prediction_type, use_karras_sigmas=karras),
                diffusers_scheduler(kind, name, prediction_type=prediction_type, use_karras_sigmas=karras))
        x, y = run(a, toy_model, n), run(b, toy_model, n)
        assert torch.equal(a.timesteps, b.timesteps) and torch.equal(a.sigmas, b.sigmas), n
        assert a.init_noise_sigma == float(b.init_noise_sigma)
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["euler", "heun"])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_other_spacings_and_the_sample_prediction_match_diffusers(kind, spacing):
    for n, karras, pt in ((1, False, "sample"), (7, True, "epsilon"), (10, False, "v_prediction")):
        config = {"timestep_spacing": spacing, "use_karras_sigmas": karras, "prediction_type": pt}
        a, b = ours(kind, "linear", **config), diffusers_scheduler(kind, "linear", **config)
        x, y = run(a, toy_model, n), run(b, toy_model, n)
        assert torch.equal(a.timesteps, b.timesteps) and a.init_noise_sigma == float(b.init_noise_sigma)
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_euler_karras_ends_match_diffusers_sigma_min_and_sigma_max():
    config = {"use_karras_sigmas": True, "sigma_min": 0.05, "sigma_max": 80.0}
    a, b = ours("euler", "cosine", **config), diffusers_scheduler("euler", "cosine", **config)
    x, y = run(a, toy_model, 10), run(b, toy_model, 10)
    assert torch.equal(a.sigmas, b.sigmas) and torch.equal(a.timesteps, b.timesteps) and a.init_noise_sigma == 80
    torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_loops_match_diffusers_with_its_own_float32_schedule(name):
    model = mixture_denoiser(SCHEDULES[name])
    for kind in ("euler", "heun"):
        for n, karras in ((4, True), (10, False), (25, True)):
            if name == "cosine" and kind == "heun" and n < 25:
                # Heun's first step from the cosine schedule's sigma_max = 20,291 multiplies the 2.6e-4 by which
                # float32 moves that sigma (measured: 4e-3 at 4 Karras steps, 0.13 at 10 linspace ones); the
                # two agree exactly handed the same schedule (test_loops_match_diffusers_handed_our_schedule)
                continue
            a, b = (ours(kind, name, use_karras_sigmas=karras),
                    diffusers_scheduler(kind, name, ours=False, use_karras_sigmas=karras))
            x, y = run(a, model, n, shape=(8, 2)), run(b, model, n, shape=(8, 2))
            torch.testing.assert_close(a.sigmas, b.sigmas, rtol=3e-4, atol=0)
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)  # measured: at most 8e-5 (cosine, Euler)


@pytest.mark.parametrize("kind", ["euler", "heun"])
def test_set_sigmas_is_the_karras_grid_and_diffusers_custom_sigmas(kind):
    schedule = SCHEDULES["cosine"]
    a, b = ours(kind, "cosine", use_karras_sigmas=True, sigma_max=80.0), ours(kind, "cosine", use_karras_sigmas=True)
    a.set_timesteps(8)
    b.set_sigmas(karras_sigmas(float(training_sigmas(schedule)[0]), 80.0, 8))
    assert torch.equal(a.timesteps, b.timesteps) and torch.equal(a.sigmas, b.sigmas) and b.num_inference_steps == 8
    if kind == "euler":  # diffusers' set_timesteps(sigmas=...) takes the list with its final 0
        theirs = diffusers_scheduler("euler", "cosine")
        theirs.set_timesteps(sigmas=b.sigmas.tolist())
        torch.testing.assert_close(b.timesteps, theirs.timesteps, rtol=0, atol=1e-3)  # from float32 sigmas
        assert torch.equal(b.sigmas, theirs.sigmas)
    with pytest.raises(ValueError, match="must descend and lie within"):
        b.set_sigmas([1.0, 2.0])
    with pytest.raises(ValueError, match="must descend and lie within"):
        b.set_sigmas([1e6, 1.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        b.set_sigmas([[1.0]])


# --- What the samplers do -------------------------------------------------------------------------

def test_euler_in_sigma_is_ddim():
    # x' = x0 + sigma' (x - x0) / sigma in sigma-space is DDIM's eta = 0 step in x_t = x / sqrt(sigma^2 + 1)
    # (Karras et al. 2022, Sec. 4; Song et al. 2021, Sec. 4.3): on the same grid the loops agree.
    schedule = SCHEDULES["cosine"]
    euler, ddim = EulerSampler(schedule, timestep_spacing="leading"), DDIMSampler(schedule, clip_sample=False)
    x, y = run(euler, toy_model, 10), run(ddim, toy_model, 10)
    assert euler.timesteps.tolist() == ddim.timesteps.tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["euler", "heun"])
def test_one_data_point_is_reached_exactly(kind):
    # All data at c: D(x; sigma) = c, and dx/dsigma = (x - c) / sigma is solved exactly by both methods.
    c = torch.tensor([[0.5, -1.0]])
    schedule = SCHEDULES["linear"]

    def model(x, t):  # the noise prediction at x_t when x0 = c
        a = alpha_bar_at(schedule, t)
        return (x - a**0.5 * c) / (1 - a) ** 0.5

    out = sample_loop(model, ours(kind, "linear", use_karras_sigmas=True), (4, 2), 6,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, c.expand(4, 2), rtol=1e-4, atol=1e-4)


def test_heun_lists_inner_timesteps_twice_and_keeps_its_order():
    heun, euler = ours("heun", "cosine", use_karras_sigmas=True), ours("euler", "cosine", use_karras_sigmas=True)
    heun.set_timesteps(4)
    euler.set_timesteps(4)
    e, s = euler.timesteps.tolist(), euler.sigmas.tolist()
    assert heun.order == 2 and heun.timesteps.tolist() == [e[0], e[1], e[1], e[2], e[2], e[3], e[3]]
    assert heun.sigmas.tolist() == [s[0], s[1], s[1], s[2], s[2], s[3], s[3], 0.0]
    assert get_entry("heun").nfe(4) == len(heun.timesteps) == 7
    x = torch.zeros(1, 2)
    heun.step(x, heun.timesteps[0], x)
    with pytest.raises(ValueError, match=r"Heun \(predictor, then corrector\) keeps state between steps"):
        heun.step(x, heun.timesteps[3], x)


def test_karras_timesteps_are_fractional_and_map_back_to_their_sigmas():
    schedule = SCHEDULES["cosine"]
    sampler = EulerSampler(schedule, use_karras_sigmas=True)
    sampler.set_timesteps(10)
    t, sigmas = sampler.timesteps, sampler.sigmas[:-1]
    assert t.dtype == torch.float32 and float(t[0]) == 999 and 0 <= float(t[-1]) < 1e-9 and (t != t.round()).any()
    back = torch.tensor([sigma_at_timestep(schedule, float(v)) for v in t], dtype=torch.float64)
    torch.testing.assert_close(back, sigmas.double(), rtol=2e-4, atol=0)  # t stored in float32
    np.testing.assert_allclose(sigma_to_t(training_sigmas(schedule)[[3, 500]], np.log(training_sigmas(schedule))),
                               [3, 500], atol=1e-9)
    assert alpha_bar_at(schedule, 500) == float(schedule.alphas_cumprod[500])  # an integer t: the table's own
    assert math.isclose(alpha_bar_at(schedule, float(t[5])), 1 / (1 + float(sigmas[5]) ** 2), rel_tol=5e-4)


def test_the_x0_clamp_reads_a_fractional_timestep_at_its_karras_sigma():
    schedule = SCHEDULES["cosine"]
    sampler = EulerSampler(schedule, use_karras_sigmas=True)
    sampler.set_timesteps(10)
    t = sampler.timesteps[6]
    a = 1 / (1 + float(sampler.sigmas[6]) ** 2)
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    eps = ClampX0(lambda x_t, t_: 5 * torch.ones_like(x_t), schedule, "epsilon")(x, t)
    x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5  # the x0 the clamped prediction implies at the Karras sigma
    assert x0.abs().max() <= 1 + 1e-3 and x0.abs().max() > 0.99


def test_the_network_takes_fractional_timesteps():
    from course_utils import pretrained

    net = pretrained.load("digits-ddpm", device="cpu").denoiser
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        at_int, at_float, between = net(x, torch.tensor(500)), net(x, torch.tensor(500.0)), net(x, torch.tensor(500.4))
    assert torch.equal(at_int, at_float) and not torch.equal(at_float, between)


# --- Arguments ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, match", [
    (lambda: EulerSampler("cosine"), TypeError, "schedule must be a NoiseSchedule"),
    (lambda: HeunSampler(SCHEDULES["cosine"], prediction_type="noise"), ValueError, "Accepted: 'epsilon'"),
    (lambda: EulerSampler(SCHEDULES["cosine"], timestep_spacing="karras"), ValueError, "'linspace', 'leading'"),
    (lambda: EulerSampler(SCHEDULES["cosine"], use_karras_sigmas="yes"), TypeError, "use_karras_sigmas"),
    (lambda: EulerSampler(SCHEDULES["cosine"], sigma_max=80.0), ValueError, "pass use_karras_sigmas=True"),
    (lambda: HeunSampler(SCHEDULES["cosine"], use_karras_sigmas=True, sigma_max=1e6), ValueError,
     "within the schedule's sigmas"),
    (lambda: HeunSampler(SCHEDULES["linear"], use_karras_sigmas=True, sigma_min=5, sigma_max=1), ValueError,
     "sigma_min must be at most sigma_max"),
    (lambda: ours("euler", "linear").set_timesteps(0), ValueError, "positive integer"),
    (lambda: ours("heun", "linear").set_timesteps(1001), ValueError, "at most num_train_timesteps = 1000"),
    (lambda: ours("euler", "linear").step(torch.zeros(2), 999.0, torch.zeros(2)), RuntimeError, "set_timesteps"),
    (lambda: make_sampler("euler", SCHEDULES["cosine"], shift=3.0), ValueError, "flow-matching sampler's"),
    (lambda: make_sampler("heun", use_karras_sigmas=True), ValueError, "the diffusion sampler's"),
    (lambda: make_sampler("euler", SCHEDULES["cosine"], rho=5.0), ValueError, "no setting of it"),
    (lambda: make_sampler("euler", SCHEDULES["cosine"], clip_sample=True), ValueError, "ClampX0"),
])
def test_bad_arguments_are_refused_naming_what_is_accepted(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_timestep_off_the_grid_is_refused():
    sampler = ours("euler", "linear", use_karras_sigmas=True)
    sampler.set_timesteps(5)
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="not one of this sampler's timesteps"):
        sampler.step(x, 500.0, x)
    with pytest.raises(ValueError, match="needs the timestep"):
        sampler.scale_model_input(x)


# --- The registry and DiffusionModel.sample ---------------------------------------------------------

def test_euler_and_heun_serve_both_families_by_schedule():
    schedule = SCHEDULES["cosine"]
    assert type(make_sampler("euler", schedule)) is EulerSampler
    assert type(make_sampler("euler")) is FlowMatchEulerSampler
    assert type(make_sampler("heun", schedule)) is HeunSampler and type(make_sampler("heun")) is FlowMatchHeunSampler
    karras = make_sampler("heun", schedule, prediction_type="v_prediction", use_karras_sigmas=True)
    assert karras.use_karras_sigmas and karras.prediction_type == "v_prediction"
    assert make_sampler("heun", shift=3.0).shift == 3.0
    assert samplers_for("diffusion")[0] == "ddim" and {"euler", "heun"} <= set(samplers_for("diffusion"))
    assert samplers_for("flow_matching") == ("euler", "heun")
    assert SAMPLERS["heun"].check_options("diffusion", {"use_karras_sigmas": True}) == {"use_karras_sigmas": True}
    with pytest.raises(ValueError, match="takes 'use_karras_sigmas', 'timestep_spacing'"):
        SAMPLERS["euler"].check_options("diffusion", {"karras": True})
    with pytest.raises(ValueError, match="it takes 'shift'"):
        SAMPLERS["euler"].check_options("flow_matching", {"use_karras_sigmas": True})
    with pytest.raises(ValueError, match="it takes none"):
        SAMPLERS["ddim"].check_options("diffusion", {"use_karras_sigmas": True})
    with pytest.raises(TypeError, match="sampler_options must be a dict"):
        SAMPLERS["heun"].check_options("diffusion", ["use_karras_sigmas"])


def test_digits_ddpm_samples_with_heun_and_euler_on_karras_sigmas():
    from course_utils import pretrained

    model = pretrained.load("digits-ddpm", device="cpu")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    karras = {"use_karras_sigmas": True, "sigma_max": 80.0}
    heun = model.sample(4, steps=3, sampler="heun", sampler_options=karras, generator=g())
    euler = model.sample(4, steps=5, sampler="euler", sampler_options=karras, generator=g())
    assert heun.shape == euler.shape == (4, 1, 16, 16) and heun.abs().max() <= 1 and euler.abs().max() <= 1
    assert torch.equal(heun, model.sample(4, steps=3, sampler="heun", sampler_options=karras, generator=g()))
    sampler = model.make_sampler("heun", 3, sampler_options=karras)
    assert type(sampler) is HeunSampler and sampler.use_karras_sigmas and sampler.sigma_max == 80.0
    with pytest.raises(ValueError, match="sampler_options 'rho' are not settings of sampler 'heun'"):
        model.sample(1, sampler="heun", sampler_options={"rho": 5})
    with pytest.raises(ValueError, match="it takes none"):
        model.sample(1, sampler="ddim", sampler_options={"use_karras_sigmas": True})
