"""Heun's method (the trapezoidal rule, second order) on the flow-matching ODE, with the interface
of diffusers' ``FlowMatchHeunDiscreteScheduler``. Every step but the last calls the model twice,
so ``.timesteps`` lists ``sigma_1 .. sigma_{N-1}`` twice (``2N - 1`` entries):

    predictor:  x' = x_k + (sigma_{k+1} - sigma_k) v(x_k, sigma_k)
    corrector:  x_{k+1} = x_k + (sigma_{k+1} - sigma_k) (v(x_k, sigma_k) + v(x', sigma_{k+1})) / 2

The last step, to sigma = 0, is Euler's (its corrector would evaluate the model at pure data).
``step`` keeps the predictor's state between the two calls, so calls must follow ``.timesteps``.
The sigma grid (and its ``shift``) is Euler's: ``samplers.flow_euler``.
"""

from __future__ import annotations

import torch

from ..parameterization import flow_to_x0
from .base import SamplerOutput
from .flow_euler import FlowMatchEulerSampler


class FlowMatchHeunSampler(FlowMatchEulerSampler):
    """Args: as ``FlowMatchEulerSampler`` (``num_train_timesteps``, ``shift``)."""

    order = 2
    diffusers_class = "FlowMatchHeunDiscreteScheduler"

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        super().set_timesteps(num_inference_steps, device)
        self.euler_sigmas = self.sigmas  # (N + 1,): sigma_0 .. sigma_{N-1}, 0
        t = self.timesteps
        self.timesteps = torch.cat([t[:1], t[1:].repeat_interleave(2)])  # (2N - 1,)
        self._pending = None  # (x_k, v_k, dt) between the predictor and the corrector

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """The predictor on odd calls (1st, 3rd, ...), the corrector on even ones."""
        self._require_timesteps()
        self._check_tensors(model_output, sample, generator)
        i = self._next_index(timestep, 1e-3, "Heun (predictor, then corrector)")
        v = model_output.float()
        if self._pending is None:  # predictor: an Euler step from sigma_k to sigma_{k+1}
            k = (i + 1) // 2
            sigma, sigma_next = float(self.euler_sigmas[k]), float(self.euler_sigmas[k + 1])
            x = sample.float()
            if sigma_next > 0:
                self._pending = (x, v, sigma_next - sigma)
            prev, x0 = x + (sigma_next - sigma) * v, flow_to_x0(v, x, sigma)
        else:  # corrector: average the two slopes, restart from x_k
            x, v_k, dt = self._pending
            self._pending = None
            prev = x + dt * 0.5 * (v_k + v)
            x0 = flow_to_x0(v, sample.float(), float(self.timesteps[i]) / self.num_train_timesteps)
        return SamplerOutput(prev.to(sample.dtype), x0.to(sample.dtype))
