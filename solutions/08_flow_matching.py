# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Flow matching
#
# Every model so far learnt to undo DDPM's forward process: a noise schedule $\bar\alpha_t$, the
# noisy image $\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$, and a network that
# predicts $\epsilon$. **Flow matching** (Lipman et al. 2023; Liu et al. 2023 call it *rectified
# flow*) throws the schedule away: it joins each image to its noise with a straight line and teaches
# the network the **velocity** along that line. Stable Diffusion 3 and FLUX are trained this way,
# and diffusers samples them with its `FlowMatchEulerDiscreteScheduler`.
#
# The usual sales pitch is "straight lines, so fewer steps". This notebook measures how much of that
# holds, and where the straightness really comes from.
#
# What you will do:
#
# 1. Write the straight path and the flow-matching loss, and put the path next to DDPM's.
# 2. Train a DDPM and a flow on a 2-D toy with the same network and budget, draw their sampling
#    paths from the same noise, measure how straight they are, and sample both with 1 to 8 steps.
# 3. **Build** a flow yourself: the training step and the Euler sampler, graded by what they
#    achieve, a trained toy flow's sliced Wasserstein distance to the data.
# 4. Answer the course text's Exercise 6 (flow matching vs DDPM) on digits, with a measured plot:
#    quality against the number of steps for two U-Nets trained the same way, one with each loss.
# 5. See which noise levels a flow should train on: Stable Diffusion 3's logit-normal sampling and
#    its timestep shift, measured on the toy here and on digits in a stored run.
# 6. **Reflow**: retrain the toy flow on its own (noise, sample) pairs, and watch one step become
#    enough.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | training | samples | time |
# |---|---|---|---|
# | `fast` | two toy MLPs, 1,500 steps each, then 1,500 steps of reflow; the build: 2 x 500 steps, then 1,500 on two moons | toy: 2,000 per panel; digits: 64 per point, 2 to 16 steps | under a minute |
# | `cpu` | 4,000 steps each, 4,000 of reflow; the build: 2 x 500, then 4,000 on two moons | toy: 4,000; digits: 898 (the digits-FID count), 2 to 32 steps | about 6 minutes on a laptop |
# | `full` | 8,000 steps each, 8,000 of reflow; the build: 2 x 500, then 8,000 on two moons | toy: 4,000; digits: 898, 2 to 50 steps | not yet measured on a GPU |
#
# The digit models are the shipped checkpoints `digits-ddpm` (DDPM) and `digits-flow` (flow
# matching): the same U-Net, data and 6,000 training steps, only the loss (and how its noise levels
# are drawn, section 4) differs.
# Four coding exercises, a build exercise and two questions, each with an automatic checker.

# %%
import copy
import time

import matplotlib.pyplot as plt
import torch

from course_utils import config, metrics, pretrained
from course_utils.course.stored import stored_run
from course_utils.course import speed
from course_utils import flow_matching as fm
from course_utils import reflow
from course_utils.data import make_toy2d
from course_utils.metrics.distances import sliced_wasserstein, straightness
from course_utils.course.exercises import nb08, use_build
from course_utils.models.mlp import ToyMLP
from course_utils.samplers import DDIMSampler, FlowMatchEulerSampler, sample_loop
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train
from course_utils.viz import show_images

MODE, DEVICE = config.get_mode(), config.get_device()
print(config.describe())
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. The straight path
#
# Take a clean sample $x_0$ and a noise $\epsilon \sim \mathcal N(0, I)$. Flow matching mixes them
# linearly, with a mixing level $\sigma \in [0, 1]$:
#
# $$x_\sigma = (1 - \sigma)\,x_0 + \sigma\,\epsilon .$$
#
# **One time convention, used everywhere in this course:** $\sigma = 0$ is data and $\sigma = 1$ is
# pure noise, as in diffusers' `FlowMatchEulerDiscreteScheduler` and Stable Diffusion 3. Sampling
# walks $\sigma$ *down*, as DDPM walks $t$ down; the network sees the timestep $1000\,\sigma$, the
# scale its timestep embedding was built for (`course_utils.flow_matching` writes this down once).
#
# Along the line, $x_\sigma$ moves with the **velocity**
#
# $$v = \frac{d x_\sigma}{d\sigma} = \epsilon - x_0 ,$$
#
# the same at every $\sigma$. The network $v_\theta(x_\sigma, \sigma)$ learns it by regression:
#
# $$\mathcal L = \mathbb E_{x_0, \epsilon, \sigma \sim U[0, 1]}\,\big\| v_\theta(x_\sigma, \sigma) - (\epsilon - x_0) \big\|^2 .$$
#
# DDPM's forward process is a path between the same two points, but a curved one:
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$. The two weights satisfy
# $\bar\alpha_t + (1 - \bar\alpha_t) = 1$, so the point $(\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})$
# runs along a quarter circle, while flow matching's $(1 - \sigma, \sigma)$ runs along a straight
# line. Below, both weights, and the two paths for one pair $(x_0, \epsilon)$ in 2-D.

# %%
schedule = get_schedule("cosine")
a_bar = schedule.alphas_cumprod.float()  # (1000,)
frac = torch.linspace(0, 1, 101)  # how far along the path: 0 = data, 1 = noise
ddpm_w = a_bar[(frac * 999).long()]  # (101,) alpha_bar at t = frac * 999
x0_demo, eps_demo = torch.tensor([[1.8, 0.9]]), torch.tensor([[-0.6, -1.2]])  # one pair, (1, 2) each
flow_path = torch.cat([fm.interpolate(x0_demo, eps_demo, float(s)) for s in frac])  # (101, 2)
ddpm_path = ddpm_w.sqrt()[:, None] * x0_demo + (1 - ddpm_w).sqrt()[:, None] * eps_demo  # (101, 2)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
left.plot(frac, 1 - frac, "C0-", label=r"flow: weight of $x_0$, $1 - \sigma$")
left.plot(frac, frac, "C0--", label=r"flow: weight of $\epsilon$, $\sigma$")
left.plot(frac, ddpm_w.sqrt(), "C1-", label=r"DDPM (cosine): $\sqrt{\bar\alpha_t}$")
left.plot(frac, (1 - ddpm_w).sqrt(), "C1--", label=r"DDPM (cosine): $\sqrt{1-\bar\alpha_t}$")
left.set(xlabel=r"position along the path ($\sigma$, or $t / 999$)", ylabel="weight",
         title="How much data and noise each path holds")
left.legend(fontsize=8)
right.plot(*flow_path.T, "C0-", lw=2, label=r"flow: $(1-\sigma)x_0 + \sigma\epsilon$")
right.plot(*ddpm_path.T, "C1-", lw=2, label=r"DDPM: $\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$")
right.scatter(*x0_demo.T, c="k", marker="o", zorder=3, label=r"$x_0$ (data)")
right.scatter(*eps_demo.T, c="k", marker="x", zorder=3, label=r"$\epsilon$ (noise)")
right.set(xlabel="$x_1$", ylabel="$x_2$", title="The two paths for one pair", aspect="equal")
right.legend(fontsize=8, loc="lower right")
for ax in (left, right):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 1: the straight path
#
# Write `my_interpolate(x0, eps, sigma)`: `x0` and `eps` are `(B, ...)` batches (points `(B, 2)` or
# images `(B, C, H, W)`), and `sigma` is `(B,)`, one level per example. Return $x_\sigma$, shape
# `(B, ...)`. Mind the broadcast: `sigma` needs the sample's other axes before it multiplies `x0`.

# %%
def my_interpolate(x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    s = sigma.view(-1, *[1] * (x0.ndim - 1))  # (B, 1, ...)
    return (1 - s) * x0 + s * eps  # (B, ...)
    # END SOLUTION


nb08.check_interpolate(my_interpolate)

# %% [markdown]
# ### Exercise 2: the flow-matching loss
#
# Write `my_flow_loss(model, x0, eps, sigma)`, the loss above for one batch with the noise and the
# levels given (so the checker can compare numbers): build $x_\sigma$, call
# `model(x_sigma, sigma * 1000)`, and return the mean squared error against the velocity
# $\epsilon - x_0$. The package's `flow_matching.flow_matching_loss` does the same after drawing
# `eps` and `sigma ~ U[0, 1]` itself; `course_utils.training.train(..., objective="flow_matching")`
# calls it.

# %%
def my_flow_loss(model, x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    x_sigma = fm.interpolate(x0, eps, sigma)  # (B, ...)
    v = model(x_sigma, sigma * 1000)  # (B, ...): the timestep is sigma * T
    return ((v - (eps - x0)) ** 2).mean()  # the target is the velocity eps - x0
    # END SOLUTION


nb08.check_flow_loss(my_flow_loss)

# %% [markdown]
# ## 2. Straight or curved? Two models on a 2-D toy
#
# The pairs of section 1 are straight by construction. But a trained model does not see pairs: at a
# point $x_\sigma$ it only sees the point, and many lines, from many data points to many noises, pass
# through it. The best it can do is predict their **average** velocity, $\mathbb E[\epsilon - x_0 \mid x_\sigma]$.
# Sampling follows the ODE $dx/d\sigma = v_\theta(x, \sigma)$ of that averaged field, from noise at
# $\sigma = 1$ down to $\sigma = 0$, and nothing forces its paths to be straight. Let us measure.
#
# The data: 8 Gaussians on a circle of radius 2. Two copies of the same small MLP (`ToyMLP`), trained
# with the same optimiser, batch, steps and seed: one with DDPM's noise-prediction loss (cosine
# schedule), one with the flow-matching loss.

# %%
TOY_STEPS = config.by_mode(fast=1500, cpu=4000, full=8000)
N_TOY = config.by_mode(fast=2000, cpu=4000, full=4000)
data = make_toy2d("gaussian_mixture", 4000, seed=0).float()  # (4000, 2) training points
real = make_toy2d("gaussian_mixture", N_TOY, seed=1).float()  # (N_TOY, 2) held-out points to compare with
toy_cfg = dict(steps=TOY_STEPS, batch_size=256, lr=2e-3, warmup_steps=20, ema_decay=0.99, log_every=100)
toy = {}
for name, objective in (("DDPM", "diffusion"), ("flow", "flow_matching")):
    torch.manual_seed(0)  # the same initial weights for both
    start = time.perf_counter()
    run = train(ToyMLP(), data, schedule if objective == "diffusion" else None,
                TrainConfig(objective=objective, **toy_cfg), device="cpu", progress=False, value_range=None)
    toy[name] = run.ema_model.eval()
    print(f"{name:5s}: {TOY_STEPS} steps of batch 256 in {time.perf_counter() - start:.1f}s, "
          f"loss {run.losses[0][1]:.3f} -> {run.losses[-1][1]:.3f}")


def toy_sample(name: str, model, steps: int, n: int = N_TOY, seed: int = 1):
    """``(n, 2)`` samples and the ``(steps + 1, n, 2)`` path: DDIM (eta = 0) for DDPM, Euler for a flow."""
    sampler = DDIMSampler(schedule, clip_sample=False) if name == "DDPM" else FlowMatchEulerSampler()
    return sample_loop(model, sampler, (n, 2), steps, generator=torch.Generator().manual_seed(seed),
                       return_trajectory=True)


# %% [markdown]
# Both samplers below are deterministic ODE solvers: DDIM with $\eta = 0$ follows DDPM's
# probability-flow ODE (notebook 03: the deterministic path whose samples have the same
# distribution, at every noise level, as the noisy data's), Euler follows the flow's. With 100 steps each follows its ODE closely, and
# both start from the **same** noise (the same seed). The straightness of a path is its chord over
# its length, $|x_\text{end} - x_\text{start}| / \sum_k |x_{k+1} - x_k|$: 1 for a straight line.

# %%
ODE_STEPS = 100
paths, straight = {}, {}
for name, model in toy.items():
    samples, paths[name] = toy_sample(name, model, ODE_STEPS)
    straight[name] = straightness(paths[name])  # (N_TOY,)
    travel = (paths[name][-1] - paths[name][0]).norm(dim=-1)  # (N_TOY,) chord: how far each sample moved
    print(f"{name:5s} ODE, {ODE_STEPS} steps: straightness mean {straight[name].mean():.3f}, "
          f"median {straight[name].median():.3f}, 10% of paths below {straight[name].quantile(0.1):.3f}; "
          f"mean over the {int((travel > 1).sum())} paths that travel more than 1: "
          f"{straight[name][travel > 1].mean():.3f}")


def draw_paths(ax, path, title, n=80):
    """The first ``n`` paths of a ``(K + 1, B, 2)`` trajectory: grey lines, noise x, sample dot."""
    for i in range(n):
        ax.plot(*path[:, i].T, color="0.55", lw=0.7, alpha=0.8)
    ax.scatter(*path[0, :n].T, marker="x", s=14, c="C3", label="start: noise", zorder=3)
    ax.scatter(*path[-1, :n].T, s=10, c="C0", label="end: sample", zorder=3)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title, xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal")
    ax.legend(fontsize=8, loc="lower right")


fig, axes = plt.subplots(1, 2, figsize=(11, 5.3))
for ax, name in zip(axes, toy):
    solver = "DDIM, eta = 0" if name == "DDPM" else "Euler"
    draw_paths(ax, paths[name], f"{name}: {solver}, {ODE_STEPS} steps\n"
               f"straightness: mean {straight[name].mean():.3f}, median {straight[name].median():.3f}")
fig.suptitle("Sampling paths from the same 80 noises")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the paths show.** The flow's paths are *not* straight lines, and on this data they are not
# straighter than DDPM's on average either (in our `fast` run, a mean of 0.632 for the flow against
# 0.734 for DDPM). The lines printed above say where the difference comes from: among the paths that
# travel far (more than 1), the flow's are the straighter ones (0.868 against 0.832 in our run); it is
# the short paths, from noise that starts near where it ends, that bend the most, because a small
# detour is a large fraction of a short path. And flow paths make that detour for a reason: near
# $\sigma = 1$, $x_\sigma$ says almost nothing about $x_0$, so the best velocity points at the mean
# of the data, the centre of the ring; a noise that starts outside the ring first moves in, then back
# out to its mode once the noise has faded enough to tell which. (DDPM's variance-preserving path
# keeps the sample's size near 1 and has no such dip.) The straight line is a property of each
# *training pair*, not of the learnt sampling paths; section 5 shows how to make the paths straight
# as well.
#
# ### Exercise 3: one Euler step
#
# The flow sampler (`FlowMatchEulerSampler`, numbers identical to diffusers') is Euler's method on
# $dx/d\sigma = v$: from $\sigma$ to the next, smaller level $\sigma_\text{next}$,
#
# $$x_{\sigma_\text{next}} = x_\sigma + (\sigma_\text{next} - \sigma)\, v_\theta(x_\sigma, \sigma).$$
#
# Write `my_euler_step(x, v, sigma, sigma_next)` for one step, with `sigma` and `sigma_next` plain
# numbers (`sigma > sigma_next`) and `x`, `v` shaped `(B, ...)`.

# %%
def my_euler_step(x: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    # BEGIN SOLUTION
    return x + (sigma_next - sigma) * v  # sigma_next < sigma: the step runs against v, towards the data
    # END SOLUTION


nb08.check_euler_step(my_euler_step)

# %% [markdown]
# ### Few steps
#
# Sampling cost is the number of network calls. Now the same two models with 1, 2, 4 and 8 steps,
# from the same noise. Each panel's number is the **sliced Wasserstein distance** to held-out real
# points (`metrics.distances.sliced_wasserstein`: project both clouds on random directions, compare the
# sorted projections; lower is better). Real points against other real points give the floor.

# %%
FEW = (1, 2, 4, 8)
floor_sw = sliced_wasserstein(make_toy2d("gaussian_mixture", N_TOY, seed=2).float(), real)
few = {name: {k: toy_sample(name, model, k)[0] for k in FEW} for name, model in toy.items()}
sw = {name: {k: sliced_wasserstein(x, real) for k, x in by_k.items()} for name, by_k in few.items()}
print(f"sliced Wasserstein to {N_TOY} real points (lower is better; real vs real: {floor_sw:.3f})")
print(f"{'steps':>6} " + " ".join(f"{k:>7}" for k in FEW))
for name in few:
    print(f"{name:>6} " + " ".join(f"{sw[name][k]:>7.3f}" for k in FEW))

fig, axes = plt.subplots(2, len(FEW), figsize=(3.1 * len(FEW), 7.4), sharex=True, sharey=True)
for row, name in zip(axes, few):
    solver = "DDIM" if name == "DDPM" else "Euler"
    for ax, k in zip(row, FEW):
        ax.scatter(*real[:500].T, s=3, c="0.8", label="real")
        ax.scatter(*few[name][k][:500].T, s=3, c="C1" if name == "DDPM" else "C0", label="samples")
        ax.set(title=f"{name}, {solver}-{k}\nSW {sw[name][k]:.3f}", xlim=(-3.5, 3.5), ylim=(-3.5, 3.5),
               aspect="equal")
    row[0].set_ylabel("$x_2$")
    row[0].legend(fontsize=7, loc="lower left", markerscale=3)
for ax in axes[-1]:
    ax.set_xlabel("$x_1$")
fig.suptitle(f"Few-step samples (500 of {N_TOY} shown); SW: sliced Wasserstein to real points, floor {floor_sw:.3f}")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the grid shows.** With one step the flow puts every sample in the middle of the ring:
# Euler's single step is $x_0 = \epsilon - v_\theta(\epsilon, 1)$, and at $\sigma = 1$ the best
# velocity is $\epsilon - \mathbb E[x_0]$, so every sample lands on the mean of the data. Two steps
# are no better, because of how the step grid is laid out (diffusers' choice, which ours copies): $N$
# levels evenly spaced from $\sigma = 1$ down to $1/T = 0.001$, then 0. With $N = 2$ the levels are
# 1, 0.001, 0: one big step and a negligible one. The grid is printed below.
#
# DDIM-1 scores better than flow Euler-1, but not by doing anything useful: with diffusers' default
# `"leading"` spacing its single step runs at $t = 0$ and returns (almost) the noise itself, which
# happens to be closer to the ring than a single point at its centre. (Starting at $t = 999$ instead,
# `"trailing"` spacing, divides by $\sqrt{\bar\alpha_{999}} \approx 5 \times 10^{-5}$ and blows up.)
# With a few more steps both recover the ring; which leads at 4 and 8 steps is in the table above (in
# our `fast` run it was DDPM + DDIM at both: 0.121 and 0.073 against the flow's 0.182 and 0.102).

# %%
for k in FEW:
    euler, ddim = FlowMatchEulerSampler(), DDIMSampler(schedule)
    euler.set_timesteps(k)
    ddim.set_timesteps(k)
    print(f"{k} steps: Euler's sigmas {[round(v, 3) for v in euler.sigmas.tolist()]}; "
          f"DDIM's timesteps {ddim.timesteps.tolist()}")

# %%
nb08.one_step_question()

# %% [markdown]
# ### Build exercise: a flow from scratch
#
# Exercises 1 to 3 wrote the pieces; now assemble them into the two functions that make a
# flow-matching model, the training step and the sampler. The checker then trains the notebook's
# `ToyMLP` with your step, samples it with your sampler and measures how close the samples come to
# the 8 Gaussians, so it grades what your code achieves, not only its formulas.
#
# **`my_flow_train_step(model, optimizer, x0, generator)`**: one training step on a batch `x0` of
# `(B, 2)` points.
#
# 1. Draw `sigma = torch.rand(B, generator=generator)`, one level in $[0, 1)$ per point, **then** the
#    noise `eps = torch.randn(x0.shape, generator=generator)`. Every random number comes from
#    `generator`, in this order (the package's, in `flow_matching_loss`), so the checker can replay them.
# 2. Build $x_\sigma = (1 - \sigma)\,x_0 + \sigma\,\epsilon$ (section 1; `sigma` needs a column axis, `(B, 1)`).
# 3. Predict the velocity `v = model(x_sigma, 1000 * sigma)` and take the loss of Exercise 2,
#    $\operatorname{mean}\big(v - (\epsilon - x_0)\big)^2$.
# 4. `optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`, in that order; return `loss.detach()`.
#
# **`my_euler_sample(model, noise, steps)`**: start from `noise`, `(B, 2)`, at $\sigma = 1$ and take
# $N$ = `steps` Euler steps (Exercise 3) down the even grid $\sigma_k = 1 - k/N$, $k = 0, \dots, N$:
#
# $$x \leftarrow x + (\sigma_{k+1} - \sigma_k)\, v_\theta(x, \sigma_k), \qquad v_\theta(x, \sigma_k) = \texttt{model(x, 1000 * sigma\_k)},$$
#
# one network call per step (the timestep a number, or a `(B,)` tensor). Return the `(B, 2)` samples
# at $\sigma = 0$, and leave `noise` itself unchanged. The package's `FlowMatchEulerSampler` takes the
# same steps on diffusers' grid, printed above (levels from 1 to 0.001, then 0) instead of the even one.
#
# Run the next cell to see what the checker grades, and the thresholds.

# %%
nb08.FLOW_BUILD


# %%
def my_flow_train_step(model, optimizer, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One flow-matching step on ``x0 (B, 2)``; returns the loss, a 0-d tensor."""
    # BEGIN SOLUTION
    sigma = torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype)  # (B,) levels, 1 = noise
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)  # (B, 2)
    s = sigma[:, None]  # (B, 1)
    x_sigma = (1 - s) * x0 + s * eps  # (B, 2), the straight path
    v = model(x_sigma, 1000 * sigma)  # (B, 2), the predicted velocity
    loss = ((v - (eps - x0)) ** 2).mean()  # the target is d x_sigma / d sigma = eps - x0
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
    # END SOLUTION


@torch.no_grad()
def my_euler_sample(model, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Euler's method on dx/dsigma = v from ``noise (B, 2)`` at sigma = 1 to sigma = 0: ``(B, 2)``."""
    # BEGIN SOLUTION
    x = noise.clone()  # (B, 2)
    for k in range(steps):
        sigma, sigma_next = 1 - k / steps, 1 - (k + 1) / steps
        v = model(x, torch.full((x.shape[0],), 1000 * sigma))  # (B, 2)
        x = x + (sigma_next - sigma) * v  # sigma_next < sigma: a step against v, towards the data
    return x
    # END SOLUTION


flow_check = nb08.check_flow_build(my_flow_train_step, my_euler_sample)
flow_check

# %% [markdown]
# From here on the notebook samples with your sampler and trains with your step once the build is
# correct (the package's versions until then). First, your two functions on data they were not graded
# on, two moons: a fresh `ToyMLP` trained with the checker's loop (`nb08.train_toy_flow`: batches of
# 256 drawn with replacement, Adam at lr 0.002, your step on each) for as many steps as the flow of
# section 2, then 20 Euler steps from noise. (No EMA here, unlike section 2's training, so expect a
# few stragglers between the moons.)

# %%
flow_train_step = use_build(flow_check, my_flow_train_step, nb08.package_flow_train_step, "flow-matching training step")
euler_sample = use_build(flow_check, my_euler_sample, nb08.package_euler_sample, "Euler sampler")

moons = make_toy2d("moons", 4000, seed=0)  # (4000, 2) training points
moons_real = make_toy2d("moons", N_TOY, seed=1)  # (N_TOY, 2) held out
moon_flow = nb08.train_toy_flow(flow_train_step, moons, TOY_STEPS)
moon_noise = torch.randn(N_TOY, 2, generator=torch.Generator().manual_seed(3))  # (N_TOY, 2)
moon_samples = euler_sample(moon_flow, moon_noise, 20)  # (N_TOY, 2)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), sharex=True, sharey=True)
for ax, x, title in ((axes[0], moon_noise, "start: noise"), (axes[1], moon_samples, "after 20 Euler steps")):
    ax.scatter(*moons_real[::N_TOY // 800].T, s=3, c="0.8", label="real")  # both moons: the set lists one, then the other
    ax.scatter(*x[:800].T, s=3, c="C0", label="flow")
    ax.set(title=f"{title}\nSW to real {sliced_wasserstein(x, moons_real):.3f}", xlabel="$x_1$", aspect="equal",
           xlim=(-3, 3), ylim=(-3, 3))
axes[0].set_ylabel("$x_2$")
axes[0].legend(fontsize=8, loc="lower left", markerscale=3)
fig.suptitle(f"Two moons: {TOY_STEPS} training steps with the build's step, sampled with its sampler")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Exercise 6 of the course text, measured on digits
#
# The course text asks (Exercise 6): *describe why straight flow trajectories require fewer steps
# than curved DDPM trajectories.* The argument goes like this. An ODE solver with $N$ steps treats
# the velocity as constant over each step. If the true path is a straight line travelled at constant
# speed, that is exact, and one step lands on the end; the more a path bends, the more each step cuts
# the corner, and the more steps it takes to keep the error small. Flow matching trains on straight
# lines, so, the argument goes, its sampling paths are straighter and need fewer steps.
#
# Section 2 already found the weak link: the learnt paths bend wherever different data share the same
# noisy point. So measure it. `digits-ddpm` (DDPM, epsilon prediction, cosine schedule) and
# `digits-flow` (flow matching) share the U-Net, the data, the 6,000 training steps, the batch size
# and the learning rate; both are unconditional. We sample them with DDIM and Euler at several step
# counts, from the same seed.
#
# Quality is measured as in notebook 07: **digits-FID** and **KID** of the samples against real
# digits, in the feature space of the course's digit classifier (lower is better). FID is defined
# at N = 898 samples, the count of its real-vs-real floor; in `fast` mode we draw only 64, so the
# FIDs printed there are computed with `require_n=False`, run high, and are **not comparable** with
# the floor or with the reference figures below. KID has no such bias, so it is the number to read
# at small N.

# %%
N_DIGITS = config.by_mode(fast=64, cpu=metrics.NUM_SAMPLES, full=metrics.NUM_SAMPLES)
DIGIT_STEPS = config.by_mode(fast=(2, 4, 8, 16), cpu=(2, 4, 8, 16, 32), full=(2, 4, 8, 10, 16, 20, 32, 50))
digit_models = {"DDIM (digits-ddpm)": (pretrained.load("digits-ddpm", device=DEVICE), "ddim"),
                "flow Euler (digits-flow)": (pretrained.load("digits-flow", device=DEVICE), "euler")}
digits, digit_q = {}, {}
for name, (model, sampler) in digit_models.items():
    for k in DIGIT_STEPS:
        start = time.perf_counter()
        x = model.sample(N_DIGITS, steps=k, sampler=sampler, generator=torch.Generator().manual_seed(0))
        digits[name, k] = x
        digit_q[name, k] = {"fid": metrics.digits_fid(x, require_n=N_DIGITS == metrics.NUM_SAMPLES),
                            "kid": metrics.digits_kid(x)[0], "seconds": time.perf_counter() - start}
fid_label = "digits-FID" if N_DIGITS == metrics.NUM_SAMPLES else f"FID at N = {N_DIGITS} (not the 898 FID)"
print(f"{N_DIGITS} unconditional samples per point, seed 0")
print(f"{'sampler':32s} {'steps':>5} {'KID':>8} {fid_label:>28} {'time':>6}")
for (name, k), q in digit_q.items():
    print(f"{name:32s} {k:>5} {q['kid']:>8.4f} {q['fid']:>28.3f} {q['seconds']:>5.1f}s")
print(f"real vs real (the floor, N = 898): FID {metrics.floor()['fid']:.3f}, KID {metrics.floor()['kid']:.4f}")

# %% [markdown]
# The reference figures come from notebook 09's reference run (`benchmarks/fast_sampling.py`, the
# machine and date printed below): the same two checkpoints at N = 898, seed 0. They are drawn as hollow
# markers in the FID panel (and compared directly only in `cpu` and `full` mode, where this notebook's
# FIDs are at N = 898 too).

# %%
reference_run = speed.reference_table()
REFERENCE = {name: {r["steps"]: r["fid"] for r in reference_run["rows"]
                    if r["model"] == model.info["name"] and r["sampler"] == sampler and r["label"] != "DDPM-1000"}
             for name, (model, sampler) in digit_models.items()}
print(f"reference run: {reference_run['device']}, {reference_run['date']}, N = {reference_run['n']}")
for name, fids in REFERENCE.items():
    print(f"  {name}: " + ", ".join(f"{k} steps {v:.3f}" for k, v in fids.items()))
fig, (ax_kid, ax_fid) = plt.subplots(1, 2, figsize=(12, 4.3))
for color, name in zip(("C1", "C0"), digit_models):
    ks = list(DIGIT_STEPS)
    ax_kid.plot(ks, [digit_q[name, k]["kid"] for k in ks], "o-", color=color, label=f"{name}, N = {N_DIGITS}")
    ax_fid.plot(ks, [digit_q[name, k]["fid"] for k in ks], "o-", color=color, label=f"{name}, N = {N_DIGITS}")
    ref = REFERENCE[name]
    ax_fid.plot(list(ref), list(ref.values()), "s--", mfc="none", color=color,
                label=f"{name.split(' (')[0]}: reference, N = 898")
ax_fid.axhline(metrics.floor()["fid"], color="0.4", ls=":", label="real vs real (N = 898)")
ax_kid.axhline(metrics.floor()["kid"], color="0.4", ls=":", label="real vs real (N = 898)")
ax_kid.set_yscale("symlog", linthresh=0.01)  # log above 0.01, linear through 0: KID can dip below 0 by chance
ax_kid.set(ylabel="KID (lower is better; log above 0.01)", title="KID against steps")
ax_fid.set(ylabel=f"{fid_label} (lower is better)", yscale="log", title="FID against steps")
for ax in (ax_kid, ax_fid):
    ax.set(xlabel="sampler steps (network calls)", xscale="log")
    ax.set_xticks(sorted(set(DIGIT_STEPS) | {10, 20, 50} if ax is ax_fid else set(DIGIT_STEPS)))
    ax.set_xticklabels([str(t) for t in ax.get_xticks()])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
fig.suptitle("Same U-Net, data and budget: DDPM + DDIM against flow matching + Euler (unconditional)")
fig.tight_layout()
plt.show()

# %%
show_k = DIGIT_STEPS[:4]
fig, axes = plt.subplots(2, len(show_k), figsize=(2.9 * len(show_k), 6.8), layout="constrained")
for row, name in zip(axes, digit_models):
    for ax, k in zip(row, show_k):
        title = f"{name.split(' (')[0]}-{k}\nKID {digit_q[name, k]['kid']:.3f}"
        show_images(digits[name, k][:16], nrow=4, ax=ax, title=title)
fig.suptitle("The first 16 samples at each step count (the same noise in every panel)")
plt.show()

# %%
ddim_name, flow_name = digit_models
for k in DIGIT_STEPS:
    d, f = digit_q[ddim_name, k]["kid"], digit_q[flow_name, k]["kid"]
    print(f"{k:>2} steps: KID DDIM {d:.4f}, flow Euler {f:.4f} -> lower: {'flow Euler' if f < d else 'DDIM'}")

# %% [markdown]
# **What the plot shows, and the answer to Exercise 6.** At 2 steps flow Euler collapses (its grid
# makes it one real step, as on the toy): every sample is the same blurry average digit, the mean of the
# data, as Question A predicts; DDIM-2 is merely noisy. From 8 steps on the flow is ahead. In the
# reference figures at N = 898, flow Euler at 8 steps (0.262) beats DDIM at 10 (0.524) and at 20 (0.298),
# and at 16 steps (0.129) it is below DDIM at 50 (0.235) and at the real-vs-real floor (0.179): about
# half the steps or fewer for the same quality. At 4 steps (1.97) it is still far off. With 64 samples
# (`fast` mode) neighbouring points differ by less than the noise of the measurement; run in `cpu` mode
# for the 898-sample version.
#
# So the two-paragraph answer to the course text's question is, in our words: *an ODE solver errs in
# proportion to how much the path bends within a step, so straight paths need fewer steps, and at the
# limit one. Flow matching trains on straight conditional paths, but the field it learns averages
# over all the pairs that cross each point, and its sampling paths bend where the data has several
# modes: towards the mean first, then off to one mode. So it saves steps, but not down to one: on
# digits, Euler on the flow needs about half of DDIM's steps on a DDPM trained the same way (part of
# that from the time sampling of section 4), and on 8 Gaussians it was no straighter than DDIM, which is
# itself Euler's method on DDPM's ODE in a well-chosen time variable (Song et al. 2021). What makes
# paths straight enough for one or two steps is a coupling in which they do not cross: reflow, below,
# or a distilled student.* (The latent consistency model paper that the exercise cites takes the second
# road; notebook 09 follows it.)
#
# ## 4. Which noise levels to train on: SD3's logit-normal times and shift
#
# The loss of Exercise 2 draws $\sigma$ uniformly from $[0, 1]$: every noise level gets the same share of
# the training examples. But they are not equally hard. Near $\sigma = 0$ the noisy point is almost the
# image, and near $\sigma = 1$ almost the noise, so either way the velocity $\epsilon - x_0$ is nearly
# known from $x_\sigma$ alone; in the middle, many images and noises could have made the same point,
# and the network must learn their average. Esser et al. (2024, "Scaling Rectified Flow Transformers
# for High-Resolution Image Synthesis", the Stable Diffusion 3 paper) compared many ways of drawing
# $\sigma$ and kept **logit-normal** sampling,
#
# $$\sigma = \operatorname{sigmoid}(n), \qquad n \sim \mathcal N(m, s^2) \quad (m = 0,\ s = 1:\ \texttt{rf/lognorm(0, 1)}),$$
#
# which puts most examples at middle noise and few at the ends. Their second change is the **timestep
# shift**, $\sigma \mapsto \frac{a\,\sigma}{1 + (a - 1)\,\sigma}$ (their Eq. 23, $a = 3$ for SD3): a
# larger image keeps more of its structure at the same $\sigma$ (neighbouring pixels repeat each other),
# so it needs more noise before the picture is gone, and the shift moves every level towards the noise,
# at training and at sampling alike. Both are options of the package: `fm.sample_sigmas` draws the
# levels, and `TrainConfig(time_sampling="logit_normal", time_shift=3.0)` trains with them.

# %%
draws = {"uniform": fm.sample_sigmas(100_000, torch.Generator().manual_seed(0)),
         "logit-normal (0, 1)": fm.sample_sigmas(100_000, torch.Generator().manual_seed(0),
                                                  time_sampling="logit_normal"),
         "logit-normal, shift 3": fm.sample_sigmas(100_000, torch.Generator().manual_seed(0),
                                                    time_sampling="logit_normal", shift=3.0)}
fig, (ax_hist, ax_shift) = plt.subplots(1, 2, figsize=(11, 3.4))
for name, sig in draws.items():
    ax_hist.hist(sig.numpy(), bins=50, range=(0, 1), density=True, histtype="step", lw=1.5, label=name)
ax_hist.set(xlabel="training noise level sigma (0: data, 1: noise)", ylabel="density",
            title="How often each noise level is trained")
ax_hist.legend(fontsize=8)
grid = torch.linspace(0, 1, 101)
for a in (1.0, 3.0, 6.0):
    ax_shift.plot(grid, fm.shift_sigma(grid, a), label=f"shift {a:g}")
ax_shift.set(xlabel="sigma", ylabel="shifted sigma", title="The timestep shift moves levels towards the noise")
ax_shift.legend(fontsize=8)
fig.tight_layout()
plt.show()
for name, sig in draws.items():
    print(f"{name:22s}: {((sig > 0.25) & (sig < 0.75)).float().mean():.0%} of the examples at 0.25 < sigma < 0.75")

# %% [markdown]
# Does it pay? First a short run on the toy of section 2: the uniform flow trained there, and the same
# network, data, budget and seed trained with logit-normal levels, and with the shift on top (sampled
# with the same shift, as SD3 is). The number is the sliced Wasserstein distance to the real points at
# 4, 8 and 16 Euler steps.

# %%
TIME_ARMS = {"uniform": {}, "logit-normal": {"time_sampling": "logit_normal"},
             "logit-normal + shift 3": {"time_sampling": "logit_normal", "time_shift": 3.0}}
time_flows = {"uniform": toy["flow"]}
for name, options in list(TIME_ARMS.items())[1:]:
    torch.manual_seed(0)  # the same initial weights as the uniform flow
    run = train(ToyMLP(), data, None, TrainConfig(objective="flow_matching", **toy_cfg, **options), device="cpu",
                progress=False, value_range=None)
    time_flows[name] = run.ema_model.eval()
time_sw = {}
for name, model in time_flows.items():
    shift = TIME_ARMS[name].get("time_shift", 1.0)
    for k in (4, 8, 16):
        x = sample_loop(lambda x, t, m=model: m(x, t), FlowMatchEulerSampler(shift=shift), (N_TOY, 2), k,
                        generator=torch.Generator().manual_seed(1))
        time_sw[name, k] = sliced_wasserstein(x, real)
print(f"toy, {TOY_STEPS} training steps each; sliced Wasserstein (real vs real {floor_sw:.3f})")
print(f"{'training times':24s} " + " ".join(f"{'Euler-' + str(k):>9}" for k in (4, 8, 16)))
for name in time_flows:
    print(f"{name:24s} " + " ".join(f"{time_sw[name, k]:>9.3f}" for k in (4, 8, 16)))

# %% [markdown]
# A 2-D toy is a weak judge of a recipe made for megapixel images, so here is the same comparison on
# digits, stored: benchmark 9 (`benchmarks/training_recipes.py flow-times`) trains the digits U-Net three
# times with the flow loss (2,000 steps of batch 64 each, on a CPU), the time sampling the only
# difference, and scores N = 898 Euler samples of each with digits-FID. `digits-flow`, the shipped model,
# is the logit-normal recipe trained for the full budget.

# %%
recipes_run = stored_run("training_recipes")  # benchmarks/results/training_recipes.json; None outside the repository
if recipes_run is not None:
    entry = recipes_run["flow-times"]
    print(f"stored run: {entry['budget']}; {entry['device']}, {entry['date']}; "
          f"real vs real digits-FID {entry['floor_fid']:.3f}")
    print(f"{'training times':24s} " + " ".join(f"{'Euler-' + k:>14}" for k in entry["arms"][0]["euler"]))
    for arm in entry["arms"]:
        print(f"{arm['label']:24s} " + " ".join(f"{v['fid']:>7.3f} ({v['fid'] / entry['floor_fid']:.1f}x)"
                                                for v in arm["euler"].values()))

# %% [markdown]
# What the stored run says (one seed, N = 898, floor 0.179): **logit-normal times halve the few-step
# error.** Euler-8 falls from 0.767 with uniform times to 0.370, Euler-4 from 4.08 to 1.60, Euler-16 from
# 0.351 to 0.249, for the same network, data, steps and seed. The model learns the middle noise levels,
# where samples are decided, better, and loses little at the ends, where the velocity is easy. The shift
# of 3 undoes the gain here (0.711 at Euler-8): it moves training and sampling towards the noise, which
# a 1,024-pixel image of SD3 needs and a 16-by-16 digit does not. The toy above, a 2-D cloud with no
# resolution at all, pointed the same way in our fast-mode run, on a smaller scale (your run's numbers
# are printed there). That is why `digits-flow`, the model notebook 09 samples, is trained with
# logit-normal times and no shift.
#
# ## 5. Reflow: straightening the paths
#
# Liu, Gong and Liu (2022, "Flow straight and fast", ICLR 2023) name the problem and fix it. The
# averaged field bends because the training pairs $(x_0, \epsilon)$ are drawn **independently**, so
# their lines cross. But a trained flow gives a better coupling for free: run its ODE from each
# noise $\epsilon$ and pair the noise with where it lands, $x_0 = \text{ODE}(\epsilon)$. ODE paths
# never cross, so the straight lines between these pairs rarely cross either; a flow retrained on
# them (here: fine-tuned from the first one, cheaper than starting afresh) learns paths that are
# nearly those straight lines. This is **reflow**, and the new model is the *2-rectified flow*. It keeps sampling the same distribution, up to the error of the first
# model's ODE, and its paths can be followed in one step.
#
# The pairs come from the build's Euler sampler, 100 steps from each noise (yours once the build is
# correct; until then the package's, what `reflow.reflow_pairs(model, noise, steps)` runs);
# `reflow.fit_pairs(model, x0, noise, steps)` trains on them with the loss of Exercise 2 but the
# noise of each pair kept (`paired_flow_loss`).

# %%
REFLOW_STEPS = TOY_STEPS
start = time.perf_counter()
noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2))  # (4000, 2), new noise
pair_x0, pair_noise = euler_sample(toy["flow"], noise, ODE_STEPS), noise  # (4000, 2) each: (ODE end, its noise)
reflowed = copy.deepcopy(toy["flow"])  # fine-tune the first flow rather than start afresh
reflow_losses = reflow.fit_pairs(reflowed, pair_x0, pair_noise, steps=REFLOW_STEPS, lr=1e-3)
reflowed.eval()
print(f"reflow: 4000 pairs from a {ODE_STEPS}-step ODE, {REFLOW_STEPS} steps of fine-tuning in "
      f"{time.perf_counter() - start:.1f}s; loss {reflow_losses[0]:.3f} -> {sum(reflow_losses[-50:]) / 50:.4f} "
      "(mean of the last 50)")

# %% [markdown]
# The loss tells the story already. The first flow's loss cannot go much below the variance of
# $\epsilon - x_0$ given $x_\sigma$, because independent pairs make the target random; with coupled
# pairs the target is (almost) a function of $x_\sigma$, and the loss falls close to zero.
#
# ### Exercise 4: straightness
#
# Write `my_straightness(trajectory)`: `trajectory` is `(K + 1, B, ...)`, the starting noise and then
# every point the sampler visited (`sample_loop(..., return_trajectory=True)`); return `(B,)`, each
# path's chord over its length. Flatten each point to a vector first, so the same code serves points
# and images.

# %%
def my_straightness(trajectory: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    flat = trajectory.flatten(2)  # (K + 1, B, D)
    chord = (flat[-1] - flat[0]).norm(dim=-1)  # (B,)
    length = (flat[1:] - flat[:-1]).norm(dim=-1).sum(0)  # (B,)
    return chord / length
    # END SOLUTION


nb08.check_straightness(my_straightness)

# %% [markdown]
# Now the comparison: the same noise, the first flow against the reflowed one, measured with the
# package's `straightness` (the one your function was checked against), and the quality of 1-, 2- and
# 4-step Euler samples.

# %%
flows = {"flow": toy["flow"], "reflowed flow": reflowed}
reflow_paths, reflow_sw = {}, {}
for name, model in flows.items():
    _, reflow_paths[name] = toy_sample("flow", model, ODE_STEPS)
    s = straightness(reflow_paths[name])
    reflow_sw[name] = {k: sliced_wasserstein(toy_sample("flow", model, k)[0], real) for k in (1, 2, 4, ODE_STEPS)}
    print(f"{name:14s} straightness mean {s.mean():.3f}, median {s.median():.3f}; sliced Wasserstein "
          + ", ".join(f"Euler-{k} {v:.3f}" for k, v in reflow_sw[name].items()))
print(f"(real vs real: {floor_sw:.3f})")

fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
for ax, name in zip(axes[:2], flows):
    s = straightness(reflow_paths[name])
    draw_paths(ax, reflow_paths[name], f"{name}: Euler, {ODE_STEPS} steps\nstraightness mean {s.mean():.3f}")
one_step = {name: toy_sample("flow", model, 1)[0] for name, model in flows.items()}
axes[2].scatter(*real[:800].T, s=3, c="0.8", label="real")
for color, (name, x) in zip(("C0", "C2"), one_step.items()):
    axes[2].scatter(*x[:800].T, s=3, c=color, label=f"{name}, SW {reflow_sw[name][1]:.3f}")
axes[2].set(xlabel="$x_1$", ylabel="$x_2$", title="One Euler step from the same noise", xlim=(-3.5, 3.5),
            ylim=(-3.5, 3.5), aspect="equal")
axes[2].legend(fontsize=8, loc="lower right", markerscale=3)
fig.suptitle("Reflow: the paths become straight, and one step is enough")
fig.tight_layout(rect=(0, 0, 1, 0.95))
plt.show()

# %%
nb08.reflow_question()

# %% [markdown]
# **What reflow costs.** Nothing at sampling time, a good deal before: an ODE solve per training
# pair (here 100 network calls each) and a second training run. The pairs also inherit the first
# flow's errors, so the 2-rectified flow can only be as good as the ODE that produced them; Liu et al.
# then **distil** the reflowed model into a one-step generator for the last bit of quality. Stable
# Diffusion 3 uses flow matching without reflow (and many steps); InstaFlow (Liu et al., ICLR 2024) reflowed
# Stable Diffusion to reach one step.
#
# Reflow is one road to one or two steps. The other, in [notebook 09](09_fast_sampling.ipynb), keeps
# the DDPM teacher as it is and **distils** it into a consistency student, a network trained to jump
# from any point of the teacher's ODE path straight to its end.
#
# ## Summary
#
# - Flow matching joins data and noise with a straight line, $x_\sigma = (1 - \sigma)\,x_0 + \sigma\,\epsilon$
#   ($\sigma = 1$ is noise, as in diffusers), and regresses the velocity $\epsilon - x_0$. Sampling
#   integrates $dx/d\sigma = v_\theta$ from 1 down to 0; Euler's step is
#   $x + (\sigma_\text{next} - \sigma)\,v$.
# - The whole recipe fits in two short functions, which you wrote: a training step (draw $\sigma$ and
#   $\epsilon$, regress the velocity, step the optimiser) and Euler's loop from $\sigma = 1$ to 0; a
#   toy flow trained with them reaches the package's sliced Wasserstein distance on the same budget.
# - Each training path is straight, but the learnt field averages the lines that cross each point,
#   and its sampling paths bend: towards the mean of the data first, then to a mode. We measured them
#   on the toy, no straighter there than DDIM's.
# - On digits, with the same U-Net, data and budget, flow Euler needs about half of DDIM's steps for
#   the same quality from 8 steps on, and collapses to the mean image at 2 (the plot of section 3).
# - Which noise levels a flow trains on matters: SD3's logit-normal sampling puts the examples at
#   middle noise, and its shift moves them towards the noise (section 4 measures both).
# - Reflow retrains the flow on (noise, ODE endpoint) pairs; their lines do not cross, the new paths
#   are nearly straight, and one Euler step gives samples close to the many-step ones.
#
# ## What comes next
#
# [Notebook 09](09_fast_sampling.ipynb) takes the other road to few-step sampling: it distils the
# DDPM `digits-ddpm` into a consistency student that samples in one or two steps, and
# compares the speed-ups of the course's samplers.

# %%
print(f"this notebook's compute in {MODE} mode: {time.perf_counter() - NOTEBOOK_START:.0f}s "
      f"on {torch.get_num_threads()} threads")
