"""The three kinds of model the course trains: one name for each, used by training (the objective),
recipes, checkpoints, the sampler registry and ``DiffusionModel``.

- ``"diffusion"``: a noise schedule; the network predicts ``eps``, ``x0`` or ``v`` (its
  ``prediction_type``, ``course_utils.parameterization``); DDPM, DDIM, DPM-Solver++ and Euler and
  Heun on its sigmas (EDM's, optionally Karras-spaced) sample it.
- ``"flow_matching"``: no schedule; the straight path of ``course_utils.flow_matching``; the network
  predicts the velocity (a model's ``prediction_type`` is ``"flow"``); Euler and Heun on the flow's
  own time sample it.
- ``"consistency"``: a student distilled from a diffusion teacher (``course_utils.distillation``): it
  predicts the noise under the teacher's schedule and samples in 1-4 steps.
"""

from __future__ import annotations

from ._validation import check_choice

DIFFUSION, FLOW_MATCHING, CONSISTENCY = "diffusion", "flow_matching", "consistency"
FAMILIES = (DIFFUSION, FLOW_MATCHING, CONSISTENCY)
FLOW_PREDICTION = "flow"  # the prediction_type a flow-matching model records (its velocity)


def check_family(family: str) -> str:
    return check_choice("model family", family, FAMILIES)


def family_of(prediction_type: str, method: str | None = None) -> str:
    """The family of a trained model from what its checkpoint records: ``prediction_type`` (``"flow"``
    for flow matching) and the manifest's ``method`` (``"consistency"`` for a distilled student)."""
    if prediction_type == FLOW_PREDICTION:
        return FLOW_MATCHING
    return CONSISTENCY if method == CONSISTENCY else DIFFUSION
