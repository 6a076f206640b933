"""course_utils.samplers.registry: every sampler by name, the families it serves, its defaults and its cost."""

import pytest
import torch

from course_utils.families import FAMILIES, FLOW_MATCHING
from course_utils.samplers import SAMPLERS, Sampler, get_entry, make_sampler, sample_loop, samplers_for
from course_utils.schedules import get_schedule


def build(name, flow=None, **config):
    """``name`` for a noise schedule, or for flow matching (``schedule=None``) if it serves only that
    family or ``flow`` says so ("euler" and "heun" serve both: ``tests/test_samplers_karras.py``)."""
    entry = SAMPLERS[name]
    flow = entry.families == (FLOW_MATCHING,) if flow is None else flow
    return make_sampler(name, schedule=None if flow else get_schedule("cosine"), **config)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_entry_builds_a_sampler_of_the_protocol(name):
    sampler = build(name)
    assert isinstance(sampler, Sampler)  # the runtime-checkable protocol: set_timesteps, step, timesteps, ...
    assert sampler is not build(name)  # a fresh sampler each time: samplers keep state between steps


def test_each_family_lists_its_samplers_default_first():
    # DiffusionModel.sample's documented defaults: DDIM for diffusion, Euler for flow matching.
    assert samplers_for("diffusion") == ("ddim", "ddpm", "dpmsolver++", "euler", "heun")
    assert samplers_for("flow_matching") == ("euler", "heun")
    assert samplers_for("consistency") == ("consistency",)
    assert {n for f in FAMILIES for n in samplers_for(f)} == set(SAMPLERS)  # every sampler serves a family
    with pytest.raises(ValueError, match="Accepted: 'diffusion', 'flow_matching', 'consistency'"):
        samplers_for("score")


def test_default_steps_are_the_documented_ones():
    # DiffusionModel.sample: 50 for DDIM and Euler, 20 for DPM-Solver++, 25 for Heun, 2 for a student, all T for DDPM.
    assert {n: e.default_steps for n, e in SAMPLERS.items()} == {
        "ddim": 50, "euler": 50, "dpmsolver++": 20, "heun": 25, "consistency": 2, "ddpm": None}


@pytest.mark.parametrize("name, flow", [(n, None) for n in sorted(SAMPLERS)] + [("euler", True), ("heun", True)])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_nfe_counts_the_network_calls_of_the_loop(name, flow, steps):
    # The loop calls the network once per entry of .timesteps, so nfe(steps) must be their number.
    sampler = build(name, flow)
    calls = []

    def model(x, t):
        calls.append(t)
        return torch.zeros_like(x)

    sample_loop(model, sampler, (1, 1, 2, 2), steps, generator=torch.Generator().manual_seed(0))
    assert get_entry(name).nfe(steps) == len(calls) == len(sampler.timesteps)


def test_heun_costs_two_calls_per_step_but_the_last():
    assert get_entry("heun").nfe(5) == 2 * 5 - 1 and get_entry("euler").nfe(5) == 5


def test_make_sampler_passes_its_settings_on():
    assert build("ddim", clip_sample=True).clip_sample and not build("ddim").clip_sample
    assert build("ddpm", prediction_type="v_prediction").prediction_type == "v_prediction"
    assert build("euler", flow=True, shift=3.0).shift == 3.0
    assert build("heun", use_karras_sigmas=True).use_karras_sigmas
    assert build("consistency", original_inference_steps=20).original_inference_steps == 20
    assert [n for n, e in SAMPLERS.items() if e.clamps_itself] == ["consistency"]
    assert SAMPLERS["ddim"].step_options == ("eta",)


def test_an_unknown_sampler_is_refused_with_the_accepted_names():
    with pytest.raises(ValueError, match="Unknown sampler 'lcm'. Accepted: 'ddim', 'ddpm', 'dpmsolver\\+\\+'"):
        get_entry("lcm")
    with pytest.raises(ValueError, match="Accepted"):
        make_sampler("euler_a")


def test_euler_and_heun_build_by_schedule():
    # given a noise schedule: the ODE in sigma (diffusers' EulerDiscrete / HeunDiscrete); None: flow matching
    from course_utils.samplers import EulerSampler, FlowMatchEulerSampler, FlowMatchHeunSampler, HeunSampler

    assert [type(build(n, flow=f)) for n in ("euler", "heun") for f in (True, False)] == [
        FlowMatchEulerSampler, EulerSampler, FlowMatchHeunSampler, HeunSampler]
