"""DDIM sampling (Song et al. 2021, Eq. (12)), deterministic at ``eta = 0``.

Notation map (code -> paper, whose alpha is our alpha_bar): ``a_t`` -> alpha_t, ``a_prev`` ->
alpha_{t-1} (the previous timestep in ``.timesteps``), ``sigma`` -> sigma_t(eta) of Eq. (16).
"""

from __future__ import annotations

import torch

from .._validation import as_float, check_bool
from .base import DiscreteSampler, SamplerOutput, randn_like_diffusers


class DDIMSampler(DiscreteSampler):
    """DDIM with diffusers' ``DDIMScheduler`` interface and defaults.

    Args:
        schedule: the training ``NoiseSchedule``.
        set_alpha_to_one: use ``alpha_bar = 1`` after the last step (diffusers' default); else
            ``alpha_bar_0``.
        **kwargs: ``prediction_type``, ``clip_sample``, ``clip_sample_range``, ``timestep_spacing``,
            ``steps_offset``.

    Each step goes to the next timestep in ``.timesteps``. diffusers' ``DDIMScheduler`` (and
    ``DDPMScheduler``) goes to ``t - T // n`` instead, which is the same timestep on "leading" grids and on
    "trailing" ones when ``n`` divides ``T``; on a "linspace" grid it is not (for 4 of 1,000 steps it jumps
    999 -> 749 while the grid lists 666), so there the two differ, and this one follows the grid.
    """

    diffusers_class = "DDIMScheduler"
    config_keys = DiscreteSampler.config_keys + ("set_alpha_to_one",)

    def __init__(self, schedule, set_alpha_to_one: bool = True, **kwargs):
        super().__init__(schedule, **kwargs)
        self.set_alpha_to_one = check_bool("set_alpha_to_one", set_alpha_to_one)
        self.final_alpha_cumprod = 1.0 if self.set_alpha_to_one else self._alphas_cumprod[0]

    def alpha_bar(self, t: int) -> float:
        return self.final_alpha_cumprod if t < 0 else self._alphas_cumprod[t]

    def variance(self, t: int, t_prev: int) -> float:
        """sigma_t(1)^2 = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), Eq. (16)."""
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        return (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator=None,
        return_dict: bool = True,
        use_clipped_model_output: bool = False,
    ) -> SamplerOutput:
        """One DDIM step from ``x_t`` to ``x_{t'}``.

        Args:
            model_output: ``(B, ...)`` the model's prediction at ``(sample, timestep)``.
            timestep: the current timestep, one of ``.timesteps``.
            sample: ``(B, ...)`` the current ``x_t``.
            eta: 0 for the deterministic DDIM ODE step, 1 for DDPM-like noise; values in [0, 1].
            generator: a ``torch.Generator`` for the noise when ``eta > 0``.
            use_clipped_model_output: re-derive ``eps`` from the clipped ``x0`` (diffusers' option, which its
                ``DDIMPipeline`` passes; it changes the step only when ``clip_sample`` clips).
        """
        t = self._check_step_args(model_output, timestep, sample, generator)
        eta = as_float("eta", eta, 0, 1, note="0: deterministic DDIM, 1: DDPM-like")
        t_prev = self.previous_timestep(t)
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(t_prev)

        # 1. Predicted x0 and eps; clip x0 (eps is kept as predicted, as in diffusers, unless asked).
        x0, eps = self._x0_and_eps(model_output, sample, a_t)
        x0 = self._clip(x0)
        if check_bool("use_clipped_model_output", use_clipped_model_output):
            eps = (sample - a_t**0.5 * x0) / (1 - a_t) ** 0.5

        # 2. sigma_t(eta), Eq. (16).
        sigma = eta * self.variance(t, t_prev) ** 0.5

        # 3. Eq. (12): x_{t'} = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z
        prev = a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps
        if eta > 0:
            prev = prev + sigma * randn_like_diffusers(model_output.shape, generator, model_output)
        return SamplerOutput(prev_sample=prev, pred_original_sample=x0)
