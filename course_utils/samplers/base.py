"""The sampler protocol (diffusers' scheduler interface) and the bookkeeping every sampler shares.

A sampler walks ``sample`` from noise to data over ``.timesteps`` (descending):

.. code-block:: python

    sampler.set_timesteps(50)
    x = torch.randn(shape, generator=g) * sampler.init_noise_sigma
    for t in sampler.timesteps:
        x = sampler.step(model(sampler.scale_model_input(x, t), t), t, x, generator=g).prev_sample

That loop is ``samplers.loop.sample_loop``; it runs the same with ``diffusers.DDPMScheduler`` or
``DDIMScheduler`` in place of ours. ``SamplerBase`` keeps the timestep list and finds where a call
is in it; ``DiscreteSampler`` adds a noise schedule's integer timesteps, their spacing and the
model-output conversion (``course_utils.parameterization``).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from .._validation import as_float, as_int, check_bool, check_choice, check_generator, check_same_shape, check_timesteps
from ..forward import q_sample
from ..parameterization import PREDICTION_TYPES, to_x0_eps
from ..schedules import NoiseSchedule
from .interop import config_of, kwargs_from_config

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


class SamplerOutput(NamedTuple):
    """What ``step`` returns, named as in diffusers. A named tuple, so ``step(...)[0]`` (what diffusers'
    pipelines read after ``step(..., return_dict=False)``) is ``prev_sample`` too.

    Attributes:
        prev_sample: ``(B, ...)`` the sample at the previous (less noisy) timestep.
        pred_original_sample: ``(B, ...)`` the model's current estimate of ``x0``.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


@runtime_checkable
class Sampler(Protocol):
    """What every sampler here (and every diffusers scheduler the course uses) provides.

    ``order`` is the number of network calls per step of the underlying solver (diffusers' name:
    2 for Heun, whose ``.timesteps`` list each inner timestep twice). ``step`` takes diffusers'
    ``return_dict`` and returns a ``SamplerOutput`` either way: a named tuple, so ``[0]`` works.
    """

    timesteps: torch.Tensor
    init_noise_sigma: float
    order: int

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None: ...

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor: ...

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True) -> SamplerOutput: ...


def randn_like_diffusers(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn as ``diffusers.utils.torch_utils.randn_tensor`` draws it.

    Drawn on the generator's device (so a CPU generator gives the same numbers for a GPU sample),
    then moved to ``like``'s device with ``like``'s dtype.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return noise.to(like.device)


class SamplerBase:
    """The timestep list and where a call is in it: what every sampler here shares.

    Subclasses fill ``timesteps`` in ``set_timesteps`` and read their position with ``_index_of``
    (stateless samplers: any listed timestep, in any order) or ``_next_index`` (samplers that keep
    state between calls: the next timestep in order).
    """

    init_noise_sigma = 1.0  # x_T ~ N(0, I): the initial noise needs no scaling
    order = 1
    # diffusers interop (``interop``): the matching scheduler, the constructor arguments named as its
    # config keys, the settings implemented at one value only, and whether a noise schedule is built.
    diffusers_class: str = ""
    config_keys: tuple[str, ...] = ()
    fixed_config: dict = {}
    uses_schedule = False

    def __init__(self, num_train_timesteps: int):
        self.num_train_timesteps = num_train_timesteps
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.long)
        self._calls = 0  # steps taken since set_timesteps (for _next_index)

    def _check_steps(self, num_inference_steps, limit: int, limit_text: str) -> int:
        """``num_inference_steps`` as an int in [1, limit], or an error saying what the limit is (``limit_text``)."""
        n = as_int("num_inference_steps", num_inference_steps, minimum=1, what="a positive integer")
        if n > limit:
            raise ValueError(f"num_inference_steps must be at most {limit_text}, got {n}.")
        self.num_inference_steps = n
        self._calls = 0
        return n

    def _require_timesteps(self) -> None:
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")

    def _index_of(self, timestep, tolerance: float = 0.0) -> int:
        """The position of ``timestep`` in ``.timesteps`` (the first, if listed twice)."""
        self._require_timesteps()
        t = as_float("timestep", timestep, note="one of the sampler's .timesteps") if tolerance else timestep
        if tolerance:
            idx = int(torch.argmin((self.timesteps.cpu().float() - t).abs()))
            if abs(float(self.timesteps[idx]) - t) <= tolerance:
                return idx
        else:
            matches = (self.timesteps == t).nonzero()
            if len(matches):
                return int(matches[0, 0])
        listed = self.timesteps.tolist()
        shown = listed if len(listed) <= 12 else f"{len(listed)} of them, {listed[0]:g} down to {listed[-1]:g}"
        raise ValueError(f"timestep {float(torch.as_tensor(timestep)):g} is not one of this sampler's timesteps "
                         f"({shown}); step through `sampler.timesteps` (call set_timesteps(n) first to use n steps).")

    def _next_index(self, timestep, tolerance: float, name: str) -> int:
        """The position of this call, which must be at the next timestep in order (a stateful sampler)."""
        self._require_timesteps()
        k = self._calls
        timestep = as_float("timestep", timestep, note="the next of the sampler's .timesteps")
        if k >= len(self.timesteps) or abs(timestep - float(self.timesteps[k])) > tolerance:
            expected = f"{float(self.timesteps[k]):g}" if k < len(self.timesteps) else "none (the loop has ended)"
            raise ValueError(f"{name} keeps state between steps: steps must follow .timesteps in order; expected "
                             f"timestep {expected}, got {float(timestep):g}. Call set_timesteps again to restart.")
        self._calls += 1
        return k

    @staticmethod
    def _check_tensors(model_output, sample, generator=None) -> None:
        """The inputs every ``step`` takes: two tensors of one shape, and a ``torch.Generator`` or None
        (checked even by a deterministic sampler, so a wrong argument never goes unnoticed)."""
        if not isinstance(model_output, torch.Tensor) or not isinstance(sample, torch.Tensor):
            raise TypeError("model_output and sample must be tensors.")
        check_same_shape(model_output=model_output, sample=sample)
        check_generator(generator)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """Identity, for interface parity with diffusers (these samplers need no input scaling)."""
        return sample

    @property
    def config(self):
        """The settings by diffusers' key names (read-only; ``diffusers.<Scheduler>.from_config`` takes it)."""
        return config_of(self)

    @classmethod
    def from_config(cls, config, **overrides):
        """A sampler with the settings of a diffusers scheduler ``config`` (or of a scheduler), e.g.
        ``DDIMSampler.from_config(pipe.scheduler.config)``; ``overrides`` replace single keys."""
        return cls(**kwargs_from_config(cls, config, overrides))

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at ``.timesteps[begin_index]`` instead of the first (diffusers' img2img pipelines call this
        so that a sampler that keeps state between steps expects the right timestep next)."""
        self._calls = as_int("begin_index", begin_index, minimum=0, what="an index into .timesteps")

    def __len__(self) -> int:
        return self.num_train_timesteps


class DiscreteSampler(SamplerBase):
    """A noise schedule's integer timesteps, their spacing, and the model output read as ``(x0, eps)``.

    Args:
        schedule: the ``NoiseSchedule`` the model was trained with.
        prediction_type: what the model outputs: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        clip_sample: clamp the predicted ``x0`` to ``[-clip_sample_range, clip_sample_range]``
            (diffusers' default; right for images in [-1, 1], wrong for unbounded data).
        timestep_spacing: ``"leading"`` (diffusers' default), ``"trailing"`` or ``"linspace"``
            (Table 2 of Lin et al. 2024).
        max_timestep: where a ``"trailing"`` grid starts (default ``T - 1``; not a diffusers option).
            ``DiffusionModel.sample`` starts few-step grids at the noisiest timestep whose ``x0`` a
            noise prediction still determines well (``parameterization.WELL_CONDITIONED_ALPHA_BAR``).
        steps_offset: added to every ``"leading"`` timestep (diffusers' option; Stable Diffusion's
            configs use 1, giving 981, 961, ..., 1 for 50 steps); the other spacings ignore it, as in diffusers.
    """

    config_keys = ("prediction_type", "clip_sample", "clip_sample_range", "timestep_spacing", "steps_offset")
    fixed_config = {"thresholding": False}
    uses_schedule = True

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
        max_timestep: int | None = None,
        steps_offset: int = 0,
    ):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
        super().__init__(schedule.num_timesteps)
        self.schedule = schedule
        self.prediction_type = check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        if self.prediction_type == "epsilon" and float(schedule.alphas_cumprod[-1]) == 0.0:
            raise ValueError(f"prediction_type='epsilon' cannot sample schedule {schedule.name!r}: its last timestep is "
                             "pure noise (alpha_bar = 0, zero terminal SNR), where a noise prediction says nothing "
                             "about x0. Train and sample with prediction_type='v_prediction' (Lin et al. 2024), or "
                             "use the schedule without rescale_betas_zero_snr.")
        self.timestep_spacing = check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.clip_sample = check_bool("clip_sample", clip_sample)
        self.clip_sample_range = as_float("clip_sample_range", clip_sample_range, low=0, low_open=True)
        if max_timestep is not None and self.timestep_spacing != "trailing":
            raise ValueError(f"max_timestep is used only by timestep_spacing='trailing' (where the grid starts); "
                             f"got it with {self.timestep_spacing!r}.")
        self.max_timestep = (self.num_train_timesteps - 1 if max_timestep is None else
                             as_int("max_timestep", max_timestep, minimum=0, maximum=self.num_train_timesteps - 1))
        self.steps_offset = as_int("steps_offset", steps_offset, minimum=0, maximum=self.num_train_timesteps - 1)
        self.timesteps = torch.arange(self.num_train_timesteps - 1, -1, -1, dtype=torch.long)
        self._alphas_cumprod = schedule.alphas_cumprod.tolist()  # Python floats: cheap scalar lookups

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` of the ``T`` training timesteps, in descending order."""
        n = self._check_steps(num_inference_steps, self.num_train_timesteps,
                              f"num_train_timesteps = {self.num_train_timesteps}")
        self.timesteps = torch.from_numpy(self._spaced(n).copy()).to(device)

    def _spaced(self, n: int) -> np.ndarray:
        """``n`` integer timesteps, descending, by ``timestep_spacing``."""
        big_t = self.num_train_timesteps
        if self.timestep_spacing == "leading":
            # Every (T // n)-th timestep from 0, plus the offset: [..., 2k + o, k + o, o] with k = T // n.
            steps = (np.arange(0, n) * (big_t // n)).round()[::-1].astype(np.int64) + self.steps_offset
            if steps[0] >= big_t:
                raise ValueError(f"steps_offset={self.steps_offset} puts the first of {n} leading timesteps at "
                                 f"{steps[0]}, past the last training timestep {big_t - 1}; use fewer steps.")
            return steps
        if self.timestep_spacing == "trailing":
            # Counting down from M + 1 = T (or max_timestep + 1) in steps of M / n, so the first step is
            # the noisiest timestep. Where rounding leaves a hair above 0, arange makes n + 1 points, the
            # last of them timestep -1 (diffusers does, e.g. n = 61 of 1,000); the first n are the grid.
            top = self.max_timestep + 1
            if n > top:
                raise ValueError(f"num_inference_steps must be at most max_timestep + 1 = {top}, got {n}.")
            return (np.round(np.arange(top, 0, -top / n)).astype(np.int64) - 1)[:n]
        return np.linspace(0, big_t - 1, n).round()[::-1].astype(np.int64)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep after ``timestep`` in ``.timesteps``, or -1 after the last one."""
        index = self._index_of(timestep)
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def alpha_bar(self, t: int) -> float:
        """``alpha_bar_t``, with ``alpha_bar_{-1} = 1`` (the clean end, after the last step)."""
        return 1.0 if t < 0 else self._alphas_cumprod[t]

    def _check_step_args(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None) -> int:
        self._check_tensors(model_output, sample, generator)
        t = check_timesteps(timestep, self.num_train_timesteps, "timestep")
        if t.ndim != 0:
            raise ValueError(f"step takes one timestep at a time (as in diffusers); got shape {tuple(t.shape)}.")
        return int(t)

    def _clip(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.clamp(-self.clip_sample_range, self.clip_sample_range) if self.clip_sample else x0

    def _x0_and_eps(self, model_output: torch.Tensor, sample: torch.Tensor, a: float):
        """Stage 1 of every step: the model output as ``(x0, eps)`` (before clipping), ``a = alpha_bar_t``."""
        return to_x0_eps(model_output, sample, a**0.5, (1 - a) ** 0.5, self.prediction_type)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """The forward process in closed form (diffusers' ``add_noise``)."""
        return q_sample(original_samples, timesteps, noise, self.schedule)
