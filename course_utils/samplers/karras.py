"""Sampling in sigma: Karras et al.'s step spacing, and the bookkeeping of diffusers' Euler and Heun.

The variance-preserving process ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` (``a = alpha_bar_t``) is, rescaled
by ``1 / sqrt(a)``, the variance-exploding one of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM), Eq. (1) and Table 1:

    x = x0 + sigma * eps,   sigma_t = sqrt((1 - a) / a),   x_t = x / sqrt(sigma^2 + 1)

so a sampler can walk ``x`` down a list of sigmas and hand the network ``x / sqrt(sigma^2 + 1)``
(``scale_model_input``) at the timestep of that sigma. The probability-flow ODE is then
``dx / dsigma = (x - x0_hat) / sigma = eps_hat`` (EDM, Eq. (3) with Algorithm 1's ``d``).

**Karras spacing** (EDM, Eq. (5)): ``N`` noise levels from ``sigma_max`` down to ``sigma_min``, evenly
spaced in ``sigma^(1/rho)``:

    sigma_i = (sigma_max^(1/rho) + i / (N - 1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i = 0 .. N-1

``rho = 1`` is even spacing in sigma; larger ``rho`` packs the steps at small sigma, where the
image takes shape and the ODE's curvature is largest; EDM found ``rho = 7`` best (Sec. 3, Fig. 13).

**Timesteps of sigmas** (diffusers' ``_sigma_to_t``): a sigma between two training sigmas gets the
fractional timestep found by linear interpolation in ``log sigma``; ``sigma_at_timestep`` inverts it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import as_float, as_int, check_bool, check_choice, check_positive_int
from ..schedules import NoiseSchedule
from .base import SamplerBase

# diffusers' EulerDiscreteScheduler and HeunDiscreteScheduler default to "linspace" (0 .. T - 1, fractional)
SIGMA_TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")
TIMESTEP_TOLERANCE = 1e-3  # a timestep this close to one of .timesteps is that one
MAX_SIGMA_STEPS = 100_000  # set_sigmas: far past any use; a typo's billion is refused


def karras_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int, rho: float = 7.0) -> torch.Tensor:
    """``N`` noise levels from ``sigma_max`` down to ``sigma_min``, evenly spaced in ``sigma^(1/rho)``
    (Eq. (5) of Karras et al. 2022; diffusers' ``_convert_to_karras``, k-diffusion's ``get_sigmas_karras``).

    Args:
        sigma_min, sigma_max: the ends, ``0 <= sigma_min <= sigma_max``.
        num_inference_steps: ``N >= 1`` (one level: ``[sigma_max]``).
        rho: the spacing's exponent, > 0 (1: even in sigma; EDM's 7: dense at small sigma).
    Returns:
        ``(N,)`` float64, descending, first ``sigma_max`` and last ``sigma_min``; no trailing 0
        (as diffusers: the samplers append the final ``sigma = 0`` themselves).
    """
    n = check_positive_int("num_inference_steps", num_inference_steps)
    sigma_max = as_float("sigma_max", sigma_max, low=0, low_open=True, note="the noisiest level")
    sigma_min = as_float("sigma_min", sigma_min, low=0, high=sigma_max, note="at most sigma_max")
    rho = as_float("rho", rho, low=0, low_open=True, note="EDM uses 7")
    ramp = np.linspace(0, 1, n)  # (N,) i / (N - 1)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.from_numpy((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)  # (N,)


def training_sigmas(schedule: NoiseSchedule) -> np.ndarray:
    """``(T,)`` float64 ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``, ascending in ``t``."""
    a = schedule.alphas_cumprod
    return (((1 - a) / a) ** 0.5).numpy()


def sigma_to_t(sigma: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """The fractional timestep of each ``sigma``: linear interpolation in ``log sigma`` between the two
    training timesteps around it, clipped to ``[0, T - 1]`` (diffusers' ``_sigma_to_t``)."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))  # (N,)
    dists = log_sigma - log_sigmas[:, None]  # (T, N)
    low = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)  # (N,) last t below
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0, 1)  # (N,)
    return ((1 - w) * low + w * (low + 1)).reshape(np.shape(sigma))


def sigma_at_timestep(schedule: NoiseSchedule, t: float) -> float:
    """``sigma`` at a (fractional) timestep: the inverse of ``sigma_to_t`` (a training sigma at an integer ``t``)."""
    t = as_float("t", t, low=0, high=schedule.num_timesteps - 1, note="a timestep, fractional ones too")
    a = schedule.alphas_cumprod
    low = min(int(math.floor(t)), schedule.num_timesteps - 2) if schedule.num_timesteps > 1 else 0
    w = t - low
    log_lo = 0.5 * math.log((1 - float(a[low])) / float(a[low]))
    if w == 0:
        return math.exp(log_lo)
    log_hi = 0.5 * math.log((1 - float(a[low + 1])) / float(a[low + 1]))
    return math.exp((1 - w) * log_lo + w * log_hi)


def alpha_bar_at(schedule: NoiseSchedule, t) -> float:
    """``alpha_bar`` at a timestep: the schedule's own at an integer ``t``; between two, ``1 / (1 + sigma^2)``
    with ``sigma`` interpolated in ``log sigma`` (where Karras timesteps put it: ``sigma_to_t``)."""
    t = float(t)
    if t.is_integer() and 0 <= t < schedule.num_timesteps:
        return float(schedule.alphas_cumprod[int(t)])
    return 1.0 / (1.0 + sigma_at_timestep(schedule, t) ** 2)


class SigmaSampler(SamplerBase):
    """The sigma grid and input scaling shared by ``EulerSampler`` and ``HeunSampler`` (diffusers'
    ``EulerDiscreteScheduler`` / ``HeunDiscreteScheduler``, without their noise options).

    Args:
        schedule: the ``NoiseSchedule`` the model was trained with (every ``alpha_bar_t > 0``).
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        use_karras_sigmas: space the sigmas by ``karras_sigmas`` (rho = 7) between the spacing's
            first and last sigma; the timesteps become fractional.
        timestep_spacing: ``"linspace"`` (diffusers' default: ``T - 1`` down to 0, fractional),
            ``"leading"`` or ``"trailing"`` (Table 2 of Lin et al. 2024).
        sigma_min, sigma_max: the ends of the Karras grid instead of the spacing's (diffusers'
            ``EulerDiscreteScheduler`` options; its Heun has none), within the schedule's sigmas.
            A cosine schedule's last sigma is 20,291: Karras's rho = 7 then puts 6 of 10 levels
            above sigma = 180 (alpha_bar < 3.1e-5), where the image has not begun; EDM starts at 80.

        steps_offset: added to ``"leading"`` timesteps (diffusers' option; Stable Diffusion's configs: 1).

    After ``set_timesteps(N)`` (or ``set_sigmas(levels)``): ``timesteps`` ``(N,)`` float32, descending;
    ``sigmas`` ``(N + 1,)`` float32, the last 0 (Heun lists both inner ones twice).
    """

    config_keys = ("prediction_type", "use_karras_sigmas", "timestep_spacing", "steps_offset", "sigma_min", "sigma_max")
    fixed_config = {"interpolation_type": "linear", "use_exponential_sigmas": False, "use_beta_sigmas": False,
                    "timestep_type": "discrete", "final_sigmas_type": "zero", "rescale_betas_zero_snr": False}
    uses_schedule = True

    def __init__(self, schedule: NoiseSchedule, prediction_type: str = "epsilon", use_karras_sigmas: bool = False,
                 timestep_spacing: str = "linspace", sigma_min: float | None = None, sigma_max: float | None = None,
                 steps_offset: int = 0):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule (from get_schedule), got {type(schedule).__name__}.")
        super().__init__(schedule.num_timesteps)
        self.schedule = schedule
        self.prediction_type = check_choice("prediction_type", prediction_type, ("epsilon", "v_prediction", "sample"))
        self.use_karras_sigmas = check_bool("use_karras_sigmas", use_karras_sigmas)
        self.timestep_spacing = check_choice("timestep_spacing", timestep_spacing, SIGMA_TIMESTEP_SPACINGS)
        self.steps_offset = as_int("steps_offset", steps_offset, minimum=0, maximum=schedule.num_timesteps - 1)
        self._train_sigmas = training_sigmas(schedule)  # (T,) float64
        if not np.isfinite(self._train_sigmas).all():
            raise ValueError("this schedule reaches alpha_bar = 0 (sigma = inf, a zero terminal SNR): sampling in "
                             "sigma needs alpha_bar_t > 0 at every timestep; use DDIM or DDPM with it.")
        self.sigma_min, self.sigma_max = self._check_ends(sigma_min, sigma_max)
        self.timesteps = torch.empty(0)
        self.sigmas = torch.empty(0)

    def _check_ends(self, sigma_min, sigma_max) -> tuple[float | None, float | None]:
        """The Karras grid's ends, each None or inside the schedule's sigmas (where the network was trained)."""
        if (sigma_min is not None or sigma_max is not None) and not self.use_karras_sigmas:
            raise ValueError("sigma_min and sigma_max set the ends of the Karras grid: pass use_karras_sigmas=True.")
        lo, hi = float(self._train_sigmas[0]), float(self._train_sigmas[-1])
        note = f"within the schedule's sigmas, [{lo:.4g}, {hi:.6g}]"
        ends = [None if v is None else as_float(name, v, low=lo, high=hi, note=note)
                for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max))]
        if None not in ends and ends[0] > ends[1]:
            raise ValueError(f"sigma_min must be at most sigma_max, got {ends[0]:g} > {ends[1]:g}.")
        return ends[0], ends[1]

    @property
    def init_noise_sigma(self) -> float:
        """The standard deviation of the starting ``x``: ``sigma_max`` (``sqrt(sigma_max^2 + 1)`` for
        "leading" spacing, as diffusers, whose first sigma there is below the schedule's last)."""
        top = (self.sigmas.max() if len(self.sigmas)
               else torch.tensor(float(self._train_sigmas[-1]), dtype=torch.float32))
        return float(top if self.timestep_spacing != "leading" else (top**2 + 1) ** 0.5)

    def _spaced(self, n: int) -> np.ndarray:
        """``n`` timesteps, descending, float32, by ``timestep_spacing`` (diffusers' formulas)."""
        big_t = self.num_train_timesteps
        if self.timestep_spacing == "linspace":
            return np.linspace(0, big_t - 1, n, dtype=np.float32)[::-1].copy()
        if self.timestep_spacing == "leading":
            return (np.arange(0, n) * (big_t // n)).round()[::-1].copy().astype(np.float32) + self.steps_offset
        # trailing: T down in steps of T / n, minus 1; the first n (diffusers keeps a stray n + 1-th at t = -1)
        return (np.arange(big_t, 0, -big_t / n).round().astype(np.float32) - 1)[:n]

    def _sigma_grid(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(timesteps (N,), sigmas (N + 1,))``, float32, the sigmas ending in 0."""
        timesteps = self._spaced(n)
        sigmas = np.interp(timesteps, np.arange(self.num_train_timesteps), self._train_sigmas)  # (N,) float64
        if self.use_karras_sigmas:
            lo = sigmas[-1] if self.sigma_min is None else self.sigma_min
            sigmas = karras_sigmas(lo, sigmas[0] if self.sigma_max is None else self.sigma_max, n).numpy()
            timesteps = sigma_to_t(sigmas, np.log(self._train_sigmas))
        return timesteps.astype(np.float32), np.concatenate([sigmas, [0.0]]).astype(np.float32)

    def set_sigmas(self, sigmas, device: str | torch.device | None = None) -> None:
        """Step through ``sigmas`` instead of a spacing's (diffusers' ``set_timesteps(sigmas=...)``, whose
        list ends in the final sigma): ``(N,)`` noise levels, descending, within the schedule's, and the
        final ``sigma = 0`` appended, as ``karras_sigmas`` returns them. Their timesteps: ``sigma_to_t``."""
        levels = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
        lo, hi = float(self._train_sigmas[0]), float(self._train_sigmas[-1])
        if levels.ndim != 1 or not len(levels) or not torch.isfinite(levels).all():
            raise ValueError(f"sigmas must be a non-empty 1-D list of finite noise levels, got shape "
                             f"{tuple(levels.shape)}.")
        if bool((levels[1:] > levels[:-1]).any()) or levels.min() < lo * (1 - 1e-6) or levels.max() > hi * (1 + 1e-6):
            raise ValueError(f"sigmas must descend and lie within the schedule's sigmas [{lo:.4g}, {hi:.6g}] (the "
                             f"final 0 is appended), got {float(levels[0]):.4g} .. {float(levels[-1]):.4g}.")
        self._check_steps(len(levels), MAX_SIGMA_STEPS, f"{MAX_SIGMA_STEPS:,}")
        timesteps = sigma_to_t(levels.numpy(), np.log(self._train_sigmas))
        self._set_grid(timesteps.astype(np.float32), np.concatenate([levels.numpy(), [0.0]]).astype(np.float32), device)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``N`` timesteps by ``timestep_spacing`` (float32; fractional with Karras sigmas or "linspace")
        and their sigmas, then the final ``sigma = 0``."""
        n = self._check_steps(num_inference_steps, self.num_train_timesteps,
                              f"num_train_timesteps = {self.num_train_timesteps}")
        self._set_grid(*self._sigma_grid(n), device)

    def _set_grid(self, timesteps: np.ndarray, sigmas: np.ndarray, device) -> None:
        """Install ``timesteps`` ``(N,)`` and ``sigmas`` ``(N + 1,)`` (the sampler's own layout)."""
        raise NotImplementedError

    def _sigma_index(self, timestep) -> int:
        return self._index_of(timestep, tolerance=TIMESTEP_TOLERANCE)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """``x / sqrt(sigma^2 + 1)``: the variance-preserving ``x_t`` the network was trained on."""
        if timestep is None:
            raise ValueError("scale_model_input needs the timestep (one of .timesteps): the scale depends on "
                             "its sigma.")
        sigma = self.sigmas[self._sigma_index(timestep)]
        return sample / ((sigma**2 + 1) ** 0.5)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """``x0 + sigma_t * noise`` in sigma-space, ``sigma_t`` the sigma of each of ``timesteps`` (listed in
        ``.timesteps``): diffusers' ``EulerDiscreteScheduler.add_noise``, what img2img starts from."""
        steps = torch.as_tensor(timesteps).reshape(-1)
        sigma = torch.stack([self.sigmas[self._sigma_index(t)] for t in steps]).to(original_samples)  # (B,)
        return original_samples + noise * sigma.reshape(-1, *[1] * (original_samples.ndim - 1))

    def _x0(self, model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Stage 1 of a step: the ``x0`` a prediction implies at ``x = sample`` (EDM's ``D(x; sigma)``)."""
        if self.prediction_type == "epsilon":
            return sample - sigma * model_output  # x = x0 + sigma eps
        if self.prediction_type == "v_prediction":
            # x_t = x / sqrt(s^2 + 1), alpha = 1 / sqrt(s^2 + 1): x0 = alpha x_t - sigma alpha v
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        return model_output
