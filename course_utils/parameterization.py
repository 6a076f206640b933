"""What a denoiser predicts, and how one prediction becomes another: the one place these formulas live.

**Diffusion** (variance preserving). With ``alpha = sqrt(alpha_bar_t)`` and ``sigma = sqrt(1 - alpha_bar_t)``
a noisy sample is ``x_t = alpha * x0 + sigma * eps`` (Eq. (4) of Ho et al. 2020), and a network
predicts one of (diffusers' ``prediction_type`` names):

- ``"epsilon"``: the noise ``eps`` (Ho et al. 2020),
- ``"sample"``: the clean sample ``x0``,
- ``"v_prediction"``: ``v = alpha * eps - sigma * x0`` (Salimans & Ho 2022, Sec. 4).

Given ``x_t``, any one of them determines the other two. **Flow matching** (``course_utils.flow_matching``)
uses the straight path ``x_s = (1 - s) * x0 + s * eps`` instead, and its network predicts the
velocity ``v = eps - x0``.

Two layers. The unchecked formulas (``noised``, ``to_x0_eps``, ``from_x0_eps``, ``clamped_x0_eps``,
and the ``flow_`` ones) take the coefficients ``alpha`` and ``sigma`` (floats, or tensors that
broadcast against the sample), computed by the caller in the precision it needs; samplers,
training, distillation and the pipeline call them inside their loops. The checked functions
(``x0_from_epsilon``, ..., ``clamp_x0_prediction``) take ``alpha_bar_t`` itself (a float, a list or a
``(B,)`` tensor), validate it, and are what a learner calls.
"""

from __future__ import annotations

import torch

from ._validation import as_tensor, check_choice, paired_tensors, unit_coefficient

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
# Below this alpha_bar, x0 read from a noise prediction, (x_t - sigma eps) / alpha, multiplies the
# prediction's error by more than 1 / sqrt(0.005) = 14 (the cosine schedule's alpha_bar_999 is 2.4e-9:
# 20,000 times). Stable Diffusion's schedule ends at 0.0047.
WELL_CONDITIONED_ALPHA_BAR = 0.005


# --- The formulas, on the coefficients alpha = sqrt(alpha_bar) and sigma = sqrt(1 - alpha_bar) -----

def noised(x0, eps, alpha, sigma):
    """``x_t = alpha * x0 + sigma * eps``: the forward process in closed form."""
    return alpha * x0 + sigma * eps


def to_x0(model_output, x_t, alpha, sigma, prediction_type: str):
    """The ``x0`` that a network output of ``prediction_type`` implies at ``x_t``."""
    if prediction_type == "epsilon":
        return (x_t - sigma * model_output) / alpha
    if prediction_type == "sample":
        return model_output
    return alpha * x_t - sigma * model_output  # v = alpha eps - sigma x0, x_t = alpha x0 + sigma eps


def to_x0_eps(model_output, x_t, alpha, sigma, prediction_type: str):
    """``(x0, eps)`` from a network output of ``prediction_type``: the first stage of every sampler's step."""
    if prediction_type == "epsilon":
        return (x_t - sigma * model_output) / alpha, model_output
    if prediction_type == "sample":
        return model_output, (x_t - alpha * model_output) / sigma
    return alpha * x_t - sigma * model_output, alpha * model_output + sigma * x_t


def from_x0_eps(x0, eps, alpha, sigma, prediction_type: str):
    """The network output of ``prediction_type`` for a given ``(x0, eps)``: also the training target."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "sample":
        return x0
    return alpha * eps - sigma * x0


def clamped_x0_eps(model_output, x_t, alpha, sigma, prediction_type: str, clip_range: float = 1.0):
    """``(x0, eps)`` with ``x0`` clamped to ``[-clip_range, clip_range]`` and ``eps`` re-derived from it,
    ``eps = (x_t - alpha * x0) / sigma``, so that the two still describe the same ``x_t``."""
    x0 = to_x0(model_output, x_t, alpha, sigma, prediction_type).clamp(-clip_range, clip_range)
    return x0, (x_t - alpha * x0) / sigma


def clamp_x0(model_output, x_t, alpha, sigma, prediction_type: str, clip_range: float = 1.0):
    """The same kind of prediction, with the ``x0`` it implies clamped (``clamped_x0_eps``)."""
    x0, eps = clamped_x0_eps(model_output, x_t, alpha, sigma, prediction_type, clip_range)
    return from_x0_eps(x0, eps, alpha, sigma, prediction_type)


# --- Flow matching: x_s = (1 - s) x0 + s eps, v = eps - x0 ----------------------------------------

def flow_interpolate(x0, eps, sigma):
    """``x_sigma = (1 - sigma) * x0 + sigma * eps``."""
    return (1 - sigma) * x0 + sigma * eps


def flow_velocity(x0, eps):
    """``v = eps - x0``, the velocity of the straight path (the same at every sigma)."""
    return eps - x0


def flow_to_x0(velocity, x, sigma):
    """The clean end of the straight line through ``x`` along ``velocity``: ``x0 = x - sigma * v``."""
    return x - sigma * velocity


def flow_clamp_x0(velocity, x, sigma: float, clip_range: float = 1.0):
    """The velocity that points from ``x`` at the clamped ``x0`` (unchanged at ``sigma = 0``)."""
    if sigma == 0:
        return velocity
    x0 = flow_to_x0(velocity, x, sigma).clamp(-clip_range, clip_range)
    return (x - x0) / sigma


# --- Checked conversions: alpha_bar_t in, validated -------------------------------------------------

def _alpha_sigma(alpha_bar_t, like: torch.Tensor, allow_one: bool, allow_zero: bool = False):
    a = unit_coefficient(alpha_bar_t, "alpha_bar_t", like, allow_one=allow_one, allow_zero=allow_zero)
    return torch.sqrt(a), torch.sqrt(1 - a)


def x0_from_epsilon(x_t, eps, alpha_bar_t) -> torch.Tensor:
    """``x0 = (x_t - sqrt(1 - a) * eps) / sqrt(a)``, ``a = alpha_bar_t`` (a float or ``(B,)``)."""
    x_t, eps = paired_tensors(x_t, eps, "x_t", "eps")
    return to_x0(eps, x_t, *_alpha_sigma(alpha_bar_t, x_t, allow_one=True), "epsilon")


def epsilon_from_x0(x_t, x0, alpha_bar_t) -> torch.Tensor:
    """``eps = (x_t - sqrt(a) * x0) / sqrt(1 - a)``; undefined at ``a = 1`` (no noise at all)."""
    x_t, x0 = paired_tensors(x_t, x0, "x_t", "x0")
    return to_x0_eps(x0, x_t, *_alpha_sigma(alpha_bar_t, x_t, allow_one=False), "sample")[1]


def v_from_epsilon_x0(eps, x0, alpha_bar_t) -> torch.Tensor:
    """``v = sqrt(a) * eps - sqrt(1 - a) * x0`` (the training target of v-prediction)."""
    eps, x0 = paired_tensors(eps, x0, "eps", "x0")
    return from_x0_eps(x0, eps, *_alpha_sigma(alpha_bar_t, eps, allow_one=True), "v_prediction")


def x0_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    """``x0 = sqrt(a) * x_t - sqrt(1 - a) * v``."""
    x_t, v = paired_tensors(x_t, v, "x_t", "v")
    return to_x0(v, x_t, *_alpha_sigma(alpha_bar_t, x_t, allow_one=True), "v_prediction")


def epsilon_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    """``eps = sqrt(a) * v + sqrt(1 - a) * x_t``."""
    x_t, v = paired_tensors(x_t, v, "x_t", "v")
    return to_x0_eps(v, x_t, *_alpha_sigma(alpha_bar_t, x_t, allow_one=True), "v_prediction")[1]


def predict_x0_and_epsilon(model_output, x_t, alpha_bar_t, prediction_type: str = "epsilon"):
    """Turn a network output of any ``prediction_type`` into ``(x0, eps)``."""
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
    agree, since its posterior mean needs only ``x0`` and ``x_t``. ``alpha_bar_t = 0`` (the last step
    of a zero-terminal-SNR schedule) is accepted for ``"v_prediction"`` and ``"sample"``, which still
    name an ``x0`` there; a noise prediction does not.
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x_t, model_output = paired_tensors(x_t, model_output, "x_t", "model_output")
    alpha, sigma = _alpha_sigma(alpha_bar_t, x_t, allow_one=False, allow_zero=prediction_type != "epsilon")
    return clamp_x0(model_output, x_t, alpha, sigma, prediction_type, clip_range)
