"""Wrappers that make a trained network into the ``denoiser(x_t, t)`` a sampling loop steps on.

``samplers.loop.sample_loop`` calls ``denoiser(x_t, t)`` and nothing else. A conditional network
also needs its condition, guidance needs two passes, and images in [-1, 1] want the ``x0`` that
each prediction implies kept in range. Each wrapper adds one of these and is again a
``denoiser(x_t, t)`` (``DiffusionModel.sample`` stacks them):

- ``ClassifierFreeGuidance`` (``course_utils.guidance``): the conditional and unconditional passes, extrapolated;
- ``WithCondition``: the same condition (class labels, text states) at every call, on the network's device;
- ``ClampX0``: the ``x0`` the prediction implies clamped, the rest of the prediction re-derived from it.
"""

from __future__ import annotations

import torch

from .families import FLOW_PREDICTION
from .flow_matching import NUM_TRAIN_TIMESTEPS
from .parameterization import clamp_x0_prediction, flow_clamp_x0
from .samplers.karras import alpha_bar_at
from .schedules import NoiseSchedule


class WithCondition:
    """``denoiser(x_t, t) = net(x_t, t, **condition).float()``, ``t`` moved to ``device``.

    Args:
        net: the network, or a guidance wrapper around it.
        condition: keyword tensors, each ``(B, ...)`` for a batch ``x_t`` of ``B`` (``class_labels``,
            ``encoder_hidden_states``, ``encoder_attention_mask``), moved to ``device`` once.
    """

    def __init__(self, net, device: torch.device, **condition: torch.Tensor):
        self.net, self.device = net, device
        self.condition = {k: v.to(device) for k, v in condition.items()}

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t.to(self.device), **self.condition).float()


class ClampX0:
    """The prediction of ``denoiser`` with the ``x0`` it implies clamped to [-1, 1] (``parameterization``).

    Args:
        denoiser: ``denoiser(x_t, t)``, predicting ``prediction_type`` (``"flow"``: a velocity, with
            ``t = sigma * 1000``; else under ``schedule``, at a timestep ``t``: an integer, or a fractional
            one of the Euler and Heun samplers, whose ``alpha_bar`` is ``samplers.karras.alpha_bar_at``'s,
            the one their Karras sigmas put there).
    """

    def __init__(self, denoiser, schedule: NoiseSchedule | None, prediction_type: str):
        self.denoiser, self.schedule, self.prediction_type = denoiser, schedule, prediction_type

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.denoiser(x, t)
        if self.prediction_type == FLOW_PREDICTION:
            return flow_clamp_x0(out, x, float(t) / NUM_TRAIN_TIMESTEPS)
        return clamp_x0_prediction(out, x, alpha_bar_at(self.schedule, t), self.prediction_type)
