"""Euler's method on the flow-matching ODE ``dx / dsigma = v(x, sigma)``, with diffusers'
scheduler interface (its ``FlowMatchEulerDiscreteScheduler``, whose numbers these match).

Notation (``course_utils.flow_matching``): ``sigma`` in [0, 1], 1 = noise, 0 = data; the model
sees ``timestep = sigma * num_train_timesteps`` and predicts the velocity ``v = eps - x0``.

    sigma_k  = shift * s_k / (1 + (shift - 1) * s_k),  s_k evenly spaced from 1 to 1/T   (k = 0..N-1)
    sigma_N  = 0
    x_{k+1}  = x_k + (sigma_{k+1} - sigma_k) * v(x_k, sigma_k)                          (one Euler step)

``shift > 1`` spends more steps at high noise (Stable Diffusion 3 uses 3.0).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_float, check_positive_int
from ..flow_matching import NUM_TRAIN_TIMESTEPS, shift_sigma
from ..parameterization import flow_to_x0
from .base import SamplerBase, SamplerOutput


MAX_FLOW_STEPS = 100_000  # far past any use (the course's ODEs converge by 100); a typo's billion is refused


class FlowMatchEulerSampler(SamplerBase):
    """Args:
        num_train_timesteps: ``T``, the scale of the timesteps the model saw in training.
        shift: the timestep shift (1.0: none).
    """

    diffusers_class = "FlowMatchEulerDiscreteScheduler"
    config_keys = ("num_train_timesteps", "shift")
    fixed_config = {"use_dynamic_shifting": False, "invert_sigmas": False, "shift_terminal": None,
                    "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
                    "stochastic_sampling": False}

    def __init__(self, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, shift: float = 1.0):
        super().__init__(check_positive_int("num_train_timesteps", num_train_timesteps))
        self.shift = as_float("shift", shift, low=0, low_open=True, note="1.0: no shift")
        self.timesteps = torch.empty(0)
        self.sigmas = torch.empty(0)

    def _shifted(self, s):
        return shift_sigma(s, self.shift)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``N`` sigmas from 1 down towards ``1/T`` (shifted), then 0; ``timesteps = sigmas[:-1] * T``."""
        n = self._check_steps(num_inference_steps, MAX_FLOW_STEPS, f"{MAX_FLOW_STEPS:,} (Euler steps on the ODE)")
        t = self.num_train_timesteps
        # The ends of the grid are the shifted training sigmas t/T for t = T and t = 1, in float32
        # as diffusers stores them; the grid between them is spaced in float64, shifted, then cast.
        ends = self._shifted(torch.tensor([float(t), 1.0], dtype=torch.float32) / t)  # (2,)
        s = np.linspace(float(ends[0]) * t, float(ends[1]) * t, n) / t  # (N,) float64
        sigmas = torch.from_numpy(self._shifted(s)).to(torch.float32)  # (N,)
        self.timesteps = (sigmas * t).to(device)  # (N,) float, descending
        self.sigmas = torch.cat([sigmas, torch.zeros(1)]).to(device)  # (N + 1,)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """One Euler step from ``sigma_k`` to ``sigma_{k+1}`` (``generator`` is unused: the ODE is
        deterministic; it is accepted so the shared ``sample_loop`` can pass it)."""
        self._check_tensors(model_output, sample, generator)
        k = self._index_of(timestep, tolerance=1e-3 * self.num_train_timesteps)
        sigma, sigma_next = float(self.sigmas[k]), float(self.sigmas[k + 1])
        v = model_output.float()
        prev = sample.float() + (sigma_next - sigma) * v  # x_{k+1} = x_k + (sigma_{k+1} - sigma_k) v
        x0 = flow_to_x0(v, sample.float(), sigma)  # the end of the straight line through x_k along v
        return SamplerOutput(prev.to(sample.dtype), x0.to(sample.dtype))
