"""How to train: one frozen-in-spirit record of every knob of ``training.loop.train``, checked on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validation import check_choice, check_positive_int
from ..families import DIFFUSION, FAMILIES
from ..parameterization import PREDICTION_TYPES

PRECISIONS = ("auto", "fp32", "bf16")
OBJECTIVES = FAMILIES  # what a run trains: a model of this family (course_utils.families)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """How to train. ``steps`` counts optimiser updates in total (a resumed run continues to it)."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    prediction_type: str = "epsilon"  # diffusion's target; flow matching always predicts the velocity
    objective: str = DIFFUSION  # the model family: "diffusion", "flow_matching" (course_utils.flow_matching; no
    # noise schedule) or "consistency": distil a teacher (course_utils.distillation); ema_decay is then the target's mu
    original_inference_steps: int = 50  # consistency: the teacher's DDIM grid N (steps of T // N)
    label_dropout: float = 0.0  # probability of the null label (classifier-free guidance training)
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = False  # torch.compile the model (CUDA graphs on CUDA); falls back to eager on failure
    cuda_graph: bool = False  # CUDA only: record the whole step (draws, forward, backward, clipping, AdamW, EMA)
    # as one CUDA graph after two eager steps and replay it: no compiling; eager if recording fails
    log_every: int = 50
    checkpoint_every: int = 0  # 0: only at the end (when a checkpoint path is given)
    seed: int = 0

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("log_every", self.log_every)
        check_positive_int("original_inference_steps", self.original_inference_steps)
        check_choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("precision", self.precision, PRECISIONS)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}.")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must lie in [0, 1), got {self.label_dropout}.")
        if self.compile and self.cuda_graph:
            raise ValueError("compile=True and cuda_graph=True are two ways to remove launch overhead; choose one "
                             "(compile: Inductor's fused kernels, a cold start of about a minute; cuda_graph: "
                             "the eager kernels, recorded in a second).")
        if self.warmup_steps < 0 or self.checkpoint_every < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, checkpoint_every and grad_clip must be >= 0.")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-indexed): a linear warm-up, then constant."""
        return self.lr * min(1.0, (step + 1) / max(self.warmup_steps, 1))


def diverged(step: int, config: TrainConfig):
    """Raise ``TrainingDiverged`` with the likely causes and what to try."""
    raise TrainingDiverged(
        f"The loss became NaN/Inf at step {step}. Likely causes: a learning rate too high for this model "
        f"(lr={config.lr:g}: try {config.lr / 10:g}), no gradient clipping (grad_clip={config.grad_clip}), "
        f"or reduced precision overflowing (precision={config.precision!r}: try 'fp32'). Data must be "
        "finite and in [-1, 1]. The last checkpoint, if any, is from before this step."
    )
