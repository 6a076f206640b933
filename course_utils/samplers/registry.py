"""Every sampler by name: how to build it, its default step count and the model families it serves.

``DiffusionModel.sample(sampler=name)``, notebook 09's speed table and the benchmarks read this one
table, so adding a sampler here makes it available everywhere.

``"euler"`` and ``"heun"`` serve two families, as in diffusers, which names both ODE solvers after
the method: given a noise schedule they are ``EulerSampler`` / ``HeunSampler`` (the probability-flow
ODE in sigma, diffusers' ``EulerDiscreteScheduler`` / ``HeunDiscreteScheduler``); given
``schedule=None`` (flow matching) ``FlowMatchEulerSampler`` / ``FlowMatchHeunSampler``.

.. code-block:: python

    from course_utils.samplers import SAMPLERS, make_sampler, samplers_for
    samplers_for("flow_matching")                 # ('euler', 'heun')
    make_sampler("ddim", schedule=get_schedule("cosine"), clip_sample=True)
    make_sampler("heun", get_schedule("cosine"), use_karras_sigmas=True)   # EDM's sampler
    make_sampler("heun")                          # Heun on the flow-matching ODE
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
from .euler import EulerSampler
from .flow_euler import FlowMatchEulerSampler
from .heun import FlowMatchHeunSampler
from .heun_discrete import HeunSampler


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
        options: per family, the settings ``DiffusionModel.sample(sampler_options=...)`` may pass to
            the sampler's constructor (Euler's and Heun's ``use_karras_sigmas``); none by default.
    """

    name: str
    build: Callable[..., Sampler]
    default_steps: int | None
    families: tuple[str, ...]
    step_options: tuple[str, ...] = ()
    clamps_itself: bool = False
    calls_per_step: int = 1
    model_options: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def check_options(self, family: str, options) -> dict:
        """``options`` (a dict, or None) if every name in it is one of ``self.options[family]``; else a
        ``ValueError`` that names the accepted ones."""
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise TypeError(f"sampler_options must be a dict of sampler settings, got {type(options).__name__}.")
        accepted = self.options.get(check_family(family), ())
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            takes = f"it takes {', '.join(map(repr, accepted))}" if accepted else "it takes none"
            raise ValueError(f"sampler_options {', '.join(map(repr, unknown))} are not settings of sampler "
                             f"{self.name!r} for a {family} model; {takes}.")
        return dict(options)

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


def _by_schedule(name: str, sigma_cls, sigma_config: tuple[str, ...], flow_cls, flow_config: tuple[str, ...]):
    """A builder for a name that serves both families: ``sigma_cls`` for a noise schedule, ``flow_cls``
    for ``schedule=None`` (flow matching); a setting of the other family's sampler is refused."""
    def build(schedule, prediction_type, clip_sample, **config):
        flow = schedule is None
        accepted, other = (flow_config, sigma_config) if flow else (sigma_config, flow_config)
        for key in config:
            if key not in accepted:
                whose = ("the diffusion sampler's (pass the model's noise schedule)" if flow else
                         "the flow-matching sampler's (schedule=None)") if key in other else "no setting of it"
                raise ValueError(f"{key}= is {whose}; {name!r} for "
                                 f"{'flow matching' if flow else 'a noise schedule'} takes {', '.join(accepted)}.")
        if flow:
            return flow_cls(**config)
        if clip_sample and sigma_cls is EulerSampler:
            raise ValueError("clip_sample: the Euler sampler has no clamp of its own (as diffusers' "
                             "EulerDiscreteScheduler); clamp the x0 with denoisers.ClampX0, as "
                             "DiffusionModel.sample does.")
        extra = {"clip_sample": clip_sample} if sigma_cls is HeunSampler else {}
        return sigma_cls(schedule, prediction_type=prediction_type, **extra, **config)
    return build


SIGMA_OPTIONS = ("use_karras_sigmas", "timestep_spacing", "sigma_min", "sigma_max")  # DiffusionModel.sample may set
FLOW_CONFIG = ("num_train_timesteps", "shift")


TRAILING = {"timestep_spacing": "trailing"}  # Table 2 of Lin et al. 2024: the first step at t = T - 1

SAMPLERS: dict[str, SamplerEntry] = {e.name: e for e in (
    SamplerEntry("ddim", _clipping(DDIMSampler), 50, (DIFFUSION,), step_options=("eta",), model_options=TRAILING),
    SamplerEntry("ddpm", _clipping(DDPMSampler), None, (DIFFUSION,), model_options=TRAILING),
    SamplerEntry("dpmsolver++", _dpm_solver, 20, (DIFFUSION,)),
    SamplerEntry("euler", _by_schedule("euler", EulerSampler, SIGMA_OPTIONS, FlowMatchEulerSampler, FLOW_CONFIG),
                 50, (DIFFUSION, FLOW_MATCHING), options={DIFFUSION: SIGMA_OPTIONS, FLOW_MATCHING: ("shift",)}),
    SamplerEntry("heun", _by_schedule("heun", HeunSampler, SIGMA_OPTIONS + ("clip_sample_range",), FlowMatchHeunSampler,
                                      FLOW_CONFIG),
                 25, (DIFFUSION, FLOW_MATCHING), calls_per_step=2,
                 options={DIFFUSION: SIGMA_OPTIONS, FLOW_MATCHING: ("shift",)}),
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
    """A fresh sampler ``name`` for a model trained under ``schedule`` (None for flow matching: ``"euler"``
    and ``"heun"`` then build the flow-matching samplers), with ``config`` for its constructor."""
    return get_entry(name).build(schedule, prediction_type, clip_sample, **config)
