"""Samplers with diffusers' scheduler interface (``set_timesteps``, ``.timesteps``, ``step``).

One algorithm per file: ``ddpm`` (Ho et al. 2020), ``ddim`` (Song et al. 2021), ``flow_euler``
(Euler on the flow-matching ODE, as diffusers' ``FlowMatchEulerDiscreteScheduler``). DPM-Solver++
comes next with the same interface.
"""

from .base import DiscreteSampler, SamplerOutput
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .flow_euler import FlowMatchEulerSampler
from .loop import sample_loop

__all__ = ["DDIMSampler", "DDPMSampler", "FlowMatchEulerSampler", "DiscreteSampler", "SamplerOutput", "sample_loop"]
