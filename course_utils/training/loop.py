"""One training loop for every model of the diffusion families, in notebooks and on the command line.

``train`` reads top to bottom: check the inputs, build the run's state (``state``) or resume it from a
checkpoint, pick the loss of the model family (``objectives``) and the way each step runs
(``acceleration``: eager, compiled or a CUDA graph), then step, log and checkpoint. Data sets here
are small, so they live on the device as one tensor: no DataLoader, fixed batch shapes. Started by
``torchrun``, the same loop trains data-parallel with DDP (``training.distributed``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .._validation import check_bool
from ..checkpoints import CheckpointError, check_writable
from ..config import get_device
from ..schedules import NoiseSchedule
from . import distributed
from .acceleration import STEP_MARK, TIMED_AFTER, StepRunner, autocast, sync
from .config import TrainConfig, diverged
from .objectives import check_objective, make_objective
from .state import TrainingState, set_lr


@dataclass
class TrainResult:
    """What ``train`` returns. ``losses``: ``(step, mean loss since the previous entry)`` pairs."""

    model: nn.Module
    ema_model: nn.Module
    losses: list[tuple[int, float]] = field(default_factory=list)
    step: int = 0
    wall_time_s: float = 0.0  # the whole run's, resumed sessions included
    images_per_s: float = 0.0
    interrupted: bool = False
    warmup_s: float = 0.0  # this session's first TIMED_AFTER steps (compiling, CUDA-graph capture included)
    steady_images_per_s: float = 0.0  # after them; 0 when the session ran no more steps than that
    checkpoint_error: str | None = None  # why the last checkpoint could not be written (None: it was)


def check_data(images: torch.Tensor, labels: torch.Tensor | None, value_range: float | None, null_label) -> None:
    """Refuse data ``train`` cannot use, before anything is built."""
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, ...) tensor, got shape {tuple(images.shape)}.")
    if not torch.isfinite(images).all():
        raise ValueError("images must be finite.")
    if value_range is not None and images.abs().max() > value_range + 1e-6:
        raise ValueError(f"images must lie in [-{value_range:g}, {value_range:g}] (see course_utils.data); pass "
                         "value_range=None for unbounded data such as VAE latents.")
    if labels is None:
        return
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}.")
    if null_label and (labels.is_floating_point() or labels.min() < 0 or labels.max() > null_label):
        raise ValueError(f"labels must be integers in [0, {null_label - 1}] (or {null_label}, the null label), got "
                         f"{labels.min().item()} to {labels.max().item()}.")  # here, once: a recorded step reads no values


class TrainStep:
    """The work of one step around the loss: draw a batch, its loss and gradients, clip, AdamW, EMA.

    The mean loss accumulates on the device (``running``) and is read at log points only, so a GPU
    never waits for the host; on the CPU, where a read is free, every step's loss is checked.
    """

    def __init__(self, model: nn.Module, data: torch.Tensor, labels, loss_fn, state: TrainingState,
                 config: TrainConfig, device: torch.device):
        self.model, self.data, self.labels, self.loss_fn = model, data, labels, loss_fn
        self.state, self.config, self.device = state, config, device
        self.check_every_step = device.type != "cuda"
        self.running, self.n_running, self.lr = torch.zeros((), device=device), 0, None

    def draw(self) -> torch.Tensor:
        """The rows of this step's batch, drawn on the device."""
        return torch.randint(0, len(self.data), (self.config.batch_size,), device=self.device,
                             generator=self.state.generator)

    def forward_backward(self, fn, idx: torch.Tensor) -> torch.Tensor:
        """The loss of the batch ``data[idx]`` (this process's shard of it), and its gradients."""
        with autocast(self.device, self.config.precision):
            loss = self.loss_fn(fn, self.data[idx], None if self.labels is None else self.labels[idx])
        self.state.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def update(self, loss: torch.Tensor) -> None:
        """After ``forward_backward``: clip, step AdamW, update the EMA, add the loss to the running sum."""
        global_loss = distributed.mean(loss.detach())  # the whole batch's loss (this shard's in one process)
        if self.check_every_step and not math.isfinite(global_loss.item()):
            diverged(self.state.step, self.config)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.state.opt.step()
        self.state.ema.update(self.model)
        self.running.add_(global_loss)

    def set_lr(self) -> None:
        """The coming step's learning rate, set only when it changes, and its EMA weight (``ema_warmup``)."""
        self.state.ema.set_step(self.state.step)
        lr = self.config.lr_at(self.state.step)
        if lr != self.lr:
            set_lr(self.state.opt, lr)
            self.lr = lr

    def log(self) -> float | None:
        """After a step: at a log point, record and return the mean loss since the last one."""
        self.n_running += 1
        step = self.state.step
        if step % self.config.log_every and step != self.config.steps:
            return None
        mean = (self.running / self.n_running).item()
        if not math.isfinite(mean):
            diverged(step, self.config)
        self.state.losses.append((step, mean))
        self.running.zero_()
        self.n_running = 0
        return mean


def _save(state: TrainingState, path, model: nn.Module, config: TrainConfig, clock: "Clock") -> str | None:
    """Write the training state; a failure (a full disk, a folder made read-only) is a warning, not the
    end of the run: the weights, the EMA and the losses stay in memory and in ``train``'s result."""
    try:
        state.save(path, model, config, clock.elapsed())
        return None
    except (OSError, CheckpointError) as err:
        warnings.warn(f"could not write the checkpoint {path} at step {state.step} ({type(err).__name__}: {err}); "
                      "training goes on and train() returns the model, its EMA and the losses, so nothing is lost: "
                      "free the disk, then save them yourself (checkpoints.save_checkpoint).", stacklevel=3)
        return f"{type(err).__name__}: {err}"


class Clock:
    """Wall time of the session, and of its steady part after the first ``TIMED_AFTER`` steps."""

    def __init__(self, device: torch.device, first_step: int):
        self.device, self.first_step, self.start = device, first_step, time.perf_counter()
        self.steady_from, self.steady_start, self.end = None, 0.0, None

    def tick(self, step: int) -> None:
        if step == self.first_step + TIMED_AFTER:
            sync(self.device)
            self.steady_from, self.steady_start = step, time.perf_counter()

    def elapsed(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    def result(self, model, state: TrainingState, config: TrainConfig, interrupted: bool,
               checkpoint_error: str | None = None) -> TrainResult:
        """``TrainResult`` at the end of the session (``end`` set)."""
        total = state.earlier_wall_s + self.end - self.start  # over every session of the run, for the model card
        steady = (0.0 if self.steady_from in (None, state.step) else
                  (state.step - self.steady_from) * config.batch_size / (self.end - self.steady_start))
        warmup = (self.steady_start if self.steady_from is not None else self.end) - self.start
        return TrainResult(model, state.ema.model, state.losses, state.step, total,
                           state.step * config.batch_size / total if total > 0 else 0.0, interrupted, warmup, steady,
                           checkpoint_error)


def train(model: nn.Module, images: torch.Tensor, schedule: NoiseSchedule | None, config: TrainConfig,
          labels: torch.Tensor | None = None, device: str | torch.device | None = None,
          checkpoint_path: str | Path | None = None, resume: bool = True, progress: bool = True,
          value_range: float | None = 1.0, teacher: nn.Module | None = None) -> TrainResult:
    """Train ``model`` as ``config.objective`` says: to denoise ``images`` under ``schedule``
    (``"diffusion"``), to predict the flow-matching velocity (``"flow_matching"``; ``schedule`` None), or
    to jump along ``teacher``'s ODE (``"consistency"``).

    Args:
        model: called as ``model(x_t, t)`` (plus ``class_labels=`` when ``labels`` is given); for flow
            matching ``t`` is ``sigma * 1000``, a float in [0, 1000].
        images: ``(N, C, H, W)`` training data in [-1, 1] (``value_range``; None for data that is
            not bounded, such as scaled VAE latents).
        labels: ``(N,)`` class labels for a class-conditional model.
        checkpoint_path: where to save (every ``checkpoint_every`` steps and at the end); with
            ``resume=True`` an existing file there is loaded first and training continues from it.
        progress: show a tqdm bar with the running loss.
        teacher: for ``objective="consistency"``, the frozen diffusion model (epsilon prediction, trained
            under ``schedule``) whose ODE ``model`` learns to jump along; start ``model`` from its weights.

    Interrupting (Ctrl-C / the stop button) ends training cleanly: the result holds the model and
    EMA as they are, and the checkpoint (if any) is saved first.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError("config must be a TrainConfig.")
    null_label = getattr(getattr(model, "config", None), "num_classes", None)
    check_data(images, labels, value_range, null_label)
    if config.label_dropout > 0 and null_label is None:
        raise ValueError("label_dropout needs a class-conditional model (config.num_classes set).")
    check_objective(config, schedule, teacher)
    if checkpoint_path is not None:
        check_writable(checkpoint_path)  # a path that cannot be written fails now, not after the training
    device = get_device(device)
    model.to(device).train()
    teacher = teacher.to(device).eval().requires_grad_(False) if teacher is not None else None
    state = TrainingState.start(model, config, device, schedule)
    if checkpoint_path is not None and check_bool("resume", resume) and Path(checkpoint_path).exists():
        state.resume(checkpoint_path, model, device, config)
        if distributed.is_main():
            print(f"resuming {checkpoint_path} from step {state.step} of {config.steps}", flush=True)
    shard = distributed.shard(config.batch_size)  # this process's rows of each batch (all of them in one process)
    net = distributed.wrap(model, device)  # DDP under torchrun (after resuming: it broadcasts rank 0's weights)
    if state.step == 0 and net is not model:
        state.ema.model.load_state_dict(model.state_dict())  # a fresh EMA starts from the broadcast weights
    loss_fn = make_objective(config, schedule, state.generator, null_label, shard, teacher, state.ema.model)
    work = TrainStep(model, images.to(device, torch.float32), None if labels is None else labels.to(device), loss_fn,
                     state, config, device)
    runner = StepRunner(config, device, net, model, state.opt, state.generator, state.step)
    clock, interrupted = Clock(device, state.step), False
    save = checkpoint_path is not None and distributed.is_main()
    bar = tqdm(total=config.steps, initial=state.step, disable=not (progress and distributed.is_main()),
               desc="training", leave=False)
    try:
        with runner.stream():
            while state.step < config.steps:
                clock.tick(state.step)
                with torch.profiler.record_function(STEP_MARK):  # where benchmarks/training_throughput.py --profile cuts steps
                    work.set_lr()
                    runner.run(state.step, work)
                state.step += 1
                if (mean := work.log()) is not None:
                    bar.set_postfix(loss=f"{mean:.4f}")
                bar.update(1)
                if save and config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    _save(state, checkpoint_path, model, config, clock)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    runner.finish()
    clock.end = time.perf_counter()
    error = _save(state, checkpoint_path, model, config, clock) if save else None
    model.eval()
    return clock.result(model, state, config, interrupted, error)
