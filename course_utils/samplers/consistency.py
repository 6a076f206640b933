"""Multistep consistency sampling (Song et al. 2023, Algorithm 1) with diffusers' ``LCMScheduler``
interface, for a student distilled by ``course_utils.distillation``.

A consistency model ``f(x_t, t)`` maps any point of a probability-flow ODE trajectory straight to
its clean end. One step: ``x0 = f(x_T, T)``. More steps trade time for quality: noise the estimate
back to a smaller ``t`` with the forward process and apply ``f`` again.

The boundary condition ``f(x, 0) = x`` is built into the parameterisation (as in LCM, Luo et al.
2023): ``f(x_t, t) = c_skip(t) x_t + c_out(t) x0_pred(x_t, t)`` with
``c_skip = sigma_data^2 / ((s t)^2 + sigma_data^2)`` and ``c_out = s t / sqrt((s t)^2 + sigma_data^2)``,
``s = timestep_scaling``. At ``t = 0``: ``c_skip = 1, c_out = 0``; from ``t = 19`` on, ``c_out > 0.9999``.

``x0_pred`` comes from the predicted noise, ``(x_t - sqrt(1 - a) eps) / sqrt(a)``. Under the cosine
schedule ``a = alpha_bar_999 = 2.4e-9``, so at the first step that division multiplies the
network's error by 20,000. A student may therefore read its output through ``a`` floored at
``min_alpha_bar`` (the course's student: 0.005, about Stable Diffusion's ``alpha_bar_999``): a
reparameterisation that keeps every step well conditioned. ``min_alpha_bar = 0`` is LCM's reading.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_float, check_positive_int
from ..parameterization import noised
from .base import DiscreteSampler, SamplerOutput, randn_like_diffusers

SIGMA_DATA = 0.5  # LCM's (and diffusers') value
TIMESTEP_SCALING = 10.0
STUDENT_MIN_ALPHA_BAR = 0.005  # the floor the course's student is distilled and sampled with


def boundary_scalings(timestep, timestep_scaling: float = TIMESTEP_SCALING,
                      sigma_data: float = SIGMA_DATA):
    """``(c_skip, c_out)`` at integer ``timestep`` (a number or a tensor of them)."""
    scaled = timestep * timestep_scaling
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


def solver_timesteps(num_train_timesteps: int, original_inference_steps: int) -> np.ndarray:
    """The distillation grid, ascending: ``k - 1, 2k - 1, ..., T - 1`` with ``k = T // N``."""
    n = check_positive_int("original_inference_steps", original_inference_steps)
    if n > num_train_timesteps:
        raise ValueError(f"original_inference_steps must be at most num_train_timesteps = {num_train_timesteps}, "
                         f"got {n}.")
    k = num_train_timesteps // n
    return np.arange(1, n + 1, dtype=np.int64) * k - 1


class ConsistencySampler(DiscreteSampler):
    """Consistency / LCM sampling: denoise in one call, re-noise to the next timestep, repeat.

    Args:
        schedule: the teacher's ``NoiseSchedule`` (the student keeps its timesteps).
        original_inference_steps: ``N``, the grid the student was distilled on (``solver_timesteps``);
            sampling uses ``n <= N`` evenly spaced points of it, starting at ``T - 1``.
        timestep_scaling: ``s`` in the boundary scalings (LCM's 10).
        min_alpha_bar: the floor under ``alpha_bar_t`` when reading ``x0`` from the model output (0: none).
        **kwargs: ``prediction_type``, ``clip_sample``, ``clip_sample_range`` (off by default, as in
            diffusers' ``LCMScheduler``).
    """

    diffusers_class = "LCMScheduler"
    config_keys = ("prediction_type", "clip_sample", "clip_sample_range", "original_inference_steps",
                   "timestep_scaling", "min_alpha_bar")

    def __init__(self, schedule, original_inference_steps: int = 50, timestep_scaling: float = TIMESTEP_SCALING,
                 min_alpha_bar: float = 0.0, clip_sample: bool = False, **kwargs):
        super().__init__(schedule, clip_sample=clip_sample, **kwargs)
        self.min_alpha_bar = as_float("min_alpha_bar", min_alpha_bar, 0, 1, high_open=True)
        self.grid = solver_timesteps(self.num_train_timesteps, original_inference_steps)
        self.original_inference_steps = len(self.grid)
        self.timestep_scaling = as_float("timestep_scaling", timestep_scaling, low=0, low_open=True, note="LCM: 10")

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``n`` of the ``N`` grid points, evenly spaced in index from the noisiest (diffusers' LCM rule)."""
        n = self._check_steps(num_inference_steps, len(self.grid), f"original_inference_steps = {len(self.grid)} "
                              "(the grid the student was distilled on)")
        descending = self.grid[::-1]
        index = np.floor(np.linspace(0, len(descending), num=n, endpoint=False)).astype(np.int64)
        self.timesteps = torch.from_numpy(descending[index].copy()).to(device)

    def denoise(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """The consistency function ``f(x_t, t) = c_skip x_t + c_out x0_pred``."""
        x0, _ = self._x0_and_eps(model_output, sample, max(self.alpha_bar(timestep), self.min_alpha_bar))
        c_skip, c_out = boundary_scalings(timestep, self.timestep_scaling)
        return c_out * self._clip(x0) + c_skip * sample

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> SamplerOutput:
        """Denoise at ``timestep``; unless it is the last one, noise the result to the next timestep.

        Returns ``prev_sample`` (the noised estimate, or the final image) and
        ``pred_original_sample`` (the denoised estimate ``f(x_t, t)``).
        """
        t = self._check_step_args(model_output, timestep, sample, generator)
        denoised = self.denoise(model_output, t, sample)
        t_prev = self.previous_timestep(t)
        if t_prev < 0:  # the last step: no noise (and one-step sampling never adds any)
            return SamplerOutput(prev_sample=denoised, pred_original_sample=denoised)
        a_prev = self.alpha_bar(t_prev)
        noise = randn_like_diffusers(model_output.shape, generator, model_output)
        prev = noised(denoised, noise, a_prev**0.5, (1 - a_prev) ** 0.5)  # the forward process to t_prev
        return SamplerOutput(prev_sample=prev, pred_original_sample=denoised)
