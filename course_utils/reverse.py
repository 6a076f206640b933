"""The reverse step of DDPM: the mean and variance of ``p(x_{t-1} | x_t)``.

A network that predicts the noise in ``x_t`` gives the mean of the step back (Eq. (11) of Ho et al.
2020); the variance is fixed by the schedule (Eq. (7)). The conversions between what a network can
predict (``eps``, ``x0``, ``v``) live in ``course_utils.parameterization``. Every function here takes
floats, lists or tensors and returns tensors; ``alpha_bar_t`` and ``beta_t`` are floats or ``(B,)``
tensors for a batch ``(B, ...)``.
"""

from __future__ import annotations

import torch

from ._deprecation import moved_names
from ._validation import as_tensor, paired_tensors, unit_coefficient


def ddpm_mean(x_t, eps_pred, beta_t, alpha_bar_t) -> torch.Tensor:
    """Mean of the reverse step ``p(x_{t-1} | x_t)`` from a noise prediction.

    ``mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_pred) / sqrt(1 - beta_t)``
    (Eq. (11) of Ho et al. 2020, with ``alpha_t = 1 - beta_t``).
    """
    x_t, eps_pred = paired_tensors(x_t, eps_pred, "x_t", "eps_pred")
    beta = unit_coefficient(beta_t, "beta_t", x_t, allow_one=False)
    alpha_bar = unit_coefficient(alpha_bar_t, "alpha_bar_t", x_t, allow_one=False)
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


__getattr__ = moved_names(__name__)  # the eps / x0 / v conversions, now in course_utils.parameterization
