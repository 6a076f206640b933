"""Parity with diffusers: our schedules and samplers give diffusers' numbers.

Two levels, for schedules and for whole sampling loops:

- The algorithm, exactly: diffusers' scheduler is handed our float64 schedule, both run in float64,
  and every loop agrees to 1e-10 (only the order of floating-point operations differs).
- End to end, with diffusers' defaults: diffusers builds its schedule in float32, ours in float64.
  The schedules agree to float32 precision, and float32 loops agree to 1e-3. The loop drift is
  rounding, amplified where x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) divides by a tiny sqrt(a) at
  the noisiest steps (measured on this test's inputs: at most 3e-4, with the cosine schedule).
"""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from course_utils.samplers import DDIMSampler, DDPMSampler, sample_loop
from course_utils.schedules import DIFFUSERS_BETA_SCHEDULE, SCHEDULE_NAMES, get_schedule

SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012}
EXACT = {"rtol": 1e-10, "atol": 1e-10}
FLOAT32_LOOP = {"rtol": 1e-3, "atol": 1e-3}


def diffusers_config(name: str, num_timesteps: int = 1000) -> dict:
    cfg = {"num_train_timesteps": num_timesteps, "beta_schedule": DIFFUSERS_BETA_SCHEDULE[name]}
    if name == "scaled_linear":
        cfg.update(SD_BETAS)
    return cfg


def with_our_schedule(scheduler, schedule):
    """Hand a diffusers scheduler our float64 schedule, so only the algorithms differ."""
    scheduler.betas = schedule.betas.clone()
    scheduler.alphas = schedule.alphas.clone()
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    return scheduler


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for a trained network: smooth in x, depends on t."""
    return torch.tanh(0.7 * x + 0.001 * t.to(x.dtype)) * 0.9 - 0.05 * x


def run(sampler, shape, steps, seed, dtype, **kw):
    g = torch.Generator().manual_seed(seed)
    return sample_loop(toy_model, sampler, shape, steps, generator=g, dtype=dtype, **kw)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("num_timesteps", [1000, 250])
def test_schedules_match_diffusers(name, num_timesteps):
    ours = get_schedule(name, num_timesteps)
    theirs = DDPMScheduler(**diffusers_config(name, num_timesteps))
    torch.testing.assert_close(ours.betas.float(), theirs.betas, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ours.alphas_cumprod.float(), theirs.alphas_cumprod, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("num_inference_steps", [None, 50, 7])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_ddpm_loop_matches_diffusers(name, num_inference_steps, prediction_type):
    schedule, shape = get_schedule(name), (3, 1, 4, 4)
    ours = DDPMSampler(schedule, prediction_type=prediction_type)
    theirs = DDPMScheduler(**diffusers_config(name), prediction_type=prediction_type)
    a = run(ours, shape, num_inference_steps, 0, torch.float32)
    b = run(theirs, shape, num_inference_steps, 0, torch.float32)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    torch.testing.assert_close(a, b, **FLOAT32_LOOP)

    theirs = with_our_schedule(DDPMScheduler(**diffusers_config(name), prediction_type=prediction_type), schedule)
    a = run(ours, shape, num_inference_steps, 0, torch.float64)
    b = run(theirs, shape, num_inference_steps, 0, torch.float64)
    torch.testing.assert_close(a, b, **EXACT)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("num_inference_steps", [50, 10, 1000])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_loop_matches_diffusers(name, num_inference_steps, eta):
    schedule, shape = get_schedule(name), (2, 3, 4, 4)
    ours = DDIMSampler(schedule)
    theirs = DDIMScheduler(**diffusers_config(name))
    a = run(ours, shape, num_inference_steps, 1, torch.float32, eta=eta)
    b = run(theirs, shape, num_inference_steps, 1, torch.float32, eta=eta)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    torch.testing.assert_close(a, b, **FLOAT32_LOOP)

    theirs = with_our_schedule(DDIMScheduler(**diffusers_config(name)), schedule)
    a = run(ours, shape, num_inference_steps, 1, torch.float64, eta=eta)
    b = run(theirs, shape, num_inference_steps, 1, torch.float64, eta=eta)
    torch.testing.assert_close(a, b, **EXACT)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_ddim_without_clipping_matches_diffusers(prediction_type):
    """Unbounded data (the 2-D toys) is sampled with clip_sample=False."""
    schedule = get_schedule("cosine")
    ours = DDIMSampler(schedule, clip_sample=False, prediction_type=prediction_type)
    theirs = with_our_schedule(DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False,
                                             prediction_type=prediction_type), schedule)
    a = run(ours, (5, 2), 20, 2, torch.float64)
    b = run(theirs, (5, 2), 20, 2, torch.float64)
    torch.testing.assert_close(a, b, **EXACT)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timestep_spacings_match_diffusers(spacing):
    for n in (1, 3, 10, 50, 999, 1000):
        ours = DDPMSampler(get_schedule("linear"), timestep_spacing=spacing)
        theirs = DDPMScheduler(timestep_spacing=spacing)
        ours.set_timesteps(n)
        theirs.set_timesteps(n)
        assert torch.equal(ours.timesteps, theirs.timesteps), (spacing, n)


def test_single_steps_match_including_pred_original_sample():
    schedule = get_schedule("cosine")
    ours = DDPMSampler(schedule)
    theirs = with_our_schedule(DDPMScheduler(beta_schedule="squaredcos_cap_v2"), schedule)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for t in (999, 500, 1, 0):
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(5))
        b = theirs.step(eps, t, x, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, **EXACT)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, **EXACT)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("num_inference_steps", [1, 2, 5, 10, 20, 50])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_dpm_solver_loop_matches_diffusers(name, num_inference_steps, prediction_type):
    from diffusers import DPMSolverMultistepScheduler

    from course_utils.samplers import DPMSolverSampler

    schedule, shape = get_schedule(name), (3, 1, 4, 4)
    ours = DPMSolverSampler(schedule, prediction_type=prediction_type)
    theirs = DPMSolverMultistepScheduler(**diffusers_config(name), prediction_type=prediction_type)
    a = run(ours, shape, num_inference_steps, 0, torch.float32)
    b = run(theirs, shape, num_inference_steps, 0, torch.float32)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    torch.testing.assert_close(ours.sigmas, theirs.sigmas, rtol=1e-4, atol=1e-6)  # float32 vs float64 schedule
    torch.testing.assert_close(a, b, **FLOAT32_LOOP)
    # Handed our schedule, diffusers computes the same float32 sigmas; the solvers then agree to
    # float32 rounding (diffusers runs every update in float32, so float64 is not available).
    theirs = with_our_schedule(DPMSolverMultistepScheduler(**diffusers_config(name), prediction_type=prediction_type),
                               schedule)
    b = run(theirs, shape, num_inference_steps, 0, torch.float32)
    assert torch.equal(ours.sigmas, theirs.sigmas)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("num_inference_steps", [1, 2, 4, 8, 50])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_consistency_loop_matches_lcm_scheduler(name, num_inference_steps, prediction_type):
    from diffusers import LCMScheduler

    from course_utils.samplers import ConsistencySampler

    schedule, shape = get_schedule(name), (3, 1, 4, 4)
    ours = ConsistencySampler(schedule, prediction_type=prediction_type)
    theirs = with_our_schedule(LCMScheduler(**diffusers_config(name), prediction_type=prediction_type), schedule)
    a = run(ours, shape, num_inference_steps, 0, torch.float32)
    b = run(theirs, shape, num_inference_steps, 0, torch.float32)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    assert not torch.equal(a, run(ours, shape, num_inference_steps, 1, torch.float32))  # the seed matters
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("original_inference_steps", [50, 20, 7])
def test_consistency_timesteps_match_lcm_for_other_grids(original_inference_steps):
    from diffusers import LCMScheduler

    from course_utils.samplers import ConsistencySampler

    ours = ConsistencySampler(get_schedule("cosine"), original_inference_steps=original_inference_steps)
    theirs = LCMScheduler(original_inference_steps=original_inference_steps)
    for n in range(1, original_inference_steps + 1):
        ours.set_timesteps(n)
        theirs.set_timesteps(n)
        assert torch.equal(ours.timesteps, theirs.timesteps), n
