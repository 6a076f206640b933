"""course_utils.samplers.interop: our samplers read and write diffusers' scheduler configs, so one can
stand where the other does (``from_config`` both ways), and take the step arguments pipelines pass."""

import inspect

import diffusers
import pytest
import torch

from course_utils.samplers import (DDIMSampler, DDPMSampler, DPMSolverSampler, EulerSampler, FlowMatchEulerSampler,
                                   HeunSampler)
from course_utils.samplers.interop import SamplerConfig, schedule_from_config
from course_utils.schedules import get_schedule

# Stable Diffusion 1.5's scheduler_config.json (a PNDM config: the keys other schedulers read from it)
SD15 = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
        "trained_betas": None, "clip_sample": False}
PAIRS = [(DDIMSampler, diffusers.DDIMScheduler), (DDPMSampler, diffusers.DDPMScheduler),
         (DPMSolverSampler, diffusers.DPMSolverMultistepScheduler), (EulerSampler, diffusers.EulerDiscreteScheduler),
         (HeunSampler, diffusers.HeunDiscreteScheduler)]
# diffusers' DDIM and DDPM step from t to t - T // n whatever the spacing; ours to the next listed
# timestep. The two agree where the grid is evenly spaced by T // n: "leading", and "trailing" when n divides T.
SPACINGS = {DDIMSampler: (None, "leading", "trailing"), DDPMSampler: (None, "leading", "trailing")}


def _run(sampler, x, seed=1):
    """A whole loop with a smooth stand-in for a network; returns the final sample."""
    g = torch.Generator().manual_seed(seed)
    takes_generator = "generator" in inspect.signature(sampler.step).parameters
    for t in sampler.timesteps:
        out = torch.sin(3 * sampler.scale_model_input(x, t) + float(t) / 100)
        x = sampler.step(out, t, x, return_dict=False, **({"generator": g} if takes_generator else {}))[0]
    return x


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[p[0].__name__ for p in PAIRS])
@pytest.mark.parametrize("steps", [4, 20, 50])
def test_from_sd15s_config_the_whole_loop_matches_diffusers(ours, theirs, steps):
    for spacing in SPACINGS.get(ours, (None, "leading", "trailing", "linspace")):
        config = SD15 if spacing is None else {**SD15, "timestep_spacing": spacing}
        a, b = ours.from_config(config), theirs.from_config(config)
        a.set_timesteps(steps)
        b.set_timesteps(steps)
        torch.testing.assert_close(a.timesteps.double(), b.timesteps.double(), atol=1e-3, rtol=0)
        assert a.init_noise_sigma == pytest.approx(float(b.init_noise_sigma), rel=1e-5)
        x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * b.init_noise_sigma
        xa, xb = _run(a, x), _run(b, x)
        assert (xa - xb).abs().max() <= 1e-4 * max(1.0, float(xb.abs().max())), (spacing, steps)


def test_sd_configs_leading_grid_has_the_offset():
    sampler = DDIMSampler.from_config(SD15)
    sampler.set_timesteps(50)
    assert sampler.timesteps[[0, 1, -1]].tolist() == [981, 961, 1]
    assert sampler.final_alpha_cumprod == pytest.approx(float(sampler.schedule.alphas_cumprod[0]))


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_our_config_builds_the_same_diffusers_scheduler(ours, theirs):
    a = ours.from_config(SD15)
    b = theirs.from_config(a.config)
    assert b.config.beta_schedule == "scaled_linear" and b.config.beta_start == 0.00085
    torch.testing.assert_close(b.alphas_cumprod.double(), a.schedule.alphas_cumprod, rtol=1e-5, atol=0)
    assert a.config._class_name == theirs.__name__
    assert ours.from_config(a.config).config == a.config  # a round trip changes nothing


def test_schedules_without_a_diffusers_formula_travel_as_their_betas():
    cosine = DDIMSampler(get_schedule("cosine", s=0.02))  # diffusers' squaredcos_cap_v2 fixes s = 0.008
    assert cosine.config.trained_betas is not None
    torch.testing.assert_close(schedule_from_config(cosine.config).betas, cosine.schedule.betas)
    assert DDIMSampler(get_schedule("cosine")).config.beta_schedule == "squaredcos_cap_v2"
    zero = DDIMSampler(get_schedule("linear", rescale_betas_zero_snr=True), prediction_type="v_prediction")
    assert zero.config.rescale_betas_zero_snr is True
    rebuilt = diffusers.DDIMScheduler.from_config(zero.config).alphas_cumprod.double()
    torch.testing.assert_close(rebuilt, zero.schedule.alphas_cumprod, rtol=1e-5, atol=1e-7)


def test_flow_samplers_carry_their_shift():
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    ours = FlowMatchEulerSampler.from_config(theirs.config)
    assert ours.shift == 3.0 and ours.config.shift == 3.0
    ours.set_timesteps(8)
    theirs.set_timesteps(8)
    torch.testing.assert_close(ours.timesteps, theirs.timesteps)


def test_overrides_replace_single_keys():
    assert DDIMSampler.from_config(SD15, prediction_type="v_prediction").prediction_type == "v_prediction"
    assert DDIMSampler.from_config(diffusers.DDIMScheduler.from_config(SD15)).steps_offset == 1  # a scheduler too


@pytest.mark.parametrize("call, err, match", [
    (lambda: DDIMSampler.from_config({**SD15, "thresholding": True}), ValueError, "thresholding=False only"),
    (lambda: DPMSolverSampler.from_config({**SD15, "algorithm_type": "sde-dpmsolver++"}), ValueError,
     "algorithm_type='dpmsolver\\+\\+' only"),
    (lambda: EulerSampler.from_config({**SD15, "use_exponential_sigmas": True}), ValueError, "use_exponential_sigmas"),
    (lambda: DDIMSampler.from_config({**SD15, "beta_schedule": "sigmoid"}), ValueError, "squaredcos_cap_v2"),
    (lambda: DDIMSampler.from_config(SD15, eta=0.5), TypeError, "does not take eta"),
    (lambda: DDIMSampler.from_config("scaled_linear"), TypeError, "scheduler config"),
    (lambda: DDIMSampler.from_config(SD15, steps_offset=-1), ValueError, "steps_offset"),
])
def test_what_cannot_be_honoured_is_refused_by_name(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_a_leading_offset_past_the_last_timestep_is_refused():
    with pytest.raises(ValueError, match="steps_offset=1 puts the first of 1000 leading timesteps at 1000"):
        DDIMSampler.from_config(SD15).set_timesteps(1000)


def test_the_config_is_read_only_and_names_missing_keys():
    config = DDIMSampler(get_schedule("linear")).config
    assert isinstance(config, SamplerConfig) and config.set_alpha_to_one is True
    with pytest.raises(TypeError, match="read-only"):
        config["steps_offset"] = 2
    with pytest.raises(AttributeError, match="has no 'solver_order'"):
        config.solver_order


def test_set_begin_index_starts_a_multistep_solver_midway():
    # diffusers' img2img pipelines start at timesteps[t_start] and call set_begin_index(t_start) first
    sampler = DPMSolverSampler(get_schedule("scaled_linear"))
    sampler.set_timesteps(10)
    sampler.set_begin_index(4)
    x = torch.randn(1, 4, 2, 2)
    sampler.step(torch.zeros_like(x), sampler.timesteps[4], x)  # accepted: the 5th timestep is expected
    with pytest.raises(ValueError, match="expected timestep"):
        sampler.step(torch.zeros_like(x), sampler.timesteps[4], x)
    with pytest.raises(ValueError, match="begin_index"):
        sampler.set_begin_index(-1)


def test_keys_the_source_had_at_its_defaults_are_left_to_the_new_class():
    # diffusers records which keys a scheduler took at its own defaults (DDIM's "leading" spacing here):
    # another class built from that config uses its own default there ("linspace" for Euler and DPM-Solver++)
    ddim = diffusers.DDIMScheduler(**{k: v for k, v in SD15.items() if k in ("beta_start", "beta_end", "beta_schedule",
                                                                              "steps_offset", "set_alpha_to_one")})
    for ours, theirs in ((EulerSampler, diffusers.EulerDiscreteScheduler),
                         (DPMSolverSampler, diffusers.DPMSolverMultistepScheduler)):
        a, b = ours.from_config(ddim.config), theirs.from_config(ddim.config)
        assert a.timestep_spacing == b.config.timestep_spacing == "linspace"
    assert DDIMSampler.from_config(ddim.config).timestep_spacing == "leading"


def test_euler_noises_an_image_as_diffusers_does():
    ours, theirs = EulerSampler.from_config(SD15), diffusers.EulerDiscreteScheduler.from_config(SD15)
    ours.set_timesteps(10)
    theirs.set_timesteps(10)
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = theirs.timesteps[3:4].repeat(2)
    theirs.set_begin_index(3)
    torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t))
