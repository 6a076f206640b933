"""The losses: what one batch costs for each model family (``course_utils.families``).

- diffusion: the simple loss of Ho et al. 2020 (Algorithm 1): ``t ~ U{0, T-1}``, ``eps ~ N(0, I)``,
  ``x_t`` by the closed form, a mean squared error against the target (``eps``, ``x0`` or ``v``);
- flow matching: ``flow_matching.flow_matching_loss``, the velocity on the straight path;
- consistency: ``distillation.consistency_distillation_loss``, a student against its EMA target
  along the frozen teacher's ODE.

Every loss takes the batch's labels (replaced by the null label with probability ``label_dropout``,
classifier-free guidance training) and a ``shard``: the rows this process trains on under data
parallelism. Every draw is made for the whole batch, so the union of the shards is exactly the
single-process batch (``training.distributed``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..distillation import consistency_distillation_loss
from ..families import CONSISTENCY, DIFFUSION, FLOW_MATCHING
from ..flow_matching import flow_matching_loss
from ..parameterization import from_x0_eps, noised
from ..schedules import NoiseSchedule
from .config import TrainConfig
from .distributed import ALL


def min_snr_weights(snr: torch.Tensor, gamma: float, prediction_type: str = "epsilon") -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023, Eq. 8), per example, for ``snr`` ``(B,)``.

    In x0 terms the weight is ``min(SNR, gamma)``: easy, nearly clean timesteps (huge SNR) no longer
    dominate the gradient. A loss against another target already carries a factor: the squared eps
    error is ``SNR`` times the squared x0 error, the squared v error ``SNR + 1`` times, so the weight
    divides it out: ``min(SNR, gamma) / SNR`` for epsilon, ``min(SNR, gamma) / (SNR + 1)`` for v, as
    diffusers' training scripts do.
    """
    capped = snr.clamp(max=gamma)
    if prediction_type == "epsilon":
        return capped / snr
    if prediction_type == "v_prediction":
        return capped / (snr + 1)
    return capped


def simple_loss(model, x0, t, noise, alphas_cumprod, prediction_type="epsilon", snr_gamma=None,
                **model_kwargs) -> torch.Tensor:
    """The simple loss for given timesteps and noise: ``mean ||target - model(x_t, t)||^2``, each
    example weighted by ``min_snr_weights`` when ``snr_gamma`` is given.

    Args:
        x0: ``(B, ...)`` clean data; t: ``(B,)`` timesteps; noise: like ``x0``;
        alphas_cumprod: ``(T,)`` on ``x0``'s device; prediction_type: the target.
    """
    a = alphas_cumprod[t].view(x0.shape[0], *([1] * (x0.ndim - 1)))  # (B, 1, 1, 1)
    alpha, sigma = a.sqrt(), (1 - a).sqrt()
    x_t = noised(x0, noise, alpha, sigma)  # the closed form, Eq. (4)
    target = from_x0_eps(x0, noise, alpha, sigma, prediction_type)
    pred = model(x_t, t, **model_kwargs).float()
    if snr_gamma is None:
        return F.mse_loss(pred, target.float())
    per_example = (pred - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    snr = alphas_cumprod[t].double() / (1 - alphas_cumprod[t].double())  # (B,), float64: huge near t = 0
    return (min_snr_weights(snr, snr_gamma, prediction_type).float() * per_example).mean()


def diffusion_loss(model, x0, alphas_cumprod, generator, prediction_type="epsilon", labels=None,
                   label_dropout=0.0, null_label=None, shard: slice = ALL, snr_gamma=None) -> torch.Tensor:
    """Algorithm 1 of Ho et al. 2020 for one batch: draw ``t ~ U{0, T-1}`` and ``eps ~ N(0, I)``
    with ``generator`` (on ``x0``'s device), then ``simple_loss``. With ``labels``, each label
    is replaced by ``null_label`` with probability ``label_dropout``.
    """
    b = x0.shape[0]
    t = torch.randint(0, alphas_cumprod.numel(), (b,), device=x0.device, generator=generator)  # (B,)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)  # (B, C, H, W)
    kwargs = _label_kwargs(labels, label_dropout, null_label, generator)
    return simple_loss(model, x0[shard], t[shard], noise[shard], alphas_cumprod, prediction_type, snr_gamma,
                       **_take(kwargs, shard))


def flow_loss(model, x0, generator, labels=None, label_dropout=0.0, null_label=None, shard: slice = ALL,
              **time_options) -> torch.Tensor:
    """``flow_matching.flow_matching_loss`` for one batch, with the same label dropout and ``shard``
    as ``diffusion_loss``; ``time_options``: how sigma is drawn (``flow_matching.sample_sigmas``)."""
    kwargs = _label_kwargs(labels, label_dropout, null_label, generator)
    return flow_matching_loss(model, x0, generator, shard=shard, **time_options, **_take(kwargs, shard))


def consistency_loss(model, target, teacher, x0, alphas_cumprod, generator, config: TrainConfig, labels=None,
                     null_label=None, shard: slice = ALL) -> torch.Tensor:
    """``distillation.consistency_distillation_loss`` for one batch, with ``diffusion_loss``'s label
    dropout and ``shard``."""
    kwargs = _label_kwargs(labels, config.label_dropout, null_label, generator)
    return consistency_distillation_loss(model, target, teacher, x0, alphas_cumprod, generator,
                                         config.original_inference_steps, shard=shard, **_take(kwargs, shard))


def _take(kwargs: dict, shard: slice) -> dict:
    """``kwargs`` with every tensor cut to the rows ``shard``."""
    return {k: v[shard] if torch.is_tensor(v) else v for k, v in kwargs.items()}


def _label_kwargs(labels, label_dropout: float, null_label, generator) -> dict:
    """``{"class_labels": labels}`` with each label replaced by ``null_label`` with probability
    ``label_dropout`` (classifier-free guidance training); ``{}`` without labels."""
    if labels is None:
        return {}
    if label_dropout > 0:
        drop = torch.rand(labels.shape[0], device=labels.device, generator=generator) < label_dropout
        labels = torch.where(drop, torch.full_like(labels, null_label), labels)
    return {"class_labels": labels}


def check_objective(config: TrainConfig, schedule: NoiseSchedule | None, teacher) -> None:
    """Refuse a family without what it needs: diffusion and consistency a schedule, consistency a teacher."""
    if config.objective == DIFFUSION and schedule is None:
        raise ValueError("the diffusion objective needs the noise schedule (e.g. get_schedule('cosine')).")
    if (config.objective == CONSISTENCY) != (teacher is not None):
        raise ValueError("objective='consistency' needs a teacher (the frozen diffusion model to distil), and only "
                         f"it takes one; got objective={config.objective!r}, teacher={type(teacher).__name__}.")
    if config.objective == CONSISTENCY and schedule is None:
        raise ValueError("consistency distillation needs the teacher's noise schedule.")
    if (config.objective == DIFFUSION and config.prediction_type == "epsilon"
            and float(schedule.alphas_cumprod[-1]) == 0.0):
        raise ValueError(f"prediction_type='epsilon' on schedule {schedule.name!r}, whose last timestep is pure noise "
                         "(zero terminal SNR): there the noise target is the input itself and says nothing about x0, "
                         "and no sampler can start from it. Use prediction_type='v_prediction' (Lin et al. 2024).")


def make_objective(config: TrainConfig, schedule: NoiseSchedule | None, generator: torch.Generator,
                   null_label: int | None, shard: slice, teacher=None, target=None) -> Callable:
    """``loss(net, x0, labels)`` for one batch of ``config.objective``'s family, drawing with ``generator``.

    ``teacher`` (consistency): the frozen diffusion model, already on the device; ``target``: the
    student's EMA copy.
    """
    check_objective(config, schedule, teacher)
    device = generator.device
    alphas = schedule.alphas_cumprod.to(torch.float32).to(device) if schedule is not None else None
    if config.objective == FLOW_MATCHING:
        times = {"time_sampling": config.time_sampling, "logit_mean": config.logit_mean,
                 "logit_std": config.logit_std, "shift": config.time_shift}
        return lambda net, x0, labels: flow_loss(net, x0, generator, labels, config.label_dropout, null_label, shard,
                                                 **times)
    if config.objective == CONSISTENCY:
        return lambda net, x0, labels: consistency_loss(net, target, teacher, x0, alphas, generator, config, labels,
                                                        null_label, shard)
    return lambda net, x0, labels: diffusion_loss(net, x0, alphas, generator, config.prediction_type, labels,
                                                  config.label_dropout, null_label, shard, config.snr_gamma)
