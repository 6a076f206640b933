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

from .._validation import check_choice
from ..parameterization import to_x0
from ..schedules import NoiseSchedule
from .base import DiscreteSampler, SamplerOutput


class DPMSolverSampler(DiscreteSampler):
    """Args:
        schedule: the ``NoiseSchedule`` the model was trained with.
        prediction_type: what the model outputs: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        solver_order: 1 (DDIM in lambda, the paper's DPM-Solver++ 1) or 2 (2M).
        timestep_spacing: ``"linspace"`` (diffusers' default here), ``"leading"`` or ``"trailing"``, by
            ``DPMSolverMultistepScheduler``'s formulas (which differ from DDIM's).
        steps_offset: added to ``"leading"`` timesteps (Stable Diffusion's configs: 1).
    """

    diffusers_class = "DPMSolverMultistepScheduler"
    config_keys = ("prediction_type", "solver_order", "timestep_spacing", "steps_offset")
    fixed_config = {"thresholding": False, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",
                    "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
                    "use_lu_lambdas": False, "use_flow_sigmas": False, "final_sigmas_type": "zero",
                    "lambda_min_clipped": -float("inf"), "variance_type": None}

    def __init__(self, schedule: NoiseSchedule, prediction_type: str = "epsilon", solver_order: int = 2,
                 timestep_spacing: str = "linspace", steps_offset: int = 0):
        super().__init__(schedule, prediction_type=prediction_type, clip_sample=False,
                         timestep_spacing=timestep_spacing, steps_offset=steps_offset)
        self.solver_order = check_choice("solver_order", solver_order, (1, 2))
        self.timesteps = torch.empty(0, dtype=torch.long)  # none until set_timesteps (a multistep solver)
        self.sigmas = torch.empty(0)
        self._previous_x0: torch.Tensor | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``N`` integer timesteps by ``timestep_spacing`` ("linspace": evenly spaced from ``T - 1`` down,
        leaving out 0), their sigmas, and a final sigma of 0. Resets the solver's memory."""
        n = self._check_steps(num_inference_steps, self.num_train_timesteps,
                              f"{self.num_train_timesteps} (the training timesteps)")
        steps = self._dpm_spaced(n)  # (N,)
        a = self.schedule.alphas_cumprod.double().numpy().copy()
        if a[-1] == 0:  # zero terminal SNR: an infinite sigma; diffusers' stand-in, "close to 0 without being 0"
            a[-1] = 2.0**-24
        sigmas = np.sqrt((1 - a) / a)[steps]  # (N,)
        self.timesteps = torch.from_numpy(steps).to(device)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # (N + 1,)
        self._previous_x0 = None

    def _dpm_spaced(self, n: int) -> np.ndarray:
        """``N`` timesteps, descending: ``DPMSolverMultistepScheduler.set_timesteps``'s three spacings."""
        big_t = self.num_train_timesteps
        if self.timestep_spacing == "linspace":
            return np.linspace(0, big_t - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        if self.timestep_spacing == "leading":  # every T // (N + 1)-th from 0, leaving out 0, plus the offset
            return (np.arange(0, n + 1) * (big_t // (n + 1))).round()[::-1][:-1].astype(np.int64) + self.steps_offset
        return np.arange(big_t, 0, -big_t / n).round().astype(np.int64) - 1  # trailing: T - 1 down in T / N

    @staticmethod
    def _alpha_s(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = 1 / torch.sqrt(sigma**2 + 1)
        return alpha, sigma * alpha

    def _lambda(self, k: int) -> torch.Tensor:
        alpha, s = self._alpha_s(self.sigmas[k])
        return torch.log(alpha) - torch.log(s)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """One step of DPM-Solver++(2M) from ``timesteps[k]`` to the next timestep (``generator`` is
        unused: the solver is deterministic). Steps must be taken in order after ``set_timesteps``."""
        self._require_timesteps()
        self._check_tensors(model_output, sample, generator)
        k = self._next_index(timestep, 0.0, "DPM-Solver++ (multistep)")
        sigma_s, sigma_t = self.sigmas[k], self.sigmas[k + 1]
        x = sample.to(torch.float32)
        alpha_s, s_s = self._alpha_s(sigma_s)
        d = to_x0(model_output.to(torch.float32), x, alpha_s, s_s, self.prediction_type)  # D_k
        alpha_t, s_t = self._alpha_s(sigma_t)
        lam_t, lam_s = torch.log(alpha_t) - torch.log(s_t), torch.log(alpha_s) - torch.log(s_s)
        h = lam_t - lam_s  # inf on the last step (s_t = 0): e^{-h} = 0 and x_{k+1} = D
        first_order = self.solver_order == 1 or self._previous_x0 is None or k == len(self.timesteps) - 1
        if first_order:
            d_used = d
        else:
            r = (lam_s - self._lambda(k - 1)) / h  # h_{k-1} / h
            d_used = d + (d - self._previous_x0) / (2 * r)  # the midpoint correction D'
        prev = (s_t / s_s) * x - (alpha_t * (torch.exp(-h) - 1.0)) * d_used
        self._previous_x0 = d
        return SamplerOutput(prev.to(model_output.dtype), d.to(model_output.dtype))
