"""Samplers with diffusers' scheduler interface (``set_timesteps``, ``.timesteps``, ``step``).

One algorithm per file: ``ddpm`` (Ho et al. 2020), ``ddim`` (Song et al. 2021). Later notebooks
add DPM-Solver++ and flow-matching Euler here with the same interface.
"""

from .base import DiscreteSampler, SamplerOutput
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .loop import sample_loop

__all__ = ["DDIMSampler", "DDPMSampler", "DiscreteSampler", "SamplerOutput", "sample_loop"]
