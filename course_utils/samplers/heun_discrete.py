"""Heun's method (second order) on the probability-flow ODE in sigma, as diffusers'
``HeunDiscreteScheduler``: Algorithm 1 of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models"), deterministic sampling, which EDM pairs with Karras sigmas.

For each step from ``sigma_k`` to ``sigma_{k+1}`` (notation of ``samplers.euler``):

    predictor:  d_k = (x_k - D(x_k; sigma_k)) / sigma_k,          x' = x_k + (sigma_{k+1} - sigma_k) d_k
    corrector:  d'  = (x' - D(x'; sigma_{k+1})) / sigma_{k+1},    x_{k+1} = x_k + (sigma_{k+1} - sigma_k) (d_k + d') / 2

The last step, to sigma = 0, is Euler's (EDM's line 8: the corrector would divide by sigma = 0).
So ``.timesteps`` lists ``t_0`` once and ``t_1 .. t_{N-1}`` twice (``2N - 1`` network calls, ``order = 2``)
and ``.sigmas`` lists ``sigma_1 .. sigma_{N-1}`` twice. ``step`` keeps the predictor's state between
the two calls, so calls must follow ``.timesteps`` in order. (``samplers.heun`` is Heun on the
flow-matching ODE.)
"""

from __future__ import annotations

import torch

from .._validation import as_float, check_bool
from .base import SamplerOutput
from .karras import TIMESTEP_TOLERANCE, SigmaSampler


class HeunSampler(SigmaSampler):
    """Args:
        clip_sample: clamp each ``x0`` to ``[-clip_sample_range, clip_sample_range]`` (diffusers' option,
            off by default; ``DiffusionModel.sample`` clamps through ``denoisers.ClampX0`` instead).
        **kwargs: ``schedule``, ``prediction_type``, ``use_karras_sigmas``, ``timestep_spacing``
            (``karras.SigmaSampler``).
    """

    order = 2
    diffusers_class = "HeunDiscreteScheduler"
    config_keys = SigmaSampler.config_keys + ("clip_sample", "clip_sample_range")

    def __init__(self, schedule, clip_sample: bool = False, clip_sample_range: float = 1.0, **kwargs):
        super().__init__(schedule, **kwargs)
        self.clip_sample = check_bool("clip_sample", clip_sample)
        self.clip_sample_range = as_float("clip_sample_range", clip_sample_range, low=0, low_open=True)
        self._pending = None

    def _set_grid(self, timesteps, sigmas, device) -> None:
        """The Euler grid with every inner timestep and sigma listed twice: ``(2N - 1,)`` and ``(2N,)``."""
        t, s = torch.from_numpy(timesteps), torch.from_numpy(sigmas)
        self.timesteps = torch.cat([t[:1], t[1:].repeat_interleave(2)]).to(device)  # (2N - 1,)
        self.sigmas = torch.cat([s[:1], s[1:-1].repeat_interleave(2), s[-1:]])  # (2N,)
        self._pending = None  # (x_k, d_k, sigma_{k+1} - sigma_k) between the predictor and the corrector

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """The predictor on the 1st, 3rd, ... call, the corrector on the 2nd, 4th, ... (``generator`` unused)."""
        self._require_timesteps()
        self._check_tensors(model_output, sample, generator)
        i = self._next_index(timestep, TIMESTEP_TOLERANCE, "Heun (predictor, then corrector)")
        if self._pending is None:  # predictor at sigma_k = sigmas[i], towards sigmas[i + 1]
            sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
            x0 = self._clip(self._x0(model_output, sample, sigma))
            derivative, dt = (sample - x0) / sigma, sigma_next - sigma
            if sigma_next > 0:
                self._pending = (sample, derivative, dt)
            prev = sample + derivative * dt
        else:  # corrector at x' and sigma_{k+1} = sigmas[i]: average the two slopes, restart from x_k
            sigma_next = self.sigmas[i]
            x0 = self._clip(self._x0(model_output, sample, sigma_next))
            x, derivative_k, dt = self._pending
            self._pending = None
            prev = x + (derivative_k + (sample - x0) / sigma_next) / 2 * dt
        return SamplerOutput(prev_sample=prev, pred_original_sample=x0)

    def _clip(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.clamp(-self.clip_sample_range, self.clip_sample_range) if self.clip_sample else x0
