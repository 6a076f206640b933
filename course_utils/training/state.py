"""What a training run carries from step to step, and to disk: the optimiser, the EMA of the weights,
the random generator, the step count and the loss history; saved as one atomic safetensors file
(``checkpoints``) from which a run resumes exactly."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..checkpoints import load_checkpoint, save_checkpoint, strip_prefix, with_prefix
from .config import TrainConfig


class EMA:
    """Exponential moving average of a model's weights: ``ema <- decay * ema + (1 - decay) * w``.

    ``warmup``: the decay of the update after optimiser step ``s`` (0-indexed) is diffusers' default
    ramp (``EMAModel.get_decay`` without ``use_ema_warmup``): 0 at ``s = 0`` (the EMA becomes the
    weights), then ``min(decay, (1 + s) / (10 + s))``. Without it the decay is ``decay`` from the start.
    With the ramp the weight ``1 - decay`` lives in a 0-d tensor on the model's device, filled before
    each step (``set_step``) and read by the update's kernels, so a recorded CUDA graph sees each value.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        device = next(self.model.parameters()).device
        self.weight = torch.tensor(1 - decay, device=device) if warmup else None
        self.weight_value = 1 - decay

    def decay_at(self, step: int) -> float:
        """The decay of the update after optimiser step ``step`` (0-indexed)."""
        if not self.warmup:
            return self.decay
        return 0.0 if step <= 0 else min(self.decay, (1 + step) / (10 + step))

    def set_step(self, step: int) -> None:
        """Before optimiser step ``step``: the weight its EMA update will use (filled only when it changes)."""
        if self.warmup and 1 - self.decay_at(step) != self.weight_value:
            self.weight_value = 1 - self.decay_at(step)
            self.weight.fill_(self.weight_value)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        if self.weight is None:
            torch._foreach_lerp_(ema_p, params, 1 - self.decay)
        else:  # ema + weight * (w - ema), the weight read from its tensor
            delta = torch._foreach_sub(params, ema_p)
            torch._foreach_mul_(delta, self.weight)
            torch._foreach_add_(ema_p, delta)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; on CUDA its fused kernel (a few launches per step instead of one per operation and
    chunk of parameters: 1.07x and 1.17x images/s for the two U-Nets of benchmark 2 with CUDA graphs
    on an H200, docs/BENCHMARKS.md). On the CPU the default, so CPU runs stay as they were."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             fused=True if device.type == "cuda" else None)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; a recorded step's tensor is filled in place (its kernels read
    it): one small kernel, so the loop calls this only when the rate changes."""
    for group in opt.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    """The optimiser's state as flat tensors, and its param groups as JSON-ready dicts (a CUDA
    graph's learning-rate tensor as a number, ``capturable`` off: a resumed run sets its own)."""
    sd = opt.state_dict()
    flat = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()}
    groups = [{k: (v.item() if torch.is_tensor(v) else v) for k, v in g.items()} | {"capturable": False}
              for g in sd["param_groups"]]
    return flat, groups


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups: list, device) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_training_state(path, model, ema: EMA, opt, generator, step, config: TrainConfig, losses, extra=None):
    """One atomic safetensors file with everything needed to resume exactly."""
    tensors = with_prefix(model.state_dict(), "model.") | with_prefix(ema.model.state_dict(), "ema.")
    optim_tensors, groups = optimizer_tensors(opt)
    tensors |= optim_tensors
    tensors["rng"] = generator.get_state()
    meta = {"kind": "training_state", "step": step, "train_config": asdict(config), "param_groups": groups,
            "losses": losses, "model_config": getattr(getattr(model, "config", None), "to_dict", dict)()}
    meta |= extra or {}
    return save_checkpoint(path, tensors, meta)


@dataclass
class TrainingState:
    """A run's state: the optimiser, the EMA, the generator every draw uses, and the progress so far.

    ``losses``: ``(step, mean loss since the previous entry)`` pairs; ``earlier_wall_s``: the time the
    run took in earlier sessions (a resumed run's total counts them).
    """

    opt: torch.optim.Optimizer
    ema: EMA
    generator: torch.Generator
    step: int = 0
    losses: list = field(default_factory=list)
    earlier_wall_s: float = 0.0
    run: dict = field(default_factory=dict)  # what else defines the run, saved and compared on resume: the schedule

    @classmethod
    def start(cls, model: nn.Module, config: TrainConfig, device: torch.device, schedule=None) -> "TrainingState":
        opt = make_optimizer(model, config, device)
        ema = EMA(model, config.ema_decay, config.ema_warmup)
        run = {"schedule": schedule.name if schedule is not None else None}
        return cls(opt, ema, torch.Generator(device=device).manual_seed(config.seed), run=run)

    def resume(self, path, model: nn.Module, device: torch.device, config: TrainConfig | None = None) -> None:
        """Load a checkpoint written by ``save``: weights, EMA, optimiser, generator and progress; one
        made by another run (``check_same_run``) is refused before anything is loaded."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "training_state":
            raise ValueError(f"{path} is not a training checkpoint; pass resume=False to overwrite it.")
        if config is not None:
            check_same_run(path, meta, model, config, self.run)
        model.load_state_dict(strip_prefix(tensors, "model."))
        self.ema.model.load_state_dict(strip_prefix(tensors, "ema."))
        load_optimizer(self.opt, tensors, meta["param_groups"], device)
        self.generator.set_state(tensors["rng"])
        self.step, self.losses = meta["step"], [tuple(x) for x in meta["losses"]]
        self.earlier_wall_s = meta.get("wall_time_s", 0.0)  # the time the run had taken before it stopped

    def save(self, path, model: nn.Module, config: TrainConfig, session_s: float):
        """Write everything to resume from (atomically); ``session_s``: this session's time so far."""
        return save_training_state(path, model, self.ema, self.opt, self.generator, self.step, config, self.losses,
                                   {"wall_time_s": self.earlier_wall_s + session_s} | self.run)


def check_same_run(path, meta: dict, model: nn.Module, config: TrainConfig, run: dict) -> None:
    """Refuse to resume from a checkpoint of another run: another network, objective, prediction type
    or schedule, or a run already past ``config.steps``; the message names each difference."""
    differences = []
    net = json.loads(json.dumps(getattr(getattr(model, "config", None), "to_dict", dict)()))  # as stored: lists
    saved_net = meta.get("model_config") or {}
    changed = sorted(k for k in set(saved_net) | set(net) if saved_net.get(k) != net.get(k))
    if changed:
        differences.append("the network (" + ", ".join(f"{k}: {saved_net.get(k)!r} there, {net.get(k)!r} here"
                                                       for k in changed) + ")")
    saved = meta.get("train_config", {})
    for key in ("objective", "prediction_type"):
        if key in saved and saved[key] != getattr(config, key):
            differences.append(f"{key} ({saved[key]!r} there, {getattr(config, key)!r} here)")
    if "schedule" in meta and meta["schedule"] != run.get("schedule"):
        differences.append(f"the schedule ({meta['schedule']!r} there, {run.get('schedule')!r} here)")
    if meta.get("step", 0) > config.steps:
        differences.append(f"its step count (it is at step {meta['step']}, past steps={config.steps} here)")
    if differences:
        raise ValueError(f"{path} was saved by another run: it differs in " + "; ".join(differences) + ". To start "
                         "fresh, pass resume=False (command line: delete the file or pass another --out).")
