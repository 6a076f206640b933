"""DPM-Solver++ (2M), the multistep second-order solver of Lu et al. 2022 ("DPM-Solver++: Fast
Solver for Guided Sampling of Diffusion Probabilistic Models", Algorithm 2), with diffusers'
scheduler interface; its numbers match ``DPMSolverMultistepScheduler`` (algorithm "dpmsolver++",
order 2, "midpoint", linspace timesteps, final sigma 0).

Notation (paper -> code). With ``a = alpha_bar_t``:

    sigma_k  = sqrt((1 - a) / a)              the noise-to-signal ratio at timestep k
    alpha_k  = 1 / sqrt(1 + sigma_k^2)        = sqrt(a)
    s_k      = sigma_k * alpha_k              = sqrt(1 - a)       (the paper's sigma_t)
    lambda_k = log(alpha_k / s_k)             half the log-SNR; it grows as sampling proceeds
    h        = lambda_{k+1} - lambda_k        the step in lambda
    D        = the model's data prediction x0 at each step (``pred_original_sample``)

    first order (DDIM):  x_{k+1} = (s_{k+1} / s_k) x_k - alpha_{k+1} (e^{-h} - 1) D_k
    second order (2M):   D' = D_k + (1 / (2 r)) (D_k - D_{k-1}),  r = h_{k-1} / h,
                         x_{k+1} = (s_{k+1} / s_k) x_k - alpha_{k+1} (e^{-h} - 1) D'

The first step has no previous ``D`` and the last goes to sigma = 0, so both are first order.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_choice, check_positive_int, check_same_shape
from ..parameterization import PREDICTION_TYPES, to_x0
from ..schedules import NoiseSchedule
from .base import SamplerOutput


class DPMSolverSampler:
    """Args:
        schedule: the ``NoiseSchedule`` the model was trained with.
        prediction_type: what the model outputs: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        solver_order: 1 (DDIM in lambda, the paper's DPM-Solver++ 1) or 2 (2M).
    """

    init_noise_sigma = 1.0

    def __init__(self, schedule: NoiseSchedule, prediction_type: str = "epsilon", solver_order: int = 2):
        self.schedule = schedule
        self.prediction_type = check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        self.solver_order = check_choice("solver_order", solver_order, (1, 2))
        self.timesteps = torch.empty(0, dtype=torch.long)
        self.sigmas = torch.empty(0)
        self._reset()

    def _reset(self) -> None:
        self._index = 0  # steps taken since set_timesteps
        self._previous_x0: torch.Tensor | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``N`` integer timesteps evenly spaced from ``T - 1`` down (diffusers' "linspace" spacing,
        which leaves out 0), their sigmas, and a final sigma of 0. Resets the solver's memory."""
        n = check_positive_int("num_inference_steps", num_inference_steps)
        t_max = self.schedule.num_timesteps
        if n > t_max:
            raise ValueError(f"num_inference_steps must be at most {t_max} (the training timesteps), got {n}.")
        steps = np.linspace(0, t_max - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)  # (N,)
        a = self.schedule.alphas_cumprod.double().numpy()
        sigmas = np.sqrt((1 - a) / a)[steps]  # (N,)
        self.timesteps = torch.from_numpy(steps).to(device)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # (N + 1,)
        self._reset()

    @staticmethod
    def _alpha_s(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = 1 / torch.sqrt(sigma**2 + 1)
        return alpha, sigma * alpha

    def _x0(self, model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The data prediction D from the model's output (Eq. (4) of the paper, inverted)."""
        alpha, s = self._alpha_s(sigma)
        return to_x0(model_output, sample, alpha, s, self.prediction_type)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None) -> SamplerOutput:
        """One step of DPM-Solver++(2M) from ``timesteps[k]`` to the next timestep (``generator`` is
        unused: the solver is deterministic). Steps must be taken in order after ``set_timesteps``."""
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")
        check_same_shape(model_output=model_output, sample=sample)
        k = self._index
        if k >= len(self.timesteps) or int(timestep) != int(self.timesteps[k]):
            expected = int(self.timesteps[k]) if k < len(self.timesteps) else "none (the loop has ended)"
            raise ValueError(f"DPM-Solver++ is multistep: steps must follow .timesteps in order; expected "
                             f"timestep {expected}, got {int(timestep)}. Call set_timesteps again to restart.")
        sigma_s, sigma_t = self.sigmas[k], self.sigmas[k + 1]
        x = sample.to(torch.float32)
        d = self._x0(model_output.to(torch.float32), x, sigma_s)  # D_k
        alpha_t, s_t = self._alpha_s(sigma_t)
        alpha_s, s_s = self._alpha_s(sigma_s)
        lam_t, lam_s = torch.log(alpha_t) - torch.log(s_t), torch.log(alpha_s) - torch.log(s_s)
        h = lam_t - lam_s  # inf on the last step (s_t = 0): e^{-h} = 0 and x_{k+1} = D
        first_order = self.solver_order == 1 or self._previous_x0 is None or k == len(self.timesteps) - 1
        if first_order:
            d_used = d
        else:
            alpha_p, s_p = self._alpha_s(self.sigmas[k - 1])
            r = (lam_s - (torch.log(alpha_p) - torch.log(s_p))) / h  # h_{k-1} / h
            d_used = d + (d - self._previous_x0) / (2 * r)  # the midpoint correction D'
        prev = (s_t / s_s) * x - (alpha_t * (torch.exp(-h) - 1.0)) * d_used
        self._previous_x0 = d
        self._index += 1
        return SamplerOutput(prev.to(model_output.dtype), d.to(model_output.dtype))

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def __len__(self) -> int:
        return self.schedule.num_timesteps

