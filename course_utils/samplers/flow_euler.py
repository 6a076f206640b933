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

from .._validation import check_positive_int, check_same_shape
from ..flow_matching import NUM_TRAIN_TIMESTEPS
from .base import SamplerOutput


class FlowMatchEulerSampler:
    """Args:
        num_train_timesteps: ``T``, the scale of the timesteps the model saw in training.
        shift: the timestep shift (1.0: none).
    """

    init_noise_sigma = 1.0  # x at sigma = 1 is pure N(0, I) noise

    def __init__(self, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, shift: float = 1.0):
        self.num_train_timesteps = check_positive_int("num_train_timesteps", num_train_timesteps)
        if not shift > 0:
            raise ValueError(f"shift must be a positive number (1.0: no shift), got {shift}.")
        self.shift = float(shift)
        self.timesteps = torch.empty(0)
        self.sigmas = torch.empty(0)

    def _shifted(self, s):
        return self.shift * s / (1 + (self.shift - 1) * s)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``N`` sigmas from 1 down towards ``1/T`` (shifted), then 0; ``timesteps = sigmas[:-1] * T``."""
        n = check_positive_int("num_inference_steps", num_inference_steps)
        t = self.num_train_timesteps
        # The ends of the grid are the shifted training sigmas t/T for t = T and t = 1, in float32
        # as diffusers stores them; the grid between them is spaced in float64, shifted, then cast.
        ends = self._shifted(torch.tensor([float(t), 1.0], dtype=torch.float32) / t)  # (2,)
        s = np.linspace(float(ends[0]) * t, float(ends[1]) * t, n) / t  # (N,) float64
        sigmas = torch.from_numpy(self._shifted(s)).to(torch.float32)  # (N,)
        self.timesteps = (sigmas * t).to(device)  # (N,) float, descending
        self.sigmas = torch.cat([sigmas, torch.zeros(1)]).to(device)  # (N + 1,)

    def _index_of(self, timestep) -> int:
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")
        t = float(torch.as_tensor(timestep).float())
        idx = int(torch.argmin((self.timesteps.cpu() - t).abs()))
        if abs(float(self.timesteps[idx]) - t) > 1e-3 * self.num_train_timesteps:
            raise ValueError(f"timestep {t:g} is not one of this sampler's timesteps {self.timesteps.tolist()}.")
        return idx

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None) -> SamplerOutput:
        """One Euler step from ``sigma_k`` to ``sigma_{k+1}`` (``generator`` is unused: the ODE is
        deterministic; it is accepted so the shared ``sample_loop`` can pass it)."""
        check_same_shape(model_output=model_output, sample=sample)
        k = self._index_of(timestep)
        sigma, sigma_next = float(self.sigmas[k]), float(self.sigmas[k + 1])
        v = model_output.float()
        prev = sample.float() + (sigma_next - sigma) * v  # x_{k+1} = x_k + (sigma_{k+1} - sigma_k) v
        x0 = sample.float() - sigma * v  # the end of the straight line through x_k along v
        return SamplerOutput(prev.to(sample.dtype), x0.to(sample.dtype))

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def __len__(self) -> int:
        return self.num_train_timesteps


class FlowMatchHeunSampler(FlowMatchEulerSampler):
    """Heun's method (the trapezoidal rule, second order) on the flow-matching ODE, with the
    interface of diffusers' ``FlowMatchHeunDiscreteScheduler``: every step but the last calls the
    model twice, so ``.timesteps`` lists ``sigma_1 .. sigma_{N-1}`` twice (``2N - 1`` entries):

        predictor:  x' = x_k + (sigma_{k+1} - sigma_k) v(x_k, sigma_k)
        corrector:  x_{k+1} = x_k + (sigma_{k+1} - sigma_k) (v(x_k, sigma_k) + v(x', sigma_{k+1})) / 2

    The last step, to sigma = 0, is Euler's (its corrector would evaluate the model at pure data).
    ``step`` keeps the predictor's state between the two calls, so calls must follow ``.timesteps``.
    """

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        super().set_timesteps(num_inference_steps, device)
        self.euler_sigmas = self.sigmas  # (N + 1,): sigma_0 .. sigma_{N-1}, 0
        t = self.timesteps
        self.timesteps = torch.cat([t[:1], t[1:].repeat_interleave(2)])  # (2N - 1,)
        self._call = 0
        self._pending = None  # (x_k, v_k, dt) between the predictor and the corrector

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None) -> SamplerOutput:
        """The predictor on odd calls (1st, 3rd, ...), the corrector on even ones."""
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")
        check_same_shape(model_output=model_output, sample=sample)
        i = self._call
        if i >= len(self.timesteps) or abs(float(timestep) - float(self.timesteps[i])) > 1e-3:
            raise ValueError(f"Heun calls must follow .timesteps in order (call {i}); call set_timesteps to restart.")
        self._call += 1
        v = model_output.float()
        if self._pending is None:  # predictor: an Euler step from sigma_k to sigma_{k+1}
            k = (i + 1) // 2
            sigma, sigma_next = float(self.euler_sigmas[k]), float(self.euler_sigmas[k + 1])
            x = sample.float()
            if sigma_next > 0:
                self._pending = (x, v, sigma_next - sigma)
            prev, x0 = x + (sigma_next - sigma) * v, x - sigma * v
        else:  # corrector: average the two slopes, restart from x_k
            x, v_k, dt = self._pending
            self._pending = None
            prev, x0 = x + dt * 0.5 * (v_k + v), sample.float() - float(self.timesteps[i]) / self.num_train_timesteps * v
        return SamplerOutput(prev.to(sample.dtype), x0.to(sample.dtype))
