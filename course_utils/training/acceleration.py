"""How one training step runs: eagerly, through ``torch.compile``, or replayed as one CUDA graph.

- eager: the step as written; bf16 autocast on CUDA (``autocast``);
- ``TrainConfig(compile=True)``: ``torch.compile`` with fixed shapes (CUDA graphs on CUDA); if
  compiling fails, a warning and the same step eagerly;
- ``TrainConfig(cuda_graph=True)``: after ``TIMED_AFTER - 1`` eager steps on a side stream, the whole
  step (draws, forward, backward, clipping, AdamW, EMA) is recorded once and replayed; if recording
  fails, a warning and eager steps.

``StepRunner`` picks between them; the step itself (``training.loop.TrainStep``) is the same in all three.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from .config import TrainConfig

STEP_MARK = "train.step"  # the profiler's name for one pass of the loop (a host-side range)
TIMED_AFTER = 3  # steps left out of steady_images_per_s: compiling, CUDA-graph capture, allocator warm-up


def autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_model(fn: nn.Module, device: torch.device):
    """``torch.compile`` with fixed shapes (every batch has the same size); on CUDA with CUDA graphs
    (``mode="reduce-overhead"``), which remove the per-kernel launch cost that dominates small models."""
    return torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, dynamic=False)


def first_compiled_step(compiled, eager, forward_backward, idx, gen):
    """The first step through the compiled model. If compiling fails, a warning, and the same step
    (the same draws) in eager mode, which the run then keeps. Returns ``(the model to use, loss)``."""
    rng = gen.get_state()
    try:
        return compiled, forward_backward(compiled, idx)
    except Exception as err:  # an Inductor/Dynamo failure: the model itself is unchanged
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                      "training continues in eager mode (set compile=False to skip the attempt).", stacklevel=4)
        gen.set_state(rng)
        return eager, forward_backward(eager, idx)


def record_step(step, opt: torch.optim.Optimizer, gen: torch.Generator, stream):
    """Record ``step()`` (one whole training step, no host sync in it) as a CUDA graph on ``stream``.

    Recording runs no kernel: the step happens at the first ``replay()``. AdamW must be fused and
    becomes ``capturable`` with its learning rate in a device tensor (``state.set_lr``); ``gen``'s draws
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
                      "(set cuda_graph=False to skip the attempt).", stacklevel=4)
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


class StepRunner:
    """Runs each step of a run the way ``config`` asks (eager, compiled or a CUDA graph).

    Args:
        net: what the step calls: the model, or DDP around it.
        model: the model itself (a CUDA graph is recorded only when ``net`` is it: not under DDP).
        opt, gen: the run's optimiser and generator (a recording makes both capturable).
        start_step: the run's first step in this session (a CUDA graph is recorded within the untimed steps).
    """

    def __init__(self, config: TrainConfig, device: torch.device, net: nn.Module, model: nn.Module,
                 opt: torch.optim.Optimizer, gen: torch.Generator, start_step: int):
        self.config, self.device, self.net, self.opt, self.gen = config, device, net, opt, gen
        self.compiled = compile_model(net, device) if config.compile else None  # tried at the first step
        self.graph, self.capture_at, self.side = None, None, None  # the recorded step, when to record it, its stream
        if config.cuda_graph:
            if device.type != "cuda":
                raise ValueError(f"cuda_graph=True needs a CUDA device, got {device}; set cuda_graph=False there "
                                 "(or compile=True, which works on any device).")
            if net is not model:
                warnings.warn("cuda_graph=True is not used under DDP (its gradient hooks run outside one graph); "
                              "training in eager mode.", stacklevel=3)
            else:  # eager steps first, on the stream that records (lazy cuBLAS/cuDNN set-up, optimiser state)
                self.capture_at, self.side = start_step + TIMED_AFTER - 1, torch.cuda.Stream(device)
                self.side.wait_stream(torch.cuda.current_stream(device))

    def stream(self):
        """The context every step runs in: the recording's side stream, when there is one."""
        return torch.cuda.stream(self.side) if self.side is not None else contextlib.nullcontext()

    def run(self, step: int, work) -> None:
        """Step ``step`` of ``work`` (a ``TrainStep``: ``draw``, ``forward_backward``, ``update``)."""
        if self.capture_at is not None and step >= self.capture_at:  # record once; None if recording failed
            self.graph = record_step(lambda: work.update(work.forward_backward(self.net, work.draw())), self.opt,
                                     self.gen, self.side)
            self.capture_at = None
        if self.graph is not None:
            self.graph.replay()
        elif self.compiled is not None:  # the first step: compile, or fall back to eager
            self.net, loss = first_compiled_step(self.compiled, self.net, work.forward_backward, work.draw(), self.gen)
            self.compiled = None
            work.update(loss)
        else:
            if self.config.compile and self.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            work.update(work.forward_backward(self.net, work.draw()))

    def finish(self) -> None:
        """Wait for the side stream's work and the device, so that the clock and the weights are final."""
        if self.side is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.side)
        sync(self.device)


__all__ = ["STEP_MARK", "TIMED_AFTER", "StepRunner", "autocast", "compile_model", "first_compiled_step", "record_step",
           "sync"]
