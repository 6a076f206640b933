"""Exact denoisers for toy data: the reverse process at work before any network is trained.

If the data are a mixture of isotropic Gaussians, ``x0 ~ sum_k w_k N(mu_k, s^2 I)``, then the
noisy ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` (``a = alpha_bar_t``) is again a mixture,
``x_t ~ sum_k w_k N(sqrt(a) mu_k, (a s^2 + 1 - a) I)``, and the best possible (least-squares)
estimate of the clean point is known in closed form:

    E[x0 | x_t] = sum_k r_k(x_t) * (mu_k + sqrt(a) s^2 / (a s^2 + 1 - a) * (x_t - sqrt(a) mu_k))

with responsibilities ``r_k`` from Bayes' rule. The matching noise prediction is
``eps = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a)``. A network trained with the simple loss
is learning to approximate exactly this function. The noised density itself, and its gradient the
score ``grad_x log p_t(x_t) = sum_k r_k(x_t) * -(x_t - sqrt(a) mu_k) / (a s^2 + 1 - a)``, are exact too
(``log_prob``, ``score``; the score view is ``course_utils.score``).

With ``s = 0`` and one component per training point, this is the ideal denoiser for a finite
training set: sampling with it can only return training points (memorisation, notebook 10).
"""

from __future__ import annotations

import math

import torch

from ._validation import check_choice, check_timesteps
from .parameterization import PREDICTION_TYPES, from_x0_eps, to_x0_eps
from .schedules import NoiseSchedule


class GaussianMixtureOracle:
    """The exact ``eps``- (or ``x0``-, ``v``-) prediction for Gaussian-mixture data.

    Args:
        means: ``(K, D)`` component means.
        std: the shared component standard deviation ``s`` (0 for point masses).
        schedule: the ``NoiseSchedule`` that noised the data.
        weights: ``(K,)`` mixture weights (uniform if None).
        prediction_type: what ``__call__`` returns: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Call it like a model: ``oracle(x_t, t)`` with ``x_t: (B, D)`` and ``t`` an int or ``(B,)``.
    ``log_prob(x_t, t)`` and ``score(x_t, t)`` give the noised data's exact log density and its gradient.
    """

    def __init__(self, means, std: float, schedule: NoiseSchedule, weights=None, prediction_type: str = "epsilon"):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}.")
        if not std >= 0:
            raise ValueError(f"std must be >= 0, got {std}.")
        k = len(self.means)
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or (w < 0).any() or not torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64)):
            raise ValueError(f"weights must be {k} non-negative numbers summing to 1.")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError("schedule must be a NoiseSchedule (from get_schedule).")
        self.log_weights = torch.log(w)
        self.std = float(std)
        self.schedule = schedule
        self.prediction_type = check_choice("prediction_type", prediction_type, PREDICTION_TYPES)

    @classmethod
    def from_data(cls, points, schedule: NoiseSchedule, bandwidth: float = 0.0, **kwargs):
        """One component per data point: the ideal denoiser for that finite set (a KDE if bandwidth > 0)."""
        return cls(points, bandwidth, schedule, **kwargs)

    def _noised_components(self, x_t: torch.Tensor, t):
        """The noised mixture at ``x_t``: ``(x, a, var, diff, logits)`` in float64, with ``a = alpha_bar_t``
        ``(B, 1, 1)``, the shared component variance ``var = a s^2 + 1 - a`` ``(B, 1, 1)``, ``diff = x_t -
        sqrt(a) mu_k`` ``(B, K, D)`` and ``logits = log w_k - |diff|^2 / (2 var)`` ``(B, K)``, whose softmax over
        ``k`` is the responsibilities (Bayes' rule; the normalising constants are the same for every ``k``)."""
        if x_t.ndim != 2 or x_t.shape[1] != self.means.shape[1]:
            raise ValueError(f"x_t must have shape (B, {self.means.shape[1]}), got {tuple(x_t.shape)}.")
        t = check_timesteps(t, self.schedule.num_timesteps).expand(len(x_t))  # (B,)
        x = x_t.to(torch.float64)
        a = self.schedule.alphas_cumprod[t.cpu()].to(x.device).reshape(-1, 1, 1)  # (B, 1, 1)
        mu = self.means.to(x.device)[None]  # (1, K, D)
        var = a * self.std**2 + (1 - a)  # (B, 1, 1) variance of every noisy component
        diff = x[:, None, :] - a.sqrt() * mu  # (B, K, D)
        logits = self.log_weights.to(x.device) - 0.5 * (diff**2).sum(-1) / var[..., 0]  # (B, K)
        return x, a, var, diff, logits

    def log_prob(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``log p_t(x_t)``, the exact log density of the noised data: ``(B,)`` float64.

        ``p_t(x) = sum_k w_k N(x; sqrt(a) mu_k, (a s^2 + 1 - a) I)``, summed in log space (``logsumexp``).
        """
        x, _, var, _, logits = self._noised_components(x_t, t)
        dim = x.shape[1]
        return torch.logsumexp(logits, dim=1) - 0.5 * dim * torch.log(2 * math.pi * var[:, 0, 0])

    def score(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``grad_x log p_t(x_t)``, the exact score of the noised data: ``(B, D)``, in ``x_t``'s dtype.

        Each component's score is ``-(x - sqrt(a) mu_k) / var``; the mixture's is their average weighted by
        the responsibilities ``r_k(x_t)``. Tweedie's formula turns it into ``posterior_mean``
        (``course_utils.score.tweedie_x0``).
        """
        _, _, var, diff, logits = self._noised_components(x_t, t)
        r = torch.softmax(logits, dim=1)[..., None]  # (B, K, 1) responsibilities
        return (r * (-diff / var)).sum(1).to(x_t.dtype)

    def posterior_mean(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``E[x0 | x_t]``: ``(B, D)``."""
        _, a, var, diff, logits = self._noised_components(x_t, t)
        r = torch.softmax(logits, dim=1)[..., None]  # (B, K, 1) responsibilities
        gain = a.sqrt() * self.std**2 / var  # (B, 1, 1) how much of x_t's deviation to trust
        x0_k = self.means.to(diff.device)[None] + gain * diff  # (B, K, D) per-component posterior means
        return (r * x0_k).sum(1).to(x_t.dtype)

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        x0 = self.posterior_mean(x_t, t)
        if self.prediction_type == "sample":
            return x0
        t = check_timesteps(t, self.schedule.num_timesteps).expand(len(x_t))
        a = self.schedule.gather("alphas_cumprod", t, like=x_t)[:, None]  # (B, 1)
        alpha, sigma = a.sqrt(), (1 - a).sqrt()
        eps = to_x0_eps(x0, x_t, alpha, sigma, "sample")[1]
        return from_x0_eps(x0, eps, alpha, sigma, self.prediction_type)
