"""What every discrete-time sampler shares: diffusers' scheduler interface.

A sampler walks ``sample`` from noise to data over ``.timesteps`` (descending):

.. code-block:: python

    sampler.set_timesteps(50)
    x = torch.randn(shape, generator=g)
    for t in sampler.timesteps:
        x = sampler.step(model(x, t), t, x, generator=g).prev_sample

The same loop runs with ``diffusers.DDPMScheduler`` or ``DDIMScheduler`` in place of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_choice, check_positive_int, check_same_shape, check_timesteps
from ..parameterization import PREDICTION_TYPES, to_x0_eps
from ..schedules import NoiseSchedule

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass
class SamplerOutput:
    """What ``step`` returns, named as in diffusers.

    Attributes:
        prev_sample: ``(B, ...)`` the sample at the previous (less noisy) timestep.
        pred_original_sample: ``(B, ...)`` the model's current estimate of ``x0``.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def randn_like_diffusers(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn as ``diffusers.utils.torch_utils.randn_tensor`` draws it.

    Drawn on the generator's device (so a CPU generator gives the same numbers for a GPU sample),
    then moved to ``like``'s device with ``like``'s dtype.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return noise.to(like.device)


class DiscreteSampler:
    """Timesteps, their spacing and argument checks, common to DDPM and DDIM.

    Args:
        schedule: the ``NoiseSchedule`` the model was trained with.
        prediction_type: what the model outputs: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        clip_sample: clamp the predicted ``x0`` to ``[-clip_sample_range, clip_sample_range]``
            (diffusers' default; right for images in [-1, 1], wrong for unbounded data).
        timestep_spacing: ``"leading"`` (diffusers' default), ``"trailing"`` or ``"linspace"``
            (Table 2 of Lin et al. 2024).
    """

    init_noise_sigma = 1.0  # x_T ~ N(0, I): the initial noise needs no scaling

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
    ):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
        self.schedule = schedule
        self.prediction_type = check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        self.timestep_spacing = check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be positive, got {clip_sample_range}.")
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = float(clip_sample_range)
        self.num_train_timesteps = schedule.num_timesteps
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(self.num_train_timesteps - 1, -1, -1, dtype=torch.long)
        self._alphas_cumprod = schedule.alphas_cumprod.tolist()  # Python floats: cheap scalar lookups

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` of the ``T`` training timesteps, in descending order."""
        n = check_positive_int("num_inference_steps", num_inference_steps)
        big_t = self.num_train_timesteps
        if n > big_t:
            raise ValueError(f"num_inference_steps must be at most num_train_timesteps = {big_t}, got {n}.")
        if self.timestep_spacing == "leading":
            # Every (T // n)-th timestep from 0: [..., 2k, k, 0] with k = T // n.
            ts = (np.arange(0, n) * (big_t // n)).round()[::-1].astype(np.int64)
        elif self.timestep_spacing == "trailing":
            # Counting down from T in steps of T / n, so the first step is the noisiest timestep.
            ts = np.round(np.arange(big_t, 0, -big_t / n)).astype(np.int64) - 1
        else:
            ts = np.linspace(0, big_t - 1, n).round()[::-1].astype(np.int64)
        self.num_inference_steps = n
        self.timesteps = torch.from_numpy(ts.copy()).to(device)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep after ``timestep`` in ``.timesteps``, or -1 after the last one."""
        index = self._index_of(timestep)
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def alpha_bar(self, t: int) -> float:
        """``alpha_bar_t``, with ``alpha_bar_{-1} = 1`` (the clean end, after the last step)."""
        return 1.0 if t < 0 else self._alphas_cumprod[t]

    def _index_of(self, timestep: int) -> int:
        matches = (self.timesteps == timestep).nonzero()
        if len(matches) == 0:
            raise ValueError(
                f"timestep {timestep} is not one of this sampler's timesteps; step through `sampler.timesteps` "
                f"(call set_timesteps(n) first to use n steps)."
            )
        return int(matches[0, 0])

    def _check_step_args(self, model_output: torch.Tensor, timestep, sample: torch.Tensor) -> int:
        if not isinstance(model_output, torch.Tensor) or not isinstance(sample, torch.Tensor):
            raise TypeError("model_output and sample must be tensors.")
        check_same_shape(model_output=model_output, sample=sample)
        t = check_timesteps(timestep, self.num_train_timesteps, "timestep")
        if t.ndim != 0:
            raise ValueError(f"step takes one timestep at a time (as in diffusers); got shape {tuple(t.shape)}.")
        return int(t)

    def _clip(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.clamp(-self.clip_sample_range, self.clip_sample_range) if self.clip_sample else x0

    def _x0_and_eps(self, model_output: torch.Tensor, sample: torch.Tensor, a: float):
        """Stage 1 of every step: the model output as ``(x0, eps)`` (before clipping)."""
        return to_x0_eps(model_output, sample, a**0.5, (1 - a) ** 0.5, self.prediction_type)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """The forward process in closed form (diffusers' ``add_noise``)."""
        from ..forward import q_sample

        return q_sample(original_samples, timesteps, noise, self.schedule)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """Identity, for interface parity with diffusers (these samplers need no input scaling)."""
        return sample

    def __len__(self) -> int:
        return self.num_train_timesteps
