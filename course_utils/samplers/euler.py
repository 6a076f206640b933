"""Euler's method on the probability-flow ODE in sigma, as diffusers' ``EulerDiscreteScheduler``
(Algorithm 1 of Karras et al. 2022 without its second-order correction; "Euler" in k-diffusion).

Notation (``samplers.karras``): ``x = x_t * sqrt(sigma^2 + 1)`` is the sample in sigma-space, the
network sees ``x / sqrt(sigma^2 + 1)`` at the (possibly fractional) timestep of ``sigma``.

    x0_k   = D(x_k; sigma_k)                       the data the prediction implies (``pred_original_sample``)
    d_k    = (x_k - x0_k) / sigma_k                the slope dx / dsigma (= eps_hat for an epsilon model)
    x_k+1  = x_k + (sigma_{k+1} - sigma_k) d_k     one Euler step, down to sigma_N = 0

The first ``x`` is noise times ``init_noise_sigma`` (``sigma_max``); the last step lands on ``x0``.
diffusers' stochastic ``s_churn`` (EDM's Algorithm 2) is not provided: this sampler is deterministic.
"""

from __future__ import annotations

import torch

from .base import SamplerOutput
from .karras import SigmaSampler


class EulerSampler(SigmaSampler):
    """Args: ``schedule``, ``prediction_type``, ``use_karras_sigmas``, ``timestep_spacing``: as
    ``karras.SigmaSampler`` (diffusers' ``EulerDiscreteScheduler`` names and defaults)."""

    diffusers_class = "EulerDiscreteScheduler"

    def _set_grid(self, timesteps, sigmas, device) -> None:
        self.timesteps = torch.from_numpy(timesteps).to(device)  # (N,)
        self.sigmas = torch.from_numpy(sigmas)  # (N + 1,) on the CPU, as diffusers keeps them

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """One Euler step from ``sigma_k`` (``timestep = timesteps[k]``) to ``sigma_{k+1}``. ``generator``
        is unused (the ODE is deterministic); it is accepted so the shared ``sample_loop`` can pass it."""
        self._check_tensors(model_output, sample, generator)
        k = self._sigma_index(timestep)
        x = sample.to(torch.float32)  # diffusers upcasts the update
        sigma, sigma_next = self.sigmas[k], self.sigmas[k + 1]
        # 1. x0 from the prediction; 2. the slope d = (x - x0) / sigma; 3. x + (sigma_next - sigma) d
        x0 = self._x0(model_output, x, sigma)
        derivative = (x - x0) / sigma
        prev = x + derivative * (sigma_next - sigma)
        return SamplerOutput(prev_sample=prev.to(model_output.dtype), pred_original_sample=x0)
