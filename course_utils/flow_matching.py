"""Flow matching (rectified flow): a straight path from data to noise, and a network that learns
its velocity (Lipman et al. 2023; Liu et al. 2023; the convention of Stable Diffusion 3 and
diffusers' ``FlowMatchEulerDiscreteScheduler``).

**The time convention, once for the whole package.** ``sigma`` runs over [0, 1]; ``sigma = 0`` is
data and ``sigma = 1`` is pure noise, so sampling walks ``sigma`` *down*, as every sampler here
walks its timesteps down. The network sees ``timestep = sigma * num_train_timesteps`` (1000), the
scale our timestep embeddings were built for.

Path and target, for data ``x0``, noise ``eps ~ N(0, I)``:

    x_sigma = (1 - sigma) * x0 + sigma * eps          (a straight line in sigma)
    v       = d x_sigma / d sigma = eps - x0          (the same at every sigma on the line)

Training regresses ``model(x_sigma, sigma * 1000)`` onto ``v`` with a mean squared error; sampling
integrates ``dx / dsigma = v`` from ``sigma = 1`` down to 0 (``samplers.FlowMatchEulerSampler``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import broadcast_to_sample, check_positive_int, check_same_shape, recording_cuda_graph
from .parameterization import flow_interpolate, flow_to_x0, flow_velocity

NUM_TRAIN_TIMESTEPS = 1000


def _expand(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` (a number or ``(B,)``) checked to lie in [0, 1] and shaped to multiply ``x``."""
    s = broadcast_to_sample(sigma, x, name="sigma")
    if s.numel() and not recording_cuda_graph() and (s.min() < 0 or s.max() > 1):
        raise ValueError("sigma must lie in [0, 1] (0: data, 1: noise).")
    return s


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """``x_sigma = (1 - sigma) x0 + sigma eps``: ``(B, ...)`` for ``sigma`` a number or ``(B,)``."""
    check_same_shape(x0=x0, noise=noise)
    return flow_interpolate(x0, noise, _expand(sigma, x0))


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``v = eps - x0``, the velocity of the straight path (what the network learns)."""
    check_same_shape(x0=x0, noise=noise)
    return flow_velocity(x0, noise)


def velocity_to_x0(velocity: torch.Tensor, sample: torch.Tensor, sigma) -> torch.Tensor:
    """The clean sample the velocity points back to: ``x0 = x_sigma - sigma * v``."""
    return flow_to_x0(velocity, sample, _expand(sigma, sample))


def flow_matching_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None,
                       num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, shard: slice = slice(None),
                       **model_kwargs) -> torch.Tensor:
    """The conditional flow-matching loss for one batch: ``sigma ~ U[0, 1]``, ``eps ~ N(0, I)``,
    ``mean || model(x_sigma, sigma * T) - (eps - x0) ||^2``.

    Args:
        model: called as ``model(x_sigma, timestep, **model_kwargs)`` with ``timestep`` ``(B,)`` float.
        x0: ``(B, ...)`` clean data; draws use ``generator`` on ``x0``'s device.
        shard: the rows this process trains on (data parallel); the draws are made for all ``B``.
            ``model_kwargs`` tensors must already be cut to the shard.
    """
    check_positive_int("num_train_timesteps", num_train_timesteps)
    b = x0.shape[0]
    sigma = torch.rand(b, device=x0.device, generator=generator, dtype=x0.dtype)[shard]  # (B',)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)[shard]  # (B', ...)
    x0 = x0[shard]
    x_sigma = interpolate(x0, noise, sigma)
    pred = model(x_sigma, sigma * num_train_timesteps, **model_kwargs)
    return F.mse_loss(pred.float(), velocity_target(x0, noise).float())


def straightness(trajectory: torch.Tensor) -> torch.Tensor:
    """How straight each sampled path is: ``|x_end - x_start| / sum_k |x_{k+1} - x_k|`` per sample,
    1 for a straight line and smaller the more the path bends.

    Args:
        trajectory: ``(steps + 1, B, ...)``, as ``sample_loop(..., return_trajectory=True)`` returns.
    Returns:
        ``(B,)`` in (0, 1].
    """
    if trajectory.ndim < 3 or trajectory.shape[0] < 2:
        raise ValueError(f"trajectory must be (steps + 1, B, ...) with at least 2 points, got {tuple(trajectory.shape)}.")
    flat = trajectory.flatten(2)  # (K+1, B, D)
    chord = (flat[-1] - flat[0]).norm(dim=-1)  # (B,)
    length = (flat[1:] - flat[:-1]).norm(dim=-1).sum(0)  # (B,)
    return chord / length.clamp_min(1e-12)


# --- Reflow (Liu et al. 2022, "Flow straight and fast", ICLR 2023) --------------------------------
#
# A trained flow carries each noise eps along its ODE to a sample x0 = ODE(eps). Training a flow
# again on these *coupled* pairs (x0, eps), rather than on independent ones, teaches lines that no
# longer cross, so the new flow's paths are straighter and fewer Euler steps follow them.


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
    from .samplers.flow_euler import FlowMatchEulerSampler  # here: the sampler module imports this one

    sampler = FlowMatchEulerSampler(num_train_timesteps)
    sampler.set_timesteps(check_positive_int("steps", steps))
    x = noise
    for t in sampler.timesteps:
        x = sampler.step(model(x, t), t, x).prev_sample  # x_{k+1} = x_k + (sigma_{k+1} - sigma_k) v
    return x, noise


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
    model.requires_grad_(True).train()  # an EMA copy arrives frozen
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x0), (batch_size,), device=x0.device, generator=g)  # (batch,)
        loss = paired_flow_loss(model, x0[idx], noise[idx], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())  # CPU toy training: the sync costs nothing here
    return losses


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, num_projections: int = 256, quantiles: int = 256,
                       seed: int = 0) -> float:
    """The sliced 1-Wasserstein distance between point clouds ``x (N, D)`` and ``y (M, D)``: the
    mean, over random unit directions, of the 1-D Wasserstein-1 distance between the projections
    (estimated on ``quantiles`` evenly spaced quantiles, so ``N != M`` is fine). 0 for equal clouds;
    for ``y = x + c`` in 2-D it tends to ``|c| * 2 / pi`` (the mean of ``|cos|``). Used to score 2-D
    toy samples against real ones (Rabin et al. 2011; Bonneel et al. 2015)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}.")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], num_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, P) unit directions
    q = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles  # (Q,) levels in (0, 1)
    px = torch.quantile(x.double().cpu() @ dirs, q, dim=0)  # (Q, P)
    py = torch.quantile(y.double().cpu() @ dirs, q, dim=0)  # (Q, P)
    return float((px - py).abs().mean())
