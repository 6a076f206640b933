"""One training loop for every model in the course, in notebooks and on the command line.

The loss is the simple one of Ho et al. 2020 (Algorithm 1): draw a clean batch ``x0``, a
timestep ``t ~ U{0, T-1}`` and noise ``eps``; form ``x_t`` with the closed form; regress the
network's output onto the target (``eps``, ``x0`` or ``v``) with a mean squared error. The same
loop trains flow-matching models (``objective="flow_matching"``: the velocity on the straight path)
and distils consistency students from a frozen teacher (``objective="consistency"``,
``course_utils.distillation``).

Around it: AdamW with a linear warm-up, gradient clipping, an exponential moving average (EMA)
of the weights, bf16 autocast on CUDA, optional ``torch.compile`` (CUDA graphs on CUDA; eager if
compiling fails) or one CUDA graph for the whole step (``cuda_graph=True``; eager if recording
fails), a clear stop when the loss turns NaN/Inf, periodic atomic checkpoints (safetensors) and
exact resume. Data sets here are small, so they live on the device as one
tensor: no DataLoader, fixed batch shapes. Started by ``torchrun``, the same loop trains
data-parallel with DDP (``course_utils.distributed``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from ._validation import check_choice, check_positive_int
from .checkpoints import load_checkpoint, save_checkpoint
from .distributed import ALL
from .parameterization import PREDICTION_TYPES, from_x0_eps, noised
from .schedules import NoiseSchedule

PRECISIONS = ("auto", "fp32", "bf16")
OBJECTIVES = ("diffusion", "flow_matching", "consistency")


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
    objective: str = "diffusion"  # or "flow_matching" (course_utils.flow_matching; no noise schedule),
    # or "consistency": distil a teacher (course_utils.distillation); ema_decay is then the target's mu
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


class EMA:
    """Exponential moving average of a model's weights: ``ema <- decay * ema + (1 - decay) * w``."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


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


def simple_loss(model, x0, t, noise, alphas_cumprod, prediction_type="epsilon", **model_kwargs) -> torch.Tensor:
    """The simple loss for given timesteps and noise: ``mean ||target - model(x_t, t)||^2``.

    Args:
        x0: ``(B, ...)`` clean data; t: ``(B,)`` timesteps; noise: like ``x0``;
        alphas_cumprod: ``(T,)`` on ``x0``'s device; prediction_type: the target.
    """
    a = alphas_cumprod[t].view(x0.shape[0], *([1] * (x0.ndim - 1)))  # (B, 1, 1, 1)
    alpha, sigma = a.sqrt(), (1 - a).sqrt()
    x_t = noised(x0, noise, alpha, sigma)  # the closed form, Eq. (4)
    target = from_x0_eps(x0, noise, alpha, sigma, prediction_type)
    return F.mse_loss(model(x_t, t, **model_kwargs).float(), target.float())


def diffusion_loss(model, x0, alphas_cumprod, generator, prediction_type="epsilon", labels=None,
                   label_dropout=0.0, null_label=None, shard: slice = ALL) -> torch.Tensor:
    """Algorithm 1 of Ho et al. 2020 for one batch: draw ``t ~ U{0, T-1}`` and ``eps ~ N(0, I)``
    with ``generator`` (on ``x0``'s device), then ``simple_loss``. With ``labels``, each label
    is replaced by ``null_label`` with probability ``label_dropout``.

    ``shard``: the rows of the batch this process trains on (data parallel): every draw is made
    for the whole batch, so the union of the shards is exactly the single-process batch.
    """
    b = x0.shape[0]
    t = torch.randint(0, alphas_cumprod.numel(), (b,), device=x0.device, generator=generator)  # (B,)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)  # (B, C, H, W)
    kwargs = _label_kwargs(labels, label_dropout, null_label, generator)
    return simple_loss(model, x0[shard], t[shard], noise[shard], alphas_cumprod, prediction_type,
                       **_take(kwargs, shard))


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


def flow_loss(model, x0, generator, labels=None, label_dropout=0.0, null_label=None, shard: slice = ALL) -> torch.Tensor:
    """``flow_matching.flow_matching_loss`` for one batch, with the same label dropout and ``shard``
    as ``diffusion_loss``."""
    from .flow_matching import flow_matching_loss

    kwargs = _label_kwargs(labels, label_dropout, null_label, generator)
    return flow_matching_loss(model, x0, generator, shard=shard, **_take(kwargs, shard))


def consistency_loss(model, target, teacher, x0, alphas_cumprod, generator, config: TrainConfig, labels=None,
                     null_label=None, shard: slice = ALL) -> torch.Tensor:
    """``distillation.consistency_distillation_loss`` for one batch, with ``diffusion_loss``'s label
    dropout and ``shard``."""
    from .distillation import consistency_distillation_loss

    kwargs = _label_kwargs(labels, config.label_dropout, null_label, generator)
    return consistency_distillation_loss(model, target, teacher, x0, alphas_cumprod, generator,
                                         config.original_inference_steps, shard=shard, **_take(kwargs, shard))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    """The optimiser's state as flat tensors, and its param groups as JSON-ready dicts (a CUDA
    graph's learning-rate tensor as a number, ``capturable`` off: a resumed run sets its own)."""
    sd = opt.state_dict()
    flat = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()}
    groups = [{k: (v.item() if torch.is_tensor(v) else v) for k, v in g.items()} | {"capturable": False}
              for g in sd["param_groups"]]
    return flat, groups


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups: list, device) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_training_state(path, model, ema: EMA, opt, generator, step, config: TrainConfig, losses, extra=None):
    """One atomic safetensors file with everything needed to resume exactly."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.model.state_dict().items()}
    optim_tensors, groups = _optimizer_tensors(opt)
    tensors |= optim_tensors
    tensors["rng"] = generator.get_state()
    meta = {"kind": "training_state", "step": step, "train_config": asdict(config), "param_groups": groups,
            "losses": losses, "model_config": getattr(getattr(model, "config", None), "to_dict", dict)()}
    meta |= extra or {}
    return save_checkpoint(path, tensors, meta)


def _optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; on CUDA its fused kernel (a few launches per step instead of one per operation and
    chunk of parameters: 1.07x and 1.17x images/s for the two U-Nets of benchmark 2 with CUDA graphs
    on an H200, docs/BENCHMARKS.md). On the CPU the default, so CPU runs stay as they were."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             fused=True if device.type == "cuda" else None)


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)


def train(model: nn.Module, images: torch.Tensor, schedule: NoiseSchedule | None, config: TrainConfig,
          labels: torch.Tensor | None = None, device: str | torch.device | None = None,
          checkpoint_path: str | Path | None = None, resume: bool = True, progress: bool = True,
          value_range: float | None = 1.0, teacher: nn.Module | None = None) -> TrainResult:
    """Train ``model`` to denoise ``images`` under ``schedule`` (``config.objective="diffusion"``),
    or to predict the flow-matching velocity (``"flow_matching"``; ``schedule`` is then unused: None).

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
    from tqdm.auto import tqdm

    from .config import get_device

    if not isinstance(config, TrainConfig):
        raise TypeError("config must be a TrainConfig.")
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, ...) tensor, got shape {tuple(images.shape)}.")
    if not torch.isfinite(images).all():
        raise ValueError("images must be finite.")
    if value_range is not None and images.abs().max() > value_range + 1e-6:
        raise ValueError(f"images must lie in [-{value_range:g}, {value_range:g}] (see course_utils.data); pass "
                         "value_range=None for unbounded data such as VAE latents.")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}.")
    device = torch.device(device) if device is not None else get_device()
    model.to(device).train()
    data = images.to(device, torch.float32)
    label_data = labels.to(device) if labels is not None else None
    null_label = getattr(getattr(model, "config", None), "num_classes", None)
    if labels is not None and null_label and (labels.is_floating_point() or labels.min() < 0 or labels.max() > null_label):
        raise ValueError(f"labels must be integers in [0, {null_label - 1}] (or {null_label}, the null label), got "
                         f"{labels.min().item()} to {labels.max().item()}.")  # here, once: a recorded step reads no values
    if config.label_dropout > 0 and null_label is None:
        raise ValueError("label_dropout needs a class-conditional model (config.num_classes set).")
    if config.objective == "diffusion" and schedule is None:
        raise ValueError("the diffusion objective needs the noise schedule (e.g. get_schedule('cosine')).")
    if (config.objective == "consistency") != (teacher is not None):
        raise ValueError("objective='consistency' needs a teacher (the frozen diffusion model to distil), and only "
                         f"it takes one; got objective={config.objective!r}, teacher={type(teacher).__name__}.")
    if config.objective == "consistency" and schedule is None:
        raise ValueError("consistency distillation needs the teacher's noise schedule.")
    if teacher is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)
    alphas_cumprod = schedule.alphas_cumprod.to(torch.float32).to(device) if schedule is not None else None

    opt = _optimizer(model, config, device)
    warm = max(config.warmup_steps, 1)
    ema = EMA(model, config.ema_decay)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    step, losses, earlier_wall = 0, [], 0.0

    if checkpoint_path is not None and resume and Path(checkpoint_path).exists():
        tensors, meta = load_checkpoint(checkpoint_path)
        if meta.get("kind") != "training_state":
            raise ValueError(f"{checkpoint_path} is not a training checkpoint; pass resume=False to overwrite it.")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        _load_optimizer(opt, tensors, meta["param_groups"], device)
        gen.set_state(tensors["rng"])
        step, losses = meta["step"], [tuple(x) for x in meta["losses"]]
        earlier_wall = meta.get("wall_time_s", 0.0)  # the time the run had taken before it stopped

    shard = distributed.shard(config.batch_size)  # this process's rows of each batch (all of them in one process)
    step_fn = distributed.wrap(model, device)  # DDP under torchrun (after resuming: it broadcasts rank 0's weights)
    if step == 0 and step_fn is not model:
        ema.model.load_state_dict(model.state_dict())  # a fresh EMA starts from the broadcast weights
    compiled = _compile(step_fn, device) if config.compile else None  # tried at the first step
    graph, capture_at, side = None, None, None  # config.cuda_graph: the recorded step, when to record it, its stream
    if config.cuda_graph:
        if device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device, got {device}; set cuda_graph=False there "
                             "(or compile=True, which works on any device).")
        if step_fn is not model:
            warnings.warn("cuda_graph=True is not used under DDP (its gradient hooks run outside one graph); "
                          "training in eager mode.", stacklevel=2)
        else:  # eager steps first, on the stream that records (lazy cuBLAS/cuDNN set-up, optimiser state)
            capture_at, side = step + TIMED_AFTER - 1, torch.cuda.Stream(device)  # recorded within the untimed steps
            side.wait_stream(torch.cuda.current_stream(device))

    def forward_backward(fn, idx: torch.Tensor) -> torch.Tensor:
        """The loss of the batch ``data[idx]`` (this process's shard of it), and its gradients."""
        batch_labels = None if label_data is None else label_data[idx]
        with _autocast(device, config.precision):
            if config.objective == "flow_matching":
                loss = flow_loss(fn, data[idx], gen, batch_labels, config.label_dropout, null_label, shard)
            elif config.objective == "consistency":
                loss = consistency_loss(fn, ema.model, teacher, data[idx], alphas_cumprod, gen, config,
                                        batch_labels, null_label, shard)
            else:
                loss = diffusion_loss(fn, data[idx], alphas_cumprod, gen, config.prediction_type,
                                      batch_labels, config.label_dropout, null_label, shard)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def draw() -> torch.Tensor:
        """The rows of this step's batch, drawn on the device."""
        return torch.randint(0, len(data), (config.batch_size,), device=device, generator=gen)

    def update(loss: torch.Tensor) -> None:
        """After ``forward_backward``: clip, step AdamW, update the EMA, add the loss to the running sum."""
        global_loss = distributed.mean(loss.detach())  # the whole batch's loss (this shard's in one process)
        if check_every_step and not math.isfinite(global_loss.item()):
            _diverged(step, config)
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        ema.update(model)
        running.add_(global_loss)

    def checkpoint():
        if checkpoint_path is not None and distributed.is_main():
            save_training_state(checkpoint_path, model, ema, opt, gen, step, config, losses,
                                {"wall_time_s": earlier_wall + time.perf_counter() - start})

    check_every_step = device.type != "cuda"  # a CPU sync is free; on CUDA check at log points only
    running = torch.zeros((), device=device)
    n_running, start, first_step = 0, time.perf_counter(), step
    steady_from, steady_start = None, 0.0  # timing after the first steps (compilation, CUDA-graph capture)
    bar = tqdm(total=config.steps, initial=step, disable=not (progress and distributed.is_main()), desc="training",
               leave=False)
    interrupted, lr_now = False, None
    try:
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():  # the recording's stream
            while step < config.steps:
                if step == first_step + TIMED_AFTER:
                    _sync(device)
                    steady_from, steady_start = step, time.perf_counter()
                with torch.profiler.record_function(STEP_MARK):  # where benchmarks/training_throughput.py --profile cuts steps
                    lr = config.lr * min(1.0, (step + 1) / warm)  # linear warm-up, then constant
                    if lr != lr_now:
                        _set_lr(opt, lr)
                        lr_now = lr
                    if capture_at is not None and step >= capture_at:  # record once; None if recording failed
                        graph, capture_at = _record_step(lambda: update(forward_backward(step_fn, draw())), opt, gen, side), None
                    if graph is not None:
                        graph.replay()
                    elif compiled is not None:  # the first step: compile, or fall back to eager
                        step_fn, loss = _first_compiled_step(compiled, step_fn, forward_backward, draw(), gen)
                        compiled = None
                        update(loss)
                    else:
                        if config.compile and device.type == "cuda":
                            torch.compiler.cudagraph_mark_step_begin()
                        update(forward_backward(step_fn, draw()))
                n_running += 1
                step += 1
                if step % config.log_every == 0 or step == config.steps:
                    mean = (running / n_running).item()
                    if not math.isfinite(mean):
                        _diverged(step, config)
                    losses.append((step, mean))
                    running.zero_()
                    n_running = 0
                    bar.set_postfix(loss=f"{mean:.4f}")
                bar.update(1)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    checkpoint()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if side is not None:
        torch.cuda.current_stream(device).wait_stream(side)
    _sync(device)
    end = time.perf_counter()
    checkpoint()
    total = earlier_wall + end - start  # over every session of the run, for the model card
    model.eval()
    steady = (step - steady_from) * config.batch_size / (end - steady_start) if steady_from not in (None, step) else 0.0
    return TrainResult(model, ema.model, losses, step, total, step * config.batch_size / total if total > 0 else 0.0,
                       interrupted, (steady_start if steady_from is not None else end) - start, steady)


STEP_MARK = "train.step"  # the profiler's name for one pass of the loop (a host-side range)
TIMED_AFTER = 3  # steps left out of steady_images_per_s: compiling, CUDA-graph capture, allocator warm-up


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; a recorded step's tensor is filled in place (its kernels read
    it): one small kernel, so the loop calls this only when the rate changes."""
    for group in opt.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def _record_step(step, opt: torch.optim.Optimizer, gen: torch.Generator, stream):
    """Record ``step()`` (one whole training step, no host sync in it) as a CUDA graph on ``stream``.

    Recording runs no kernel: the step happens at the first ``replay()``. AdamW must be fused and
    becomes ``capturable`` with its learning rate in a device tensor (``_set_lr``); ``gen``'s draws
    advance on each replay (``register_generator_state``). Returns the graph, or None with a
    warning if recording fails (the run then stays eager; parameters are untouched, as nothing ran).
    """
    groups = [(g, g["lr"], g["capturable"]) for g in opt.param_groups]
    for g, lr, _ in groups:
        g["capturable"], g["lr"] = True, torch.tensor(float(lr), device=gen.device)
    try:
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(gen)
        stream.synchronize()
        with torch.cuda.graph(graph, stream=stream):
            step()
    except Exception as err:  # an operation that cannot be recorded: the same step runs eagerly
        for g, lr, capturable in groups:
            g["lr"], g["capturable"] = lr, capturable
        _end_recording(gen, stream)
        warnings.warn(f"recording the training step as a CUDA graph failed ({type(err).__name__}: "
                      f"{str(err).splitlines()[0][:200] if str(err) else ''}); training continues in eager mode "
                      "(set cuda_graph=False to skip the attempt).", stacklevel=3)
        return None
    return graph


def _end_recording(gen: torch.Generator, stream) -> None:
    """After a failed recording, ``gen`` and CUDA's default generator can stay marked as recording
    (torch skips their epilogue) and refuse every later draw; one small recording that succeeds
    clears the mark. Their states are as before: a recording draws nothing."""
    try:
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(gen)
        with torch.cuda.graph(graph, stream=stream):
            torch.zeros(1, device=gen.device).add_(1)
    except Exception:  # no CUDA (a test on the CPU), or nothing to clear
        pass


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compile(fn: nn.Module, device: torch.device):
    """``torch.compile`` with fixed shapes (every batch has the same size); on CUDA with CUDA graphs
    (``mode="reduce-overhead"``), which remove the per-kernel launch cost that dominates small models."""
    return torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, dynamic=False)


def _first_compiled_step(compiled, eager, forward_backward, idx, gen):
    """The first step through the compiled model. If compiling fails, a warning, and the same step
    (the same draws) in eager mode, which the run then keeps. Returns ``(the model to use, loss)``."""
    rng = gen.get_state()
    try:
        return compiled, forward_backward(compiled, idx)
    except Exception as err:  # an Inductor/Dynamo failure: the model itself is unchanged
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                      "training continues in eager mode (set compile=False to skip the attempt).", stacklevel=3)
        gen.set_state(rng)
        return eager, forward_backward(eager, idx)


def _diverged(step: int, config: TrainConfig):
    raise TrainingDiverged(
        f"The loss became NaN/Inf at step {step}. Likely causes: a learning rate too high for this model "
        f"(lr={config.lr:g}: try {config.lr / 10:g}), no gradient clipping (grad_clip={config.grad_clip}), "
        f"or reduced precision overflowing (precision={config.precision!r}: try 'fp32'). Data must be "
        "finite and in [-1, 1]. The last checkpoint, if any, is from before this step."
    )
