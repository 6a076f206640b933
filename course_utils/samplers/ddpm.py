"""DDPM ancestral sampling (Algorithm 2 of Ho et al. 2020).

Notation map (code -> paper): ``a_t`` -> alpha_bar_t, ``a_prev`` -> alpha_bar_{t'} where t' is the
previous timestep in ``.timesteps`` (t - 1 when all T steps are used), ``alpha_t`` -> a_t / a_prev,
``beta_t`` -> 1 - alpha_t. With fewer steps than T, each step jumps from t to t' with the
effective beta of that jump, exactly as diffusers' ``DDPMScheduler`` does.
"""

from __future__ import annotations

import torch

from .._validation import check_choice
from .base import DiscreteSampler, SamplerOutput, randn_like_diffusers

VARIANCE_TYPES = ("fixed_small", "fixed_large")


class DDPMSampler(DiscreteSampler):
    """DDPM with diffusers' ``DDPMScheduler`` interface and defaults.

    Args:
        schedule: the training ``NoiseSchedule``.
        variance_type: ``"fixed_small"`` (the posterior variance beta_tilde_t, diffusers' default) or
            ``"fixed_large"`` (beta_t); Sec. 3.2 of Ho et al. 2020 found both work.
        **kwargs: ``prediction_type``, ``clip_sample``, ``clip_sample_range``, ``timestep_spacing``
            (see ``DiscreteSampler``).
    """

    diffusers_class = "DDPMScheduler"
    config_keys = DiscreteSampler.config_keys + ("variance_type",)

    def __init__(self, schedule, variance_type: str = "fixed_small", **kwargs):
        super().__init__(schedule, **kwargs)
        self.variance_type = check_choice("variance_type", variance_type, VARIANCE_TYPES)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput:
        """One ancestral step from ``x_t`` to ``x_{t'}``.

        Args:
            model_output: ``(B, ...)`` the model's prediction at ``(sample, timestep)``.
            timestep: the current timestep, one of ``.timesteps``.
            sample: ``(B, ...)`` the current ``x_t``.
            generator: a ``torch.Generator`` for the added noise (reproducible sampling).
        """
        t = self._check_step_args(model_output, timestep, sample, generator)
        t_prev = self.previous_timestep(t)

        # 1. Schedule numbers for the jump t -> t_prev.
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        alpha_t = a_t / a_prev
        beta_t = 1 - alpha_t

        # 2. Predicted x0 (Eq. (15) of Ho et al. 2020 for eps-prediction), then clip it.
        x0, _ = self._x0_and_eps(model_output, sample, a_t)
        x0 = self._clip(x0)

        # 3. Posterior mean of q(x_{t'} | x_t, x0), Eq. (7):
        #    mu = sqrt(a_prev) beta_t / (1 - a_t) * x0 + sqrt(alpha_t) (1 - a_prev) / (1 - a_t) * x_t
        mean = (a_prev**0.5 * beta_t / (1 - a_t)) * x0 + (alpha_t**0.5 * (1 - a_prev) / (1 - a_t)) * sample

        # 4. Add noise, except on the last step (t = 0 gives the sample itself).
        if t > 0:
            noise = randn_like_diffusers(model_output.shape, generator, model_output)
            mean = mean + self.variance(t) ** 0.5 * noise
        return SamplerOutput(prev_sample=mean, pred_original_sample=x0)

    def variance(self, t: int) -> float:
        """Variance of the noise added when stepping from ``t``."""
        t_prev = self.previous_timestep(t)
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        beta_t = 1 - a_t / a_prev
        if self.variance_type == "fixed_large":
            return beta_t
        # beta_tilde = (1 - a_prev) / (1 - a_t) * beta_t, floored as in diffusers.
        return max((1 - a_prev) / (1 - a_t) * beta_t, 1e-20)
