"""How to train: one frozen-in-spirit record of every knob of ``training.loop.train``, checked on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validation import as_float, as_int, check_bool, check_choice, check_positive_int
from ..families import CONSISTENCY, DIFFUSION, FAMILIES, FLOW_MATCHING
from ..flow_matching import TIME_SAMPLINGS
from ..parameterization import PREDICTION_TYPES

PRECISIONS = ("auto", "fp32", "bf16")
LR_DECAYS = ("constant", "cosine")
ORIGINAL_INFERENCE_STEPS = 50
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
    lr_decay: str = "constant"  # after the warm-up: "constant", or "cosine" (half a cosine from lr down to
    # min_lr_ratio * lr at the last step; Loshchilov & Hutter 2017, nanoGPT's schedule)
    min_lr_ratio: float = 0.1  # "cosine": the final learning rate as a fraction of lr
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = False  # the EMA's decay ramps up as diffusers' EMAModel does by default: 0 after the first
    # step, then min(ema_decay, (1 + s) / (10 + s)) after step s, so a short run's average does not keep a share of
    # the random initial weights (0.999 ** 2000 = 13.5% of them after 2,000 steps without it)
    prediction_type: str = "epsilon"  # diffusion's target; flow matching always predicts the velocity
    objective: str = DIFFUSION  # the model family: "diffusion", "flow_matching" (course_utils.flow_matching; no
    # noise schedule) or "consistency": distil a teacher (course_utils.distillation); ema_decay is then the target's mu
    original_inference_steps: int = ORIGINAL_INFERENCE_STEPS  # consistency: the teacher's DDIM grid N (steps of T // N)
    label_dropout: float = 0.0  # probability of the null label (classifier-free guidance training)
    snr_gamma: float | None = None  # diffusion: min-SNR-gamma loss weights (Hang et al. 2023; 5.0 in the paper)
    time_sampling: str = "uniform"  # flow matching: how sigma is drawn, "uniform" or SD3's "logit_normal"
    logit_mean: float = 0.0  # flow matching, "logit_normal": sigma = sigmoid(N(logit_mean, logit_std^2))
    logit_std: float = 1.0
    time_shift: float = 1.0  # flow matching: SD3's shift of the training sigmas (and the sampler's default)
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = False  # torch.compile the model (CUDA graphs on CUDA); falls back to eager on failure
    cuda_graph: bool = False  # CUDA only: record the whole step (draws, forward, backward, clipping, AdamW, EMA)
    # as one CUDA graph after two eager steps and replay it: no compiling; eager if recording fails
    log_every: int = 50
    checkpoint_every: int = 0  # 0: only at the end (when a checkpoint path is given)
    seed: int = 0

    def __post_init__(self):
        """Every field checked and normalised (numpy numbers become Python ones; NaN and inf refused)."""
        for name in ("steps", "batch_size", "log_every", "original_inference_steps"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            setattr(self, name, as_int(name, getattr(self, name), minimum=0))
        self.lr = as_float("lr", self.lr, low=0, low_open=True)
        self.weight_decay = as_float("weight_decay", self.weight_decay, low=0)
        self.grad_clip = as_float("grad_clip", self.grad_clip, low=0, note="0: no clipping")
        self.ema_decay = as_float("ema_decay", self.ema_decay, 0, 1, high_open=True)
        self.label_dropout = as_float("label_dropout", self.label_dropout, 0, 1, high_open=True, note="a probability")
        if self.snr_gamma is not None:
            self.snr_gamma = as_float("snr_gamma", self.snr_gamma, low=0, low_open=True, note="None: no weighting")
        self.logit_mean = as_float("logit_mean", self.logit_mean)
        self.logit_std = as_float("logit_std", self.logit_std, low=0, low_open=True)
        self.time_shift = as_float("time_shift", self.time_shift, low=0, low_open=True, note="1.0: no shift")
        check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
        check_choice("lr_decay", self.lr_decay, LR_DECAYS)
        self.min_lr_ratio = as_float("min_lr_ratio", self.min_lr_ratio, 0, 1, note="the final lr as a fraction of lr")
        self.compile, self.cuda_graph = check_bool("compile", self.compile), check_bool("cuda_graph", self.cuda_graph)
        self.ema_warmup = check_bool("ema_warmup", self.ema_warmup)
        check_choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("precision", self.precision, PRECISIONS)
        if self.objective != DIFFUSION and self.prediction_type != "epsilon":
            raise ValueError(f"prediction_type={self.prediction_type!r} is used only by objective='diffusion'; "
                             f"objective={self.objective!r} fixes its own target (flow matching: the velocity; "
                             "consistency: the noise). Leave prediction_type at 'epsilon'.")
        if self.objective != CONSISTENCY and self.original_inference_steps != ORIGINAL_INFERENCE_STEPS:
            raise ValueError(f"original_inference_steps is used only by objective='consistency' (the teacher's "
                             f"grid); got {self.original_inference_steps} with objective={self.objective!r}.")
        if self.objective != DIFFUSION and self.snr_gamma is not None:
            raise ValueError(f"snr_gamma weights the diffusion loss by timestep; objective={self.objective!r} does "
                             "not use it. Leave snr_gamma at None.")
        flow_options = (self.time_sampling != "uniform", self.logit_mean != 0.0, self.logit_std != 1.0,
                        self.time_shift != 1.0)
        if self.objective != FLOW_MATCHING and any(flow_options):
            raise ValueError(f"time_sampling, logit_mean, logit_std and time_shift choose flow matching's sigmas; "
                             f"objective={self.objective!r} does not use them. Leave them at their defaults.")
        if self.compile and self.cuda_graph:
            raise ValueError("compile=True and cuda_graph=True are two ways to remove launch overhead; choose one "
                             "(compile: Inductor's fused kernels, a cold start of about a minute; cuda_graph: "
                             "the eager kernels, recorded in a second).")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-indexed): a linear warm-up over ``warmup_steps``, then
        constant, or (``lr_decay="cosine"``) half a cosine from ``lr`` down to ``min_lr_ratio * lr`` at
        the last step (``steps - 1``)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_decay == "constant":
            return self.lr
        progress = min(1.0, (step - self.warmup_steps) / max(self.steps - 1 - self.warmup_steps, 1))
        floor = self.min_lr_ratio * self.lr
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def diverged(step: int, config: TrainConfig):
    """Raise ``TrainingDiverged`` with the likely causes and what to try."""
    raise TrainingDiverged(
        f"The loss became NaN/Inf at step {step}. Likely causes: a learning rate too high for this model "
        f"(lr={config.lr:g}: try {config.lr / 10:g}), no gradient clipping (grad_clip={config.grad_clip}), "
        f"or reduced precision overflowing (precision={config.precision!r}: try 'fp32'). Data must be "
        "finite and in [-1, 1]. The last checkpoint, if any, is from before this step."
    )
