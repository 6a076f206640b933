"""Consistency distillation (Song et al. 2023, Algorithm 2; in discrete DDPM time as LCM, Luo et al.
2023): teach a student to jump from any point of the teacher's ODE trajectory to its clean end.

One training example: a clean ``x0``, a grid timestep ``t_{n+1}`` and noise give ``x_{t_{n+1}}``
(forward process). One DDIM step of the frozen teacher moves it to ``x_hat_{t_n}``, a neighbour on
the *same* ODE trajectory. The student's answer at ``t_{n+1}`` is pulled towards the target
network's answer at ``t_n``:

    loss = d( f_theta(x_{t_{n+1}}, t_{n+1}),  stopgrad f_target(x_hat_{t_n}, t_n) )

Chained over the grid, ``f(x_t, t)`` becomes constant along each trajectory, and since
``f(x, 0) = x`` (``samplers.consistency.boundary_scalings``) that constant is the clean image. The
target network is an EMA of the student (decay ``mu``, 0.95 in the paper for CIFAR-10); ``d`` is
the pseudo-Huber distance of Song & Dhariwal 2023.
"""

from __future__ import annotations

import torch

from .parameterization import clamped_x0_eps, noised, to_x0
from .samplers.consistency import STUDENT_MIN_ALPHA_BAR, TIMESTEP_SCALING, boundary_scalings, solver_timesteps


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(like.shape[0], *([1] * (like.ndim - 1)))  # (B,) -> (B, 1, 1, 1)


def consistency_function(model, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
                         timestep_scaling: float = TIMESTEP_SCALING, min_alpha_bar: float = STUDENT_MIN_ALPHA_BAR,
                         **model_kwargs) -> torch.Tensor:
    """``f(x_t, t) = c_skip(t) x_t + c_out(t) x0_pred`` for an epsilon-predicting ``model``, its ``x0``
    read through ``alpha_bar`` floored at ``min_alpha_bar`` (``samplers.consistency`` says why).

    Args:
        x_t: ``(B, ...)`` noisy samples; t: ``(B,)`` integer timesteps; alphas_cumprod: ``(T,)``.
    """
    a = _per_sample(alphas_cumprod[t].clamp_min(min_alpha_bar), x_t)
    x0 = to_x0(model(x_t, t, **model_kwargs).float(), x_t, a.sqrt(), (1 - a).sqrt(), "epsilon")
    c_skip, c_out = boundary_scalings(_per_sample(t.float(), x_t), timestep_scaling)
    return c_skip * x_t + c_out * x0


@torch.no_grad()
def ddim_teacher_step(teacher, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor, alphas_cumprod: torch.Tensor,
                      clip_range: float | None = 1.0, **model_kwargs) -> torch.Tensor:
    """One deterministic DDIM step of the teacher from ``t`` to ``s < t`` (each ``(B,)``): the ODE solver.

    With ``clip_range`` the teacher's ``x0`` is clamped and its ``eps`` re-derived
    (``parameterization.clamp_x0_prediction``), the ODE the course's samplers solve for images.
    """
    a_t = _per_sample(alphas_cumprod[t], x_t)
    a_s = _per_sample(alphas_cumprod[s], x_t)
    eps = teacher(x_t, t, **model_kwargs).float()
    alpha, sigma = a_t.sqrt(), (1 - a_t).sqrt()
    if clip_range is None:
        x0 = to_x0(eps, x_t, alpha, sigma, "epsilon")
    else:  # the noise estimate re-derived from the clamped x0, consistent with it
        x0, eps = clamped_x0_eps(eps, x_t, alpha, sigma, "epsilon", clip_range)
    return noised(x0, eps, a_s.sqrt(), (1 - a_s).sqrt())


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((a - b)^2 + c^2) - c)``, per element (as LCM trains): about ``(a - b)^2 / 2c`` for errors
    much smaller than ``c`` (L2-like) and ``|a - b|`` for larger ones (L1-like, robust to outliers)."""
    return (((a.float() - b.float()) ** 2 + c**2).sqrt() - c).mean()


def consistency_distillation_loss(student, target, teacher, x0: torch.Tensor, alphas_cumprod: torch.Tensor,
                                  generator: torch.Generator | None = None, original_inference_steps: int = 50,
                                  huber_c: float = 1e-3, min_alpha_bar: float = STUDENT_MIN_ALPHA_BAR,
                                  shard: slice = slice(None), **model_kwargs) -> torch.Tensor:
    """Algorithm 2 of Song et al. 2023 for one batch, on the grid ``solver_timesteps(T, N)``.

    Args:
        student: the network being trained (epsilon prediction), called ``student(x_t, t, **model_kwargs)``.
        target: the EMA copy of the student (no gradient flows through it).
        teacher: the frozen diffusion model whose DDIM ODE is distilled.
        x0: ``(B, ...)`` clean data; draws use ``generator`` on ``x0``'s device.
        original_inference_steps: ``N``; the teacher steps ``k = T // N`` timesteps at a time.
        min_alpha_bar: the floor under ``alpha_bar`` when the student's (and target's) output is read as ``x0``.
        shard: the rows this process trains on (data parallel); the draws are made for all ``B``.
            ``model_kwargs`` tensors must already be cut to the shard.
    """
    solver_timesteps(len(alphas_cumprod), original_inference_steps)  # checks N
    k = len(alphas_cumprod) // original_inference_steps
    grid = torch.arange(1, original_inference_steps + 1, device=x0.device) * k - 1  # that grid, made on the device:
    # no copy from the host, which a CUDA graph could not record
    b = x0.shape[0]
    t = grid[torch.randint(0, len(grid), (b,), device=x0.device, generator=generator)][shard]  # (B',) t_{n+1}
    s = (t - k).clamp_min(0)  # (B',) t_n; 0 below the grid, where f is the identity
    noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)[shard]
    x0 = x0[shard]
    a_t = _per_sample(alphas_cumprod[t], x0)
    x_t = noised(x0, noise, a_t.sqrt(), (1 - a_t).sqrt())  # the forward process, Eq. (4) of Ho et al.
    x_s = ddim_teacher_step(teacher, x_t, t, s, alphas_cumprod, **model_kwargs)
    with torch.no_grad():
        want = consistency_function(target, x_s, s, alphas_cumprod, min_alpha_bar=min_alpha_bar, **model_kwargs)
    got = consistency_function(student, x_t, t, alphas_cumprod, min_alpha_bar=min_alpha_bar, **model_kwargs)
    return pseudo_huber(got, want, huber_c)
