"""Samplers with diffusers' scheduler interface (``set_timesteps``, ``.timesteps``, ``step``).

One algorithm per file: ``ddpm`` (Ho et al. 2020), ``ddim`` (Song et al. 2021), ``dpm_solver``
(DPM-Solver++ 2M, Lu et al. 2022, as diffusers' ``DPMSolverMultistepScheduler``), ``euler`` and
``heun_discrete`` (Euler and Heun on the probability-flow ODE in sigma, Karras et al. 2022, as diffusers'
``EulerDiscreteScheduler`` and ``HeunDiscreteScheduler``; ``karras`` holds their sigma grid and EDM's
``karras_sigmas`` spacing), ``flow_euler`` and ``heun`` (Euler and Heun on the flow-matching ODE, as
diffusers' ``FlowMatchEulerDiscreteScheduler`` and ``FlowMatchHeunDiscreteScheduler``), ``consistency``
(multistep consistency sampling, Song et al. 2023, as diffusers' ``LCMScheduler``). ``base`` holds the
protocol they all satisfy and the shared timestep bookkeeping, ``loop`` the one sampling loop,
``registry`` the table of samplers by name.
"""

from .base import DiscreteSampler, Sampler, SamplerBase, SamplerOutput
from .consistency import ConsistencySampler
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .euler import EulerSampler
from .flow_euler import FlowMatchEulerSampler
from .heun import FlowMatchHeunSampler
from .heun_discrete import HeunSampler
from .karras import karras_sigmas
from .loop import sample_loop
from .registry import SAMPLERS, SamplerEntry, get_entry, make_sampler, samplers_for

__all__ = ["ConsistencySampler", "DDIMSampler", "DDPMSampler", "DPMSolverSampler", "DiscreteSampler", "EulerSampler",
           "FlowMatchEulerSampler", "FlowMatchHeunSampler", "HeunSampler", "SAMPLERS", "Sampler", "SamplerBase",
           "SamplerEntry", "SamplerOutput", "get_entry", "karras_sigmas", "make_sampler", "sample_loop", "samplers_for"]
