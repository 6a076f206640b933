"""Every sampler by name: how to build it, its default step count and the model families it serves.

``DiffusionModel.sample(sampler=name)``, notebook 09's speed table and the benchmarks read this one
table, so adding a sampler here makes it available everywhere.

.. code-block:: python

    from course_utils.samplers import SAMPLERS, make_sampler, samplers_for
    samplers_for("flow_matching")                 # ('euler', 'heun')
    make_sampler("ddim", schedule=get_schedule("cosine"), clip_sample=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._validation import check_choice
from ..families import CONSISTENCY, DIFFUSION, FLOW_MATCHING, check_family
from .base import Sampler
from .consistency import ConsistencySampler
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .flow_euler import FlowMatchEulerSampler
from .heun import FlowMatchHeunSampler


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler of the registry.

    Attributes:
        name: what ``DiffusionModel.sample(sampler=...)`` takes.
        build: ``build(schedule, prediction_type, clip_sample, **config) -> Sampler``.
        default_steps: steps when none are asked for (None: all ``T`` training timesteps).
        families: the model families it samples (``course_utils.families``).
        step_options: keyword arguments its ``step`` takes beyond the protocol's (DDIM's ``eta``).
        clamps_itself: it clamps ``x0`` inside ``step``; for the others the model's denoiser does.
        calls_per_step: network evaluations per step, but the last (Heun: 2).
        model_options: what ``DiffusionModel.sample`` builds it with for few steps, over the class's
            defaults (which stay diffusers' for parity): DDIM and DDPM count down from the noisy end
            (``"trailing"`` spacing), so that even one step gives a digit; diffusers' ``"leading"``
            spacing with one step visits only t = 0 and returns the noise.
    """

    name: str
    build: Callable[..., Sampler]
    default_steps: int | None
    families: tuple[str, ...]
    step_options: tuple[str, ...] = ()
    clamps_itself: bool = False
    calls_per_step: int = 1
    model_options: dict = field(default_factory=dict)

    def nfe(self, steps: int) -> int:
        """Network evaluations for ``steps`` steps (Heun's last step is a single Euler call)."""
        return self.calls_per_step * steps - (self.calls_per_step - 1)


def _clipping(cls):
    """A builder for a sampler of a noise schedule with its own ``clip_sample``."""
    def build(schedule, prediction_type, clip_sample, **config):
        return cls(schedule, prediction_type=prediction_type, clip_sample=clip_sample, **config)
    return build


def _dpm_solver(schedule, prediction_type, clip_sample, **config):
    return DPMSolverSampler(schedule, prediction_type=prediction_type, **config)  # no clip of its own


def _flow(cls):
    """A builder for a flow-matching sampler: no schedule, and the model predicts the velocity."""
    def build(schedule, prediction_type, clip_sample, **config):
        return cls(**config)
    return build


TRAILING = {"timestep_spacing": "trailing"}  # Table 2 of Lin et al. 2024: the first step at t = T - 1

SAMPLERS: dict[str, SamplerEntry] = {e.name: e for e in (
    SamplerEntry("ddim", _clipping(DDIMSampler), 50, (DIFFUSION,), step_options=("eta",), model_options=TRAILING),
    SamplerEntry("ddpm", _clipping(DDPMSampler), None, (DIFFUSION,), model_options=TRAILING),
    SamplerEntry("dpmsolver++", _dpm_solver, 20, (DIFFUSION,)),
    SamplerEntry("euler", _flow(FlowMatchEulerSampler), 50, (FLOW_MATCHING,)),
    SamplerEntry("heun", _flow(FlowMatchHeunSampler), 25, (FLOW_MATCHING,), calls_per_step=2),
    SamplerEntry("consistency", _clipping(ConsistencySampler), 2, (CONSISTENCY,), clamps_itself=True),
)}


def get_entry(name: str) -> SamplerEntry:
    return SAMPLERS[check_choice("sampler", name, SAMPLERS)]


def samplers_for(family: str) -> tuple[str, ...]:
    """The samplers that serve ``family``, its default first."""
    check_family(family)
    return tuple(name for name, e in SAMPLERS.items() if family in e.families)


def make_sampler(name: str, schedule=None, prediction_type: str = "epsilon", clip_sample: bool = False,
                 **config) -> Sampler:
    """A fresh sampler ``name`` for a model trained under ``schedule`` (None for flow matching)."""
    return get_entry(name).build(schedule, prediction_type, clip_sample, **config)
