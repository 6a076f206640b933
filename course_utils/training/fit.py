"""The plain loop that the small networks share: the digit classifier, the shapes judge, tiny CLIP,
the VAE and reflow's toy flow. (Diffusion models train with ``training.loop.train``, which adds the
EMA, checkpoints, mixed precision, compiling and data parallelism.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def fit(model: nn.Module, batch_loss: Callable[[], torch.Tensor | dict], optimizer: torch.optim.Optimizer,
        steps: int | Iterable[int], scheduler=None, grad_clip: float = 0.0,
        on_step: Callable[[int, torch.Tensor | dict], None] | None = None, interruptible: bool = False) -> int:
    """Train ``model`` in place: ``steps`` times, ``batch_loss()``, backward, clip, ``optimizer.step()``,
    ``scheduler.step()``.

    Args:
        batch_loss: draws a batch and returns its loss, or a dict of parts whose ``"loss"`` is optimised.
        steps: a count, or the step numbers themselves (a ``tqdm`` over ``range(n)`` shows a bar).
        grad_clip: the largest gradient norm (0: no clipping).
        on_step: ``on_step(step, what batch_loss returned)`` after each update (logging).
        interruptible: a ``KeyboardInterrupt`` (the notebook's stop button) ends training early.

    Returns:
        the number of steps taken. The model is left in train mode.
    """
    model.train()
    done = 0
    try:
        for step in range(steps) if isinstance(steps, int) else steps:
            out = batch_loss()
            loss = out["loss"] if isinstance(out, dict) else out
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            done += 1
            if on_step is not None:
                on_step(step, out)
    except KeyboardInterrupt:
        if not interruptible:
            raise
    return done
