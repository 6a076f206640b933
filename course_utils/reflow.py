"""Reflow (Liu et al. 2022, "Flow straight and fast", ICLR 2023): straighten a trained flow.

A trained flow carries each noise ``eps`` along its ODE to a sample ``x0 = ODE(eps)``. Training a
flow again on these *coupled* pairs ``(x0, eps)``, rather than on independent ones, teaches lines
that no longer cross, so the new flow's paths are straighter (``metrics.distances.straightness``)
and fewer Euler steps follow them. Notebook 08 does it on 2-D toy data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import check_positive_int, check_same_shape
from .flow_matching import NUM_TRAIN_TIMESTEPS, interpolate, velocity_target
from .samplers import FlowMatchEulerSampler, sample_loop
from .training.fit import fit


@torch.no_grad()
def reflow_pairs(model, noise: torch.Tensor, steps: int = 100,
                 num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Couple each noise with the end of ``model``'s flow ODE from it (Euler, ``steps`` steps).

    Args:
        model: a velocity model, ``model(x_sigma, sigma * T) -> v`` with ``x_sigma`` ``(B, ...)``.
        noise: ``(B, ...)`` starting points at ``sigma = 1``.
    Returns:
        ``(x0, noise)``, both ``(B, ...)``: the ODE's endpoints at ``sigma = 0`` and the noise itself.
    """
    sampler = FlowMatchEulerSampler(num_train_timesteps)
    steps = check_positive_int("steps", steps)
    return sample_loop(model, sampler, noise.shape, steps, device=noise.device, latents=noise), noise


def paired_flow_loss(model, x0: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None,
                     num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """``flow_matching_loss`` with the noise given instead of drawn: the pairs ``(x0, noise)``,
    both ``(B, ...)``, keep their coupling (reflow); only ``sigma ~ U[0, 1]`` is drawn."""
    check_same_shape(x0=x0, noise=noise)
    sigma = torch.rand(x0.shape[0], device=x0.device, generator=generator, dtype=x0.dtype)  # (B,)
    pred = model(interpolate(x0, noise, sigma), sigma * num_train_timesteps)
    return F.mse_loss(pred.float(), velocity_target(x0, noise).float())


def fit_pairs(model: torch.nn.Module, x0: torch.Tensor, noise: torch.Tensor, steps: int, batch_size: int = 256,
              lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Train ``model`` in place on fixed pairs ``(x0, noise)`` (``(N, ...)`` each) with
    ``paired_flow_loss``: AdamW at a constant ``lr``, batches drawn with replacement.

    Returns:
        the loss of every step (a list of ``steps`` floats).
    """
    check_same_shape(x0=x0, noise=noise)
    check_positive_int("steps", steps)
    g = torch.Generator(device=x0.device).manual_seed(seed)
    model.requires_grad_(True)  # an EMA copy arrives frozen

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(x0), (batch_size,), device=x0.device, generator=g)  # (batch,)
        return paired_flow_loss(model, x0[idx], noise[idx], g)

    losses: list[float] = []
    fit(model, batch_loss, torch.optim.AdamW(model.parameters(), lr=lr), steps,
        on_step=lambda step, loss: losses.append(loss.item()))  # CPU toy training: the sync costs nothing here
    return losses
