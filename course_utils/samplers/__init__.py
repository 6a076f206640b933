"""Samplers with diffusers' scheduler interface (``set_timesteps``, ``.timesteps``, ``step``).

One algorithm per file: ``ddpm`` (Ho et al. 2020), ``ddim`` (Song et al. 2021), ``flow_euler``
(Euler on the flow-matching ODE, as diffusers' ``FlowMatchEulerDiscreteScheduler``),
``dpm_solver`` (DPM-Solver++ 2M, Lu et al. 2022, as diffusers' ``DPMSolverMultistepScheduler``).
"""

from .base import DiscreteSampler, SamplerOutput
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .flow_euler import FlowMatchEulerSampler, FlowMatchHeunSampler
from .loop import sample_loop

__all__ = ["DDIMSampler", "DDPMSampler", "DPMSolverSampler", "FlowMatchEulerSampler", "FlowMatchHeunSampler", "DiscreteSampler", "SamplerOutput", "sample_loop"]
