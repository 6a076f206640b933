"""Samplers with diffusers' scheduler interface (``set_timesteps``, ``.timesteps``, ``step``).

One algorithm per file: ``ddpm`` (Ho et al. 2020), ``ddim`` (Song et al. 2021), ``flow_euler``
(Euler on the flow-matching ODE, as diffusers' ``FlowMatchEulerDiscreteScheduler``),
``dpm_solver`` (DPM-Solver++ 2M, Lu et al. 2022, as diffusers' ``DPMSolverMultistepScheduler``),
``consistency`` (multistep consistency sampling, Song et al. 2023, as diffusers' ``LCMScheduler``).
"""

from .base import DiscreteSampler, SamplerOutput
from .consistency import ConsistencySampler
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .flow_euler import FlowMatchEulerSampler, FlowMatchHeunSampler
from .loop import sample_loop

__all__ = ["ConsistencySampler", "DDIMSampler", "DDPMSampler", "DPMSolverSampler", "FlowMatchEulerSampler", "FlowMatchHeunSampler", "DiscreteSampler", "SamplerOutput", "sample_loop"]
