"""The reverse step and the three things a denoiser can predict.

A network sees ``x_t = sqrt(a) * x0 + sqrt(1 - a) * eps`` with ``a = alpha_bar_t`` and predicts one
of (diffusers' ``prediction_type`` names):

- ``"epsilon"``: the noise ``eps`` (Ho et al. 2020),
- ``"sample"``: the clean sample ``x0``,
- ``"v_prediction"``: ``v = sqrt(a) * eps - sqrt(1 - a) * x0`` (Salimans & Ho 2022, Sec. 4).

Given ``x_t`` and ``a``, any one of them determines the other two. Every function here takes
floats, lists or tensors and returns tensors; ``alpha_bar_t`` and ``beta_t`` are floats or
``(B,)`` tensors for a batch ``(B, ...)``.
"""

from __future__ import annotations

import torch

from ._validation import as_tensor, broadcast_to_sample, check_choice, check_same_shape

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _coef(value, name: str, like: torch.Tensor, allow_one: bool) -> torch.Tensor:
    """A schedule number in (0, 1) (or (0, 1]) shaped to multiply ``like``."""
    c = as_tensor(value, name, dtype=torch.float64)
    ok = (c > 0) & ((c <= 1) if allow_one else (c < 1))
    if not torch.isfinite(c).all() or not bool(ok.all()):
        raise ValueError(f"{name} must lie in {'(0, 1]' if allow_one else '(0, 1)'}; got {c.tolist()}.")
    return broadcast_to_sample(c, like, name)


def _pair(a, b, name_a: str, name_b: str) -> tuple[torch.Tensor, torch.Tensor]:
    a = as_tensor(a, name_a)
    b = as_tensor(b, name_b, dtype=a.dtype).to(a.device)
    check_same_shape(**{name_a: a, name_b: b})
    return a, b


def ddpm_mean(x_t, eps_pred, beta_t, alpha_bar_t) -> torch.Tensor:
    """Mean of the reverse step ``p(x_{t-1} | x_t)`` from a noise prediction.

    ``mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_pred) / sqrt(1 - beta_t)``
    (Eq. (11) of Ho et al. 2020, with ``alpha_t = 1 - beta_t``).
    """
    x_t, eps_pred = _pair(x_t, eps_pred, "x_t", "eps_pred")
    beta = _coef(beta_t, "beta_t", x_t, allow_one=False)
    alpha_bar = _coef(alpha_bar_t, "alpha_bar_t", x_t, allow_one=False)
    return (x_t - beta / torch.sqrt(1 - alpha_bar) * eps_pred) / torch.sqrt(1 - beta)


def posterior_variance(beta_t, alpha_bar_t, alpha_bar_prev) -> torch.Tensor:
    """``beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t`` (Eq. (7) of Ho et al. 2020).

    The variance of ``q(x_{t-1} | x_t, x0)``; diffusers' ``variance_type="fixed_small"``.
    """
    beta = as_tensor(beta_t, "beta_t", dtype=torch.float64)
    a = as_tensor(alpha_bar_t, "alpha_bar_t", dtype=torch.float64)
    a_prev = as_tensor(alpha_bar_prev, "alpha_bar_prev", dtype=torch.float64)
    if bool((a >= 1).any()) or bool((a <= 0).any()):
        raise ValueError(f"alpha_bar_t must lie in (0, 1); got {a.tolist()}.")
    return (1 - a_prev) / (1 - a) * beta


def x0_from_epsilon(x_t, eps, alpha_bar_t) -> torch.Tensor:
    """``x0 = (x_t - sqrt(1 - a) * eps) / sqrt(a)``."""
    x_t, eps = _pair(x_t, eps, "x_t", "eps")
    a = _coef(alpha_bar_t, "alpha_bar_t", x_t, allow_one=True)
    return (x_t - torch.sqrt(1 - a) * eps) / torch.sqrt(a)


def epsilon_from_x0(x_t, x0, alpha_bar_t) -> torch.Tensor:
    """``eps = (x_t - sqrt(a) * x0) / sqrt(1 - a)``; undefined at ``a = 1`` (no noise at all)."""
    x_t, x0 = _pair(x_t, x0, "x_t", "x0")
    a = _coef(alpha_bar_t, "alpha_bar_t", x_t, allow_one=False)
    return (x_t - torch.sqrt(a) * x0) / torch.sqrt(1 - a)


def v_from_epsilon_x0(eps, x0, alpha_bar_t) -> torch.Tensor:
    """``v = sqrt(a) * eps - sqrt(1 - a) * x0`` (the training target of v-prediction)."""
    eps, x0 = _pair(eps, x0, "eps", "x0")
    a = _coef(alpha_bar_t, "alpha_bar_t", eps, allow_one=True)
    return torch.sqrt(a) * eps - torch.sqrt(1 - a) * x0


def x0_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    """``x0 = sqrt(a) * x_t - sqrt(1 - a) * v``."""
    x_t, v = _pair(x_t, v, "x_t", "v")
    a = _coef(alpha_bar_t, "alpha_bar_t", x_t, allow_one=True)
    return torch.sqrt(a) * x_t - torch.sqrt(1 - a) * v


def epsilon_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    """``eps = sqrt(a) * v + sqrt(1 - a) * x_t``."""
    x_t, v = _pair(x_t, v, "x_t", "v")
    a = _coef(alpha_bar_t, "alpha_bar_t", x_t, allow_one=True)
    return torch.sqrt(a) * v + torch.sqrt(1 - a) * x_t


def predict_x0_and_epsilon(model_output, x_t, alpha_bar_t, prediction_type: str = "epsilon"):
    """Turn a network output of any ``prediction_type`` into ``(x0, eps)``.

    The first stage of every sampler's ``step``.
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    if prediction_type == "epsilon":
        return x0_from_epsilon(x_t, model_output, alpha_bar_t), as_tensor(model_output, "model_output")
    if prediction_type == "sample":
        x0 = as_tensor(model_output, "model_output")
        return x0, epsilon_from_x0(x_t, x0, alpha_bar_t)
    return x0_from_v(x_t, model_output, alpha_bar_t), epsilon_from_v(x_t, model_output, alpha_bar_t)


def convert_prediction(model_output, x_t, alpha_bar_t, from_type: str, to_type: str) -> torch.Tensor:
    """Convert a prediction between ``"epsilon"``, ``"sample"`` and ``"v_prediction"``."""
    check_choice("to_type", to_type, PREDICTION_TYPES)
    x0, eps = predict_x0_and_epsilon(model_output, x_t, alpha_bar_t, from_type)
    if to_type == "epsilon":
        return eps
    if to_type == "sample":
        return x0
    return v_from_epsilon_x0(eps, x0, alpha_bar_t)


def clamp_x0_prediction(model_output, x_t, alpha_bar_t, prediction_type: str = "epsilon",
                        clip_range: float = 1.0) -> torch.Tensor:
    """The same prediction with the ``x0`` it implies clamped to ``[-clip_range, clip_range]``.

    Returned in ``prediction_type``, so a sampler steps on a denoiser whose ``x0`` stays in range
    and whose ``eps`` is re-derived from that clamped ``x0`` (Eq. (4) solved for ``eps``): the two
    describe the same ``x_t``. diffusers' ``DDIMScheduler(clip_sample=True)`` instead clamps ``x0``
    and keeps the model's ``eps``; under classifier-free guidance that mix carries the clamped-off
    overshoot into the noise and the samples drift away from the condition. For DDPM the two
    agree, since its posterior mean needs only ``x0`` and ``x_t``.
    """
    x0, _ = predict_x0_and_epsilon(model_output, x_t, alpha_bar_t, prediction_type)
    return convert_prediction(x0.clamp(-clip_range, clip_range), x_t, alpha_bar_t, "sample", prediction_type)
