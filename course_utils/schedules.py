"""Noise schedules: how much noise each forward step adds.

Notation (Ho et al. 2020, with diffusers' names):

==================  ==========================  =========================================
symbol              attribute                   meaning
==================  ==========================  =========================================
beta_t              ``betas[t]``                variance of the noise added at step t
alpha_t             ``alphas[t]``               ``1 - beta_t``
alpha_bar_t         ``alphas_cumprod[t]``       ``prod_{s<=t} alpha_s``: signal kept after step t
SNR(t)              ``snr()[t]``                ``alpha_bar_t / (1 - alpha_bar_t)``
==================  ==========================  =========================================

Timesteps are 0-indexed as in diffusers: ``alphas_cumprod[0] = 1 - betas[0]`` (slightly below 1),
and ``alphas_cumprod[T - 1]`` is close to 0. All arrays are 1-D float64 tensors on the CPU; cast
them where they are used (``schedule.gather``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from ._validation import as_float, check_bool, check_choice, check_positive_int, check_size, check_timesteps

SCHEDULE_NAMES = ("linear", "cosine", "scaled_linear")


class NoiseSchedule:
    """A variance-preserving noise schedule defined by its betas.

    Args:
        betas: ``(T,)`` per-step noise variances, each in (0, 1].
        name: a label for plots.
    """

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}.")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas > 1).any():
            raise ValueError("every beta must be a finite number in (0, 1].")
        self.name = name
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.recipe: dict | None = None  # get_schedule's arguments, when it built this (samplers' ``config``)

    @property
    def num_timesteps(self) -> int:
        return self.betas.numel()

    def __len__(self) -> int:
        return self.num_timesteps

    def __repr__(self) -> str:
        return f"NoiseSchedule(name={self.name!r}, num_timesteps={self.num_timesteps})"

    def snr(self) -> torch.Tensor:
        """``(T,)`` signal-to-noise ratio ``alpha_bar_t / (1 - alpha_bar_t)``."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def log_snr(self) -> torch.Tensor:
        """``(T,)`` natural log of the SNR (the x-axis of most schedule comparisons)."""
        return torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)

    def gather(self, attr: str, t, like: torch.Tensor) -> torch.Tensor:
        """Values of ``attr`` (e.g. ``"alphas_cumprod"``) at timesteps ``t``.

        ``t`` is an int or a ``(B,)`` LongTensor; the result has ``t``'s shape, with ``like``'s
        dtype and device (the cast happens on the CPU first, since some devices lack float64).
        """
        check_choice("schedule attribute", attr, ("betas", "alphas", "alphas_cumprod"))
        t = check_timesteps(t, self.num_timesteps)
        values = getattr(self, attr)[t.cpu()]
        return values.to(dtype=like.dtype).to(like.device)


def _linear(n: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    # Ho et al. 2020, Sec. 4: betas rise linearly from 1e-4 to 0.02 over T = 1000 steps.
    return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)


def _scaled_linear(n: int, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    # Stable Diffusion: sqrt(beta) rises linearly, so beta rises quadratically.
    return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2


def _cosine(n: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    # Nichol & Dhariwal 2021, Eq. (17): alpha_bar(u) = cos^2(((u + s) / (1 + s)) * pi / 2), u in [0, 1],
    # and beta_t = 1 - alpha_bar((t+1)/T) / alpha_bar(t/T), capped at max_beta (diffusers' squaredcos_cap_v2).
    u = torch.arange(n + 1, dtype=torch.float64) / n
    alpha_bar = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return torch.clamp(1 - alpha_bar[1:] / alpha_bar[:-1], max=max_beta)


_BUILDERS: dict[str, Callable[..., torch.Tensor]] = {
    "linear": _linear,
    "cosine": _cosine,
    "scaled_linear": _scaled_linear,
}
_KWARGS = {"linear": ("beta_start", "beta_end"), "cosine": ("s", "max_beta"), "scaled_linear": ("beta_start", "beta_end")}

# The diffusers `beta_schedule` that each of ours equals (for parity tests and for learners).
DIFFUSERS_BETA_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2", "scaled_linear": "scaled_linear"}


def rescale_zero_terminal_snr(schedule: NoiseSchedule) -> NoiseSchedule:
    """``schedule`` rescaled so that its last timestep is pure noise (Lin et al. 2024, Algorithm 1).

    ``sqrt(alpha_bar_t)`` is shifted so that its last value is 0 and scaled so that its first is
    unchanged; the betas are then read back from the new ``alpha_bar``. Stable Diffusion's
    scaled-linear schedule keeps ``sqrt(alpha_bar_T) = 0.068`` of the image at its noisiest step, so
    training never shows the network pure noise, while sampling starts from it: the model cannot
    leave the mean brightness of the noise (mid-grey). With zero terminal SNR the last beta is 1
    and ``alpha_bar_T = 0``, where an epsilon-prediction cannot say anything about ``x0``: train
    with ``prediction_type="v_prediction"``. Equals diffusers' ``rescale_zero_terminal_snr``
    (``rescale_betas_zero_snr=True`` in its schedulers).
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
    root = schedule.alphas_cumprod.sqrt()
    first, last = root[0].item(), root[-1].item()
    if first <= last:
        raise ValueError("the schedule must remove signal over time (sqrt(alpha_bar) falling from its first to "
                         f"its last timestep); got {first:g} -> {last:g}.")
    root = (root - last) * (first / (first - last))
    alpha_bar = root**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return NoiseSchedule(1 - alphas, name=f"{schedule.name}, zero terminal SNR")


def get_schedule(name: str, num_timesteps: int = 1000, rescale_betas_zero_snr: bool = False,
                 **kwargs) -> NoiseSchedule:
    """Build a named schedule.

    Args:
        name: ``"linear"`` (1e-4 to 0.02), ``"cosine"`` (s = 0.008, betas capped at 0.999) or
            ``"scaled_linear"`` (sqrt-spaced 0.00085 to 0.012, as in Stable Diffusion).
        num_timesteps: T, the number of forward steps.
        rescale_betas_zero_snr: rescale to zero terminal SNR (``rescale_zero_terminal_snr``;
            diffusers' option of the same name).
        **kwargs: ``beta_start`` / ``beta_end`` for the linear ones, ``s`` / ``max_beta`` for cosine.
    """
    if not isinstance(name, str):
        raise TypeError(f"schedule name must be a string; accepted: {', '.join(SCHEDULE_NAMES)}.")
    check_choice("schedule", name, SCHEDULE_NAMES)
    num_timesteps = check_positive_int("num_timesteps", num_timesteps)
    # float64 betas, alphas and alpha_bar, plus the samplers' copies and a Python list of alpha_bar
    check_size(f"a {num_timesteps:,}-step schedule", 8 * 12 * num_timesteps, "num_timesteps")
    unknown = set(kwargs) - set(_KWARGS[name])
    if unknown:
        raise TypeError(
            f"schedule {name!r} does not take {', '.join(sorted(unknown))}; it accepts {', '.join(_KWARGS[name])}."
        )
    kwargs = {k: as_float(k, v, 0, 1, low_open=k != "s") for k, v in kwargs.items()}  # betas, s, max_beta
    schedule = NoiseSchedule(_BUILDERS[name](num_timesteps, **kwargs), name=name)
    zero_snr = check_bool("rescale_betas_zero_snr", rescale_betas_zero_snr)
    if zero_snr:
        schedule = rescale_zero_terminal_snr(schedule)
    defaults = {k: p.default for k, p in inspect.signature(_BUILDERS[name]).parameters.items() if k in _KWARGS[name]}
    schedule.recipe = {"name": name, "num_timesteps": num_timesteps, "rescale_betas_zero_snr": zero_snr,
                       **defaults, **kwargs}
    return schedule
