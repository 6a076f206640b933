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
# # 09 · Fast sampling: DDIM, DPM-Solver++ and distillation
#
# A DDPM draws an image in 1,000 steps, and every step is one full pass of the network. That is the
# price of the small, noisy steps of notebook 03, and the first thing anyone deploying a diffusion
# model wants to cut. There are three ways to pay less, and this notebook measures all three on our
# own models, on the same machine, with the same seeds:
#
# 1. **Take bigger steps along a smooth path.** DDIM (Song et al. 2021) turns the same trained
#    network into a deterministic sampler that follows the probability-flow ODE (notebook 03, section 8:
#    the noise-free path that ends in the same distribution as DDPM's); 50 steps instead of 1,000.
# 2. **Take smarter steps.** DPM-Solver++ (Lu et al. 2022) solves that ODE with a second-order
#    multistep method: 10 to 20 steps. Karras et al. 2022 put the steps where they matter, and solve the
#    same ODE with Heun's method.
# 3. **Train a new network that needs almost no steps.** Consistency distillation (Song et al. 2023)
#    teaches a student to jump from any point of the teacher's path straight to its end: 1 to 4 steps.
#    LCM, SDXL-Turbo and FLUX-Schnell are built on this idea or its relatives.
#
# Then you put them side by side in one table, the course text's Exercise 5 made real: quality and wall time
# for DDPM-1000, DDIM, DPM-Solver++, Euler and Heun on Karras et al.'s noise levels, a flow-matching
# model with Euler steps, and the distilled student. All of them draw from strong models (one network,
# trained on the digits for 6,000 steps, as a diffusion model and as a flow), so the table can judge
# every sampler against the data itself: the digits-FID of real digits against other real digits.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | distillation | digits per sampler | time |
# |---|---|---|---|
# | `fast` | 3 steps to prove the loop, then the shipped student | 8 per picture, 2 per row of the speed table (timing is real; quality that small is only a rough guide) | under a minute |
# | `cpu` | a quarter of the student's recipe (500 steps) | 300 per picture and per row of the speed table | about 7 minutes on a laptop |
# | `full` | the whole recipe | 898 | not yet measured on a GPU |
#
# Three coding exercises, two build exercises (the whole DPM-Solver++ sampler, graded by its agreement with
# diffusers' scheduler and by the digits it draws; Karras et al.'s noise levels, graded by their values and
# by the digits Heun draws through them) and two questions, each with an automatic checker.

# %%
import copy
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import config, metrics, pretrained
from course_utils.course import speed
from course_utils.data import load_digits
from course_utils.course.exercises import nb09, use_build
from course_utils.pipeline import DiffusionModel
from course_utils.profiling import time_call
from course_utils.recipes import get_recipe
from course_utils.samplers.consistency import boundary_scalings
from course_utils.training import train
from course_utils.viz import show_images
from course_utils.course.widgets import SamplerExplorer
from course_utils.denoisers import ClampX0, WithCondition
from course_utils.guidance import ClassifierFreeGuidance
from course_utils.samplers import DDIMSampler, karras_sigmas, sample_loop
from course_utils.samplers.karras import training_sigmas

MODE, DEVICE = config.get_mode(), config.get_device()
N_LIVE = config.by_mode(fast=8, cpu=300, full=metrics.NUM_SAMPLES)  # cpu: enough for KID to say something
# fast mode times the speed table on 2 digits per row: its DDPM-1000 row alone takes 40 s at 8 on one core
N_TABLE = config.by_mode(fast=2, cpu=300, full=metrics.NUM_SAMPLES)  # cpu: KID is sound at 300; FID needs 898
# digits the DPM-Solver++ build draws at 10 steps for its quality check (and the package's sampler as many)
N_BUILD = config.by_mode(fast=64, cpu=metrics.NUM_SAMPLES, full=metrics.NUM_SAMPLES)
# DDPM-1000 on 898 digits is 1,000 calls at batch 898: 51 minutes on one core in the reference run,
# more than the rest of the table together; at cpu mode's 300 digits still several minutes. cpu mode
# leaves that row out (set True to time it too); at N = 898 a left-out row is copied from the reference run.
LIVE_DDPM = config.by_mode(fast=True, cpu=False, full=True)
print(config.describe())
print(f"{N_LIVE} digits per sampler in this run's pictures, {N_TABLE} per row of its speed table"
      + ("" if LIVE_DDPM else " (DDPM-1000's row " + ("from the reference run)" if N_TABLE == metrics.NUM_SAMPLES
                                                      else "left out: set LIVE_DDPM = True to time it)")))



def kid_note(x):
    """' (KID x 1000 = ...)' for a sample large enough to say something (cpu and full mode), else ''."""
    return f"\nKID x 1000 = {1000 * metrics.digits_kid(x)[0]:.1f}" if len(x) >= 100 else ""


teacher = pretrained.load("digits-ddpm", device=DEVICE)  # unconditional; the student's teacher below
print(teacher)
print(f"card: {teacher.info['card']['steps']} training steps; digits-FID {teacher.info['card']['metric']['digits_fid']:.3f} "
      f"with {teacher.info['card']['metric']['sampler']}, against {metrics.floor()['fid']:.3f} for real digits")

# %% [markdown]
# ## 1. Where the time goes
#
# Every sampler in this notebook spends nearly all its time in one place: calls of the network.
# Everything else (a few multiplications per pixel per step) is noise next to them. So the cost of a
# sampler is, to a very good approximation,
#
# $$\text{time} \approx \text{NFE} \times \text{time of one network call},$$
#
# where NFE, the *number of function evaluations*, is the number of network calls per image. Let us
# time one call of our digits U-Net for a batch of the size this run's speed table (section 5) uses.

# %%
x_probe = torch.randn(N_TABLE, 1, 16, 16, device=DEVICE)
t_probe = torch.tensor(500, device=DEVICE)
call_s = time_call(lambda: teacher.denoiser(x_probe, t_probe), repeats=5, device=DEVICE)
print(f"one U-Net call on {N_TABLE} digits: {1000 * call_s:.1f} ms (median of 5)")
for name, nfe in (("DDPM-1000", 1000), ("DDIM-50", 50), ("DPM-Solver++-20", 20), ("student-2", 2)):
    print(f"  {name:16s} {nfe:5d} calls -> about {nfe * call_s:6.2f} s for {N_TABLE} digits")

# %% [markdown]
# The course text lists the shortcuts used in practice (step counts as usually quoted for Stable
# Diffusion-sized models):
#
# | method | steps | quality loss | idea |
# |---|---|---|---|
# | DDPM | 1000 | baseline | small stochastic steps |
# | DDIM | 20-50 | minimal | deterministic, follows the ODE |
# | DPM-Solver++ | 15-25 | minimal | a better ODE solver |
# | LCM (distillation) | 4-8 | small | consistency-distilled from Stable Diffusion |
# | SDXL-Turbo | 1-4 | moderate | adversarial distillation |
# | consistency model | 1-4 | moderate | one step possible |
# | FLUX-Schnell | 4 | small | flow matching + distillation |
#
# We will measure our own version of every row we can: DDPM, DDIM, DPM-Solver++, a consistency
# student, and flow matching with Euler steps. The published reference point, CIFAR-10 in Table 1
# of the DDIM paper (Song et al. 2021): deterministic DDIM ($\eta = 0$) reaches FID 4.67 in 50 steps
# against 4.04 in 1,000, about 16% worse for 20x fewer calls. DDPM's own sampler (the row with its
# larger variance) reaches 3.17 in 1,000 steps but 32.72 in 50: it needs its whole chain.
#
# ## 2. DDIM, and the knob `eta`
#
# DDIM rewrites the reverse step in terms of the model's two predictions, the clean image
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ and the noise
# $\hat\epsilon$, and moves to the previous timestep $t'$ of a coarse grid (Eq. (12) of the paper):
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\;\hat\epsilon + \sigma_t z,
# \qquad \sigma_t = \eta\sqrt{\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}\Big)}.$$
#
# With $\eta = 0$ no noise is added: the step is deterministic, and the same starting noise always
# gives the same image. With $\eta = 1$ the added noise has DDPM's posterior variance, and on the full
# 1,000-step grid the step *is* DDPM's. The term $\sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}$ keeps the
# total variance right: whatever fresh noise you add is taken from the share of the old noise.
#
# ### Exercise 1: the DDIM update
#
# Write the step above. `a_t` and `a_prev` are the floats $\bar\alpha_t$ and $\bar\alpha_{t'}$;
# `noise` is $z$, already drawn.

# %%
def my_ddim_step(x_t, eps, a_t, a_prev, eta, noise):
    """x_t, eps, noise: (B, C, H, W); a_t, a_prev, eta: floats -> x_{t'} (B, C, H, W)."""
    # BEGIN SOLUTION
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps + sigma * noise
    # END SOLUTION


nb09.check_ddim_step(my_ddim_step)

# %% [markdown]
# The package's `DDIMSampler` is this step (and matches diffusers' `DDIMScheduler` to float precision,
# `tests/test_parity_diffusers.py`). Here is what `eta` does with 20 steps, from the same seed:

# %%
eta_samples = {}
for eta in (0.0, 0.5, 1.0):
    eta_samples[eta] = teacher.sample(N_LIVE, steps=20, eta=eta, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 3, figsize=(15, 3.2))
for ax, (eta, x) in zip(axes, eta_samples.items()):
    show_images(x[:16], nrow=8, ax=ax, title=f"DDIM-20, eta = {eta:g}{kid_note(x)}")
fig.suptitle("The same seed, three values of eta")
fig.tight_layout()
plt.show()
same = (eta_samples[0.0] - teacher.sample(N_LIVE, steps=20, eta=0.0, generator=torch.Generator().manual_seed(0)))
print(f"eta = 0 twice from the same seed: largest pixel difference {same.abs().max().item():.2g} (deterministic)")

# %% [markdown]
# Once $\eta > 0$ the same seed gives different digits: every step draws fresh noise. At 20 steps
# that noise costs something here: on 898 digits (seed 0, a stored run on a CPU) digits-FID was 0.30
# at $\eta = 0$, 0.47 at 0.5 and 0.33 at 1, against 0.18 for real digits. What $\eta = 0$ buys above all is determinism: one noise, one image. It is also the step that follows
# the probability-flow ODE, which DPM-Solver++ and distillation below solve in better ways. That ODE
# does not come from choosing $\eta$: every diffusion model has one, whatever sampler drew from it
# before (`eta` only picks how much fresh noise a step adds).

# %% [markdown]
# ### Where the grid starts: one step that is noise, and one that is a digit
#
# Which timesteps a sampler visits matters most when there are few of them. diffusers' default
# ("leading" spacing) takes every $(T/k)$-th timestep counting up from 0, so its first step is
# $t = (k-1)\lfloor T/k \rfloor$: 980 for 50 steps, 500 for two, and for **one step, $t = 0$**: the
# model is told that pure noise is an almost clean image, and hands the noise back. "Trailing"
# spacing counts down from the noisy end instead (Table 2 of Lin et al. 2024). `DiffusionModel.sample`
# does so below 10 steps (from 10 steps on, the two grids start within a tenth of $T$ of each other),
# from the noisiest timestep whose $\hat x_0$ a noise prediction still pins down: $t = 953$, the last
# with $\bar\alpha_t \ge 0.005$. Above it the cosine schedule's $\bar\alpha_t$ falls to $2.4\times10^{-9}$,
# and $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ would multiply the
# network's error by up to 20,000. Below, the same seed and the same network, with both grids: notebook
# 05's class-conditional `digits-class`, guided at $w = 3$, so that the titles can say how many of the 20
# digits the classifier reads as the digit asked for (chance: 10%).

# %%
few_labels = torch.arange(10).repeat(2)  # (20,): two of each digit
class_model = pretrained.load("digits-class", device=DEVICE)  # notebook 05's class-conditional model
guided = ClampX0(WithCondition(ClassifierFreeGuidance(class_model.denoiser, 3.0), DEVICE, class_labels=few_labels),
                 class_model.schedule, "epsilon")  # what model.sample steps on: guidance, the condition, the x0 clamp
fig, axes = plt.subplots(2, 3, figsize=(15, 4.4))
for col, k in enumerate((1, 2, 4)):
    leading = sample_loop(guided, DDIMSampler(class_model.schedule, clip_sample=False), (20, 1, 16, 16), k,
                          generator=torch.Generator().manual_seed(0), device=DEVICE).clamp(-1, 1).cpu()
    trailing = class_model.sample(20, steps=k, labels=few_labels, guidance_scale=3.0,
                                  generator=torch.Generator().manual_seed(0))
    for row, (name, x) in enumerate((("leading", leading), ("trailing, model.sample", trailing))):
        show_images(x, nrow=10, ax=axes[row, col],
                    title=f"DDIM-{k}, {name}: {metrics.class_adherence(x, few_labels):.0%} read as asked")
fig.suptitle("The same seed and network; only the timestep grid differs")
fig.tight_layout()
plt.show()

# %%
nb09.few_steps_question()

# %% [markdown]
# ## 3. DPM-Solver++: a better solver for the same ODE
#
# DDIM is the simplest (first-order) solver of the probability-flow ODE. Lu et al. noticed that the
# ODE becomes much nicer in the variable $\lambda = \log(\sqrt{\bar\alpha}/\sqrt{1-\bar\alpha})$, half
# the log signal-to-noise ratio: written for the data prediction $D = \hat x_0$ it has an exactly
# solvable linear part, so only $D$ has to be approximated. With $\alpha = \sqrt{\bar\alpha}$,
# $s = \sqrt{1-\bar\alpha}$ and the step $h = \lambda_t - \lambda_s$:
#
# - first order (this is DDIM again): $x_t = \frac{s_t}{s_s} x_s - \alpha_t (e^{-h} - 1)\, D_s$;
# - second order, **2M** (multistep): reuse the previous step's prediction $D_{prev}$ to estimate how
#   $D$ changes along the step, $D' = D_s + \frac{1}{2r}(D_s - D_{prev})$ with
#   $r = (\lambda_s - \lambda_{prev})/h$, and use $D'$ in place of $D_s$.
#
# The correction costs nothing: $D_{prev}$ was computed anyway. The first step (no previous $D$) and
# the last (to $\bar\alpha = 1$) are first order. The samplers index noise levels by
# $\sigma = s / \alpha = \sqrt{(1-\bar\alpha)/\bar\alpha}$; `nb09.alpha_and_s(sigma)` gives
# $(\alpha, s)$ and `nb09.half_log_snr(sigma)` gives $\lambda = -\log\sigma$.
#
# ### Exercise 2: the DPM-Solver++(2M) update

# %%
def my_dpm_update(x, d, d_prev, sigma_prev, sigma_s, sigma_t):
    """x, d = D_s, d_prev = D_prev: (B, C, H, W); sigmas: floats, sigma_prev > sigma_s > sigma_t -> x_t."""
    # BEGIN SOLUTION
    alpha_t, s_t = nb09.alpha_and_s(sigma_t)
    _, s_s = nb09.alpha_and_s(sigma_s)
    lam_prev, lam_s, lam_t = (nb09.half_log_snr(v) for v in (sigma_prev, sigma_s, sigma_t))
    h = lam_t - lam_s
    r = (lam_s - lam_prev) / h
    d_corrected = d + (d - d_prev) / (2 * r)
    return (s_t / s_s) * x - alpha_t * (math.exp(-h) - 1) * d_corrected
    # END SOLUTION


nb09.check_dpm_update(my_dpm_update)

# %% [markdown]
# ### Build: the whole DPM-Solver++(2M) sampler
#
# Exercise 2 was one update. Now write the whole sampler (Algorithm 2 of Lu et al. 2022), from noise to digits, as diffusers'
# `DPMSolverMultistepScheduler` runs it with `algorithm_type="dpmsolver++"`, `solver_order=2` and its
# other defaults, so that the two agree to float32 precision.
#
# `my_dpm_solver(model_fn, x_T, alphas_cumprod, num_steps)` returns the sample `(B, C, H, W)`, unclamped:
#
# - `model_fn(x, t)`: the network; `x` is `(B, C, H, W)`, `t` an int timestep; it returns the noise
#   prediction $\hat\epsilon$, `(B, C, H, W)`. Call it once per step: `num_steps` calls in all.
# - `x_T`: `(B, C, H, W)`, the starting noise, already drawn. Nothing inside is random: the sampler is
#   deterministic.
# - `alphas_cumprod`: `(T,)` float64, the schedule's $\bar\alpha_t$ ($T = 1000$).
#
# The recipe:
#
# 1. **Timesteps, exactly diffusers' "linspace" spacing**, noisiest first:
#    `np.linspace(0, T - 1, num_steps + 1).round()[::-1][:-1]`, that is
#    $t_i = \operatorname{round}\big(i\,(T-1)/N\big)$ for $i = N, N-1, \dots, 1$ with numpy's rounding (a half
#    goes to the even neighbour). 10 steps visit 999, 899, 799, 699, 599, 500, 400, 300, 200, 100; after the last
#    of them comes one more target, $\bar\alpha = 1$ (no noise left): the image.
# 2. **At each timestep** $t_i$ (call it $s$, and the next one $t$, as in Exercise 2): $\alpha_s = \sqrt{\bar\alpha_s}$,
#    $s_s = \sqrt{1-\bar\alpha_s}$, $\lambda_s = \log(\alpha_s/s_s)$, and the data prediction
#    $D_i = (x - s_s\,\hat\epsilon)/\alpha_s$ from one call of `model_fn(x, t_i)`.
# 3. **Step** to the next timestep $t$, with $h = \lambda_t - \lambda_s$ (in $\lambda$, not in $\log\alpha$):
#    - the first step is first order: $x \leftarrow \frac{s_t}{s_s}\,x - \alpha_t\,(e^{-h} - 1)\,D_i$;
#    - from the second step on, 2M: the same update with $D' = D_i + \frac{1}{2r}(D_i - D_{i-1})$ in place of
#      $D_i$, where $r = h_{prev}/h$ is the previous step's $h$ over this one's (Exercise 2's
#      $(\lambda_s - \lambda_{prev})/h$), and $D_{i-1}$ is the previous step's own prediction, not its $D'$;
#    - the last step, to $\bar\alpha = 1$, is first order (diffusers' `lower_order_final`): there $s_t = 0$,
#      $\lambda_t = +\infty$ and $e^{-h} = 0$, so the update returns $D$ of the last timestep. Return it directly
#      ($\log 0$ would not compute).
#
# You may reuse the lines of `my_dpm_update` (Exercise 2), which indexes the steps by $\sigma = s/\alpha$
# instead; the build is graded on its own. The checker's `model_fn` is the digits U-Net,
# unconditional, with the $\hat x_0$ it implies clamped to $[-1, 1]$, exactly what `teacher.sample` steps on.
# It grades:

# %%
nb09.build_dpm_solver(N_BUILD)


# %%
def my_dpm_solver(model_fn, x_T, alphas_cumprod, num_steps):
    """model_fn(x, t) -> eps, x: (B, C, H, W), t: int; x_T: (B, C, H, W); alphas_cumprod: (T,) -> x_0 (B, C, H, W)."""
    # BEGIN SOLUTION
    T = len(alphas_cumprod)
    timesteps = np.linspace(0, T - 1, num_steps + 1).round()[::-1][:-1].astype(int)  # noisiest first
    abar = [float(alphas_cumprod[t]) for t in timesteps]
    x, d_prev, h_prev = x_T, None, None
    for i, t in enumerate(timesteps):
        alpha_s, s_s = math.sqrt(abar[i]), math.sqrt(1 - abar[i])
        d = (x - s_s * model_fn(x, int(t))) / alpha_s  # D_i, the data prediction
        if i == num_steps - 1:
            return d  # the last step, to alpha_bar = 1, is first order: x = D
        alpha_t, s_t = math.sqrt(abar[i + 1]), math.sqrt(1 - abar[i + 1])
        h = math.log(alpha_t / s_t) - math.log(alpha_s / s_s)  # the step in lambda
        d_used = d if d_prev is None else d + (d - d_prev) / (2 * h_prev / h)  # 2M: D' with r = h_prev / h
        x = (s_t / s_s) * x - alpha_t * (math.exp(-h) - 1) * d_used
        d_prev, h_prev = d, h
    # END SOLUTION


dpm_result = nb09.check_dpm_solver(my_dpm_solver, teacher, n=N_BUILD)
dpm_result

# %% [markdown]
# Same network, same seed, same number of calls: DDIM against DPM-Solver++ at 5 and 10 steps. The
# DPM-Solver++ row is drawn by your sampler once it is correct (the package's until then), on the network
# `teacher.sample` steps on.

# %%
dpm_solver = use_build(dpm_result, my_dpm_solver, nb09.package_dpm_solver, "DPM-Solver++(2M) sampler")
clamped = ClampX0(WithCondition(teacher.denoiser, DEVICE), teacher.schedule, "epsilon")  # unconditional, x0 clamped


def digits_eps(x, t):
    """The model_fn of the build: x (B, 1, 16, 16), t an int -> eps (B, 1, 16, 16)."""
    return clamped(x, torch.as_tensor(t))


fig, axes = plt.subplots(2, 2, figsize=(11, 3.2))
for col, steps in enumerate((5, 10)):
    x_T = torch.randn(N_LIVE, 1, 16, 16, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    with torch.no_grad():
        x_dpm = dpm_solver(digits_eps, x_T, teacher.schedule.alphas_cumprod, steps).clamp(-1, 1).cpu()
    x_ddim = teacher.sample(N_LIVE, steps=steps, sampler="ddim", generator=torch.Generator().manual_seed(0))
    for row, (name, x) in enumerate((("DDIM", x_ddim), ("DPM-Solver++", x_dpm))):
        show_images(x[:16], nrow=8, ax=axes[row, col], title=f"{name}, {steps} steps{kid_note(x)}")
fig.suptitle("The same network and starting noise; only the solver differs")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Heun in sigma, and where its steps go
#
# Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", EDM) wrote
# every diffusion model in one set of coordinates. Divide
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ by $\sqrt{\bar\alpha_t}$ and it becomes
#
# $$x = x_0 + \sigma\,\epsilon, \qquad \sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t},$$
#
# the same $\sigma$ as DPM-Solver++'s above. The network still sees $x_t = x/\sqrt{\sigma^2+1}$, at the timestep
# of that $\sigma$. In these coordinates the probability-flow ODE is as simple as it gets:
# $dx/d\sigma = (x - \hat x_0)/\sigma$, which for a noise-predicting model is just $\hat\epsilon$. **Euler's method**
# on it, $x \leftarrow x + (\sigma_{i+1} - \sigma_i)\,\hat\epsilon$, is DDIM again (the check below). **Heun's
# method** (EDM's Algorithm 1) takes that Euler step as a trial, asks the network for the slope where it
# landed, and redoes the step with the average of the two slopes: second order, for two calls per step
# (the last step, to $\sigma = 0$, stays Euler's). The package has both with diffusers' interface and numbers,
# `EulerSampler` and `HeunSampler` (`EulerDiscreteScheduler` and `HeunDiscreteScheduler`), as the samplers
# `"euler"` and `"heun"` of a diffusion model, here our `teacher`.

# %%
sigma_min, sigma_top = (float(v) for v in training_sigmas(teacher.schedule)[[0, -1]])
x_euler = teacher.sample(N_LIVE, steps=10, sampler="euler", sampler_options={"timestep_spacing": "leading"},
                         generator=torch.Generator().manual_seed(0))
x_ddim = teacher.sample(N_LIVE, steps=10, sampler="ddim", generator=torch.Generator().manual_seed(0))
print(f"Euler in sigma against DDIM on the same 10 timesteps: largest pixel difference "
      f"{(x_euler - x_ddim).abs().max().item():.1e}")
print(f"the cosine schedule's sigma runs from {sigma_min:.4f} (t = 0) to {sigma_top:,.0f} (t = 999)")

# %% [markdown]
# **Where the steps go.** A solver with $N$ steps needs $N$ noise levels between $\sigma_{max}$ and $\sigma_{min}$.
# Evenly spaced in $\sigma$, nearly all of them would sit at high noise, where the picture is still a
# blur; evenly spaced in $\log\sigma$, as many would go to the last faint grain as to the first rough shape.
# Karras et al. (Eq. (5)) interpolate evenly in $\sigma^{1/\rho}$ and raise back to the power $\rho$:
#
# $$\sigma_i = \Big(\sigma_{max}^{1/\rho}
#   + \tfrac{i}{N-1}\big(\sigma_{min}^{1/\rho} - \sigma_{max}^{1/\rho}\big)\Big)^{\rho}, \qquad i = 0, \dots, N-1.$$
#
# $\rho = 1$ is even spacing in $\sigma$, and $\rho \to \infty$ even spacing in $\log\sigma$; in between, the
# larger $\rho$, the shorter the steps at small $\sigma$, where the digit's strokes are decided and a
# solver's error shows. The paper found that $\rho = 3$ makes every step's error about equal, but that
# $\rho$ between 5 and 10 gives better images, so errors near $\sigma_{min}$ matter most: it chose $\rho = 7$.
#
# The other choice is where to start. Under the cosine schedule $\sigma_{max}$ would be the 20,291 printed
# above, and Karras's spacing would put 6 of 10 levels above $\sigma = 180$, where the sample is
# still all noise ($\bar\alpha < 3.1\times10^{-5}$; the count is printed below). EDM starts at
# $\sigma_{max} = 80$ for images in $[-1, 1]$, and so do the Karras rows of this notebook's speed table
# (`sampler_options={"use_karras_sigmas": True, "sigma_max": 80.0}`).
#
# ### Build: Karras et al.'s noise levels
#
# Write `my_karras_sigmas(sigma_min, sigma_max, n, rho=7.0)`: the `n` levels of the equation above, as a 1-D
# tensor (an array or a list is fine too), **descending** from `sigma_max` (first) to `sigma_min` (last),
# both included, **without a trailing 0** (the sampler appends the final $\sigma = 0$ itself, as diffusers
# does). With `n = 1` the grid is `[sigma_max]`. The checker then hands your levels to `HeunSampler`
# (`sampler.set_sigmas(levels)`) and compares its digits with the package's. It grades:

# %%
nb09.build_karras_sigmas()


# %%
def my_karras_sigmas(sigma_min, sigma_max, n, rho=7.0):
    """sigma_min <= sigma_max: floats; n >= 1 -> (n,) noise levels, sigma_max first, sigma_min last, no trailing 0."""
    # BEGIN SOLUTION
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)  # i / (n - 1), and [0.] for n = 1
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    # END SOLUTION


karras_result = nb09.check_karras_sigmas(my_karras_sigmas, teacher)
karras_result

# %% [markdown]
# The levels for 10 steps, and what they do: Heun with 10 levels (19 network calls) from the same starting
# noise, spaced evenly in $\sigma$, by Karras's $\rho = 7$ from $\sigma_{max} = 80$, and by $\rho = 7$ from
# the schedule's own 20,291. Your function draws them once the build is correct (the package's
# `karras_sigmas` until then).

# %%
karras = use_build(karras_result, my_karras_sigmas, karras_sigmas, "Karras noise levels")
fig, ax = plt.subplots(figsize=(7, 3.2))
for rho in (1, 3, 7):
    ax.plot(torch.as_tensor(karras(sigma_min, 80.0, 10, rho)), "o-", label=f"rho = {rho}")
ax.plot(np.geomspace(80.0, sigma_min, 10), "k--", lw=0.8, label="even in log sigma (rho -> infinity)")
ax.set(yscale="log", xlabel="step i", ylabel="noise level sigma_i", title="10 levels from sigma = 80 to sigma_min")
ax.legend(fontsize=8)
plt.show()
for top in (sigma_top, 80.0):
    levels = torch.as_tensor(karras(sigma_min, top, 10))
    print(f"rho = 7 from sigma_max = {top:,.0f}: {int((levels > 180).sum())} of 10 levels above sigma = 180; "
          f"levels {', '.join(f'{v:.3g}' for v in levels.tolist())}")

# %%
panels = (("even in sigma (rho = 1), from 80", karras(sigma_min, 80.0, 10, 1.0)),
          ("rho = 7, from 80", karras(sigma_min, 80.0, 10)),
          (f"rho = 7, from {sigma_top:,.0f}", karras(sigma_min, sigma_top, 10)))
fig, axes = plt.subplots(1, 3, figsize=(15, 2.6))
for ax, (title, levels) in zip(axes, panels):
    x = nb09.heun_digits(teacher, levels, N_LIVE)
    show_images(x[:16], nrow=8, ax=ax, title=f"Heun, 19 calls, {title}{kid_note(x)}")
fig.suptitle("The same network and starting noise; only the noise levels differ")
fig.tight_layout()
plt.show()

# %% [markdown]
# Even spacing in $\sigma$ ends with one step from $\sigma \approx 9$ down to $\sigma_{min} \approx 0.006$. Heun's
# corrector there divides the network's disagreement with the trial step by $\sigma_{min}$, and multiplies it
# by the step: a small disagreement becomes a correction hundreds of times too large, and noise comes out
# instead of digits. A second-order method needs steps over which the slope changes little, which is what
# short steps at small $\sigma$ provide. From the schedule's own $\sigma_{max}$, most of the calls go to levels
# where nothing can be seen yet, and the strokes get what is left: rougher digits. Karras's levels from
# $\sigma = 80$ give clean ones. The speed table in section 5 measures Euler and Heun on them.


# %% [markdown]
# ## 4. Distillation: a student that jumps to the end
#
# Both solvers still walk along the path. A **consistency model** learns to skip the walk. Every
# starting noise $x_T$ defines one trajectory of the teacher's ODE, and every point $x_t$ on it has
# the same endpoint $x_0$. Train a network $f(x_t, t)$ to output that endpoint, from any point:
# then one call does the work of the whole solver.
#
# Two things make it trainable without running the teacher to the end for every example
# (Algorithm 2 of Song et al. 2023, "consistency distillation"):
#
# 1. **The boundary condition is built in.** $f(x_t, t) = c_{skip}(t)\,x_t + c_{out}(t)\,\hat x_0(x_t, t)$
#    with $c_{skip}(0) = 1$, $c_{out}(0) = 0$, so $f(x, 0) = x$ holds for any weights. We use LCM's
#    scalings (`boundary_scalings`): $c_{out}$ is already above 0.9999 at $t = 19$.
# 2. **Only neighbours are compared.** Take a data point, noise it to a grid timestep $t_{n+1}$, let
#    the frozen teacher take *one* DDIM step to the neighbouring grid point $t_n$ (50 grid points,
#    20 timesteps apart), and pull the student's answer at $t_{n+1}$ towards the answer of a slowly
#    moving copy of itself (an EMA, the *target network*) at $t_n$:
#
# $$\mathcal{L} = d\big(f_\theta(x_{t_{n+1}}, t_{n+1}),\ f_{\theta^-}(\hat x_{t_n}, t_n)\big).$$
#
# At $t_0 = 0$ the target is the teacher's point itself (the boundary condition), so the right answer
# enters at the bottom of the grid and is passed up, neighbour to neighbour, until $f$ is constant
# along every trajectory. $d$ is the pseudo-Huber distance, per pixel $\sqrt{(a - b)^2 + c^2} - c$
# averaged (Song and Dhariwal 2023; LCM's $c = 0.001$): about $(a - b)^2 / 2c$ for errors much smaller than
# $c$ and $|a - b|$ for larger ones, so a few badly wrong pixels do not dominate the gradient as they
# would under the squared error. The student starts as a copy of the teacher.
#
# One detail is ours. $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$
# divides by $\sqrt{\bar\alpha_{999}} = 4.9 \times 10^{-5}$ under the cosine schedule: any error in
# $\hat\epsilon$ at the first step would be multiplied by 20,000. The student therefore reads its output
# with $\bar\alpha$ floored at 0.005 (about Stable Diffusion's $\bar\alpha_{999}$), which keeps every
# step well conditioned; the sampler uses the same floor.
#
# **Sampling with a consistency model** (Algorithm 1): $x \leftarrow f(x_T, T)$. For more steps, noise
# the estimate back to a smaller $t$ with the forward process, $\sqrt{\bar\alpha_t}\,x + \sqrt{1-\bar\alpha_t}\,z$,
# with *fresh* noise $z$, and apply $f$ again.
#
# ### Exercise 3: one step of consistency sampling
#
# Given the network's noise prediction `eps` at `x_t`, return $f(x_t, t)$ if `t_next` is None (the
# last step); otherwise return it re-noised to `t_next`. Use `boundary_scalings(t)` for
# $(c_{skip}, c_{out})$ and `alphas_cumprod[t]` for $\bar\alpha_t$ (no floor here).

# %%
def my_consistency_step(x_t, eps, t, t_next, alphas_cumprod, noise):
    """x_t, eps, noise: (B, C, H, W); t, t_next: ints (t_next None on the last step) -> (B, C, H, W)."""
    # BEGIN SOLUTION
    a = float(alphas_cumprod[t])
    c_skip, c_out = boundary_scalings(t)
    denoised = c_skip * x_t + c_out * (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if t_next is None:
        return denoised
    a_next = float(alphas_cumprod[t_next])
    return math.sqrt(a_next) * denoised + math.sqrt(1 - a_next) * noise
    # END SOLUTION


nb09.check_consistency_step(my_consistency_step, teacher.schedule.alphas_cumprod)

# %% [markdown]
# ### Distilling the student
#
# The recipe `digits-student` distils our teacher, `digits-ddpm`, with the
# course's training loop: `TrainConfig(objective="consistency")` and the teacher passed to `train`.
# In `fast` mode we take 3 steps to prove the loop runs, then load the shipped student made by exactly
# this recipe; in `full` mode you run the whole recipe here. In `cpu` mode you run a quarter of it,
# 500 steps, with the learning rate decaying along a cosine (notebook 04) and bf16 where the chip
# computes it natively: the student starts as the teacher, so it needs few steps to learn the jump, and
# its two-step digits already land within the target of section 5's table (2x the floor).

# %%
recipe = get_recipe("digits-student")
tc = recipe.train
print(f"{recipe.name}: {tc.steps} steps of batch {tc.batch_size}, lr {tc.lr:g}, target EMA mu = {tc.ema_decay}, "
      f"grid of {tc.original_inference_steps} teacher steps")
images, _ = load_digits()
student_net = copy.deepcopy(teacher.denoiser)  # the student starts as the teacher
run_config = config.by_mode(fast=replace(tc, steps=3, batch_size=8, warmup_steps=1, log_every=1),
                            cpu=replace(tc, steps=500, lr_decay="cosine", precision=config.fast_precision(DEVICE)),
                            full=tc)
run_config = replace(run_config, cuda_graph=DEVICE.type == "cuda")  # on a GPU: each step one CUDA graph
run = train(student_net, images, teacher.schedule, run_config, device=DEVICE, teacher=teacher.denoiser,
            checkpoint_path=None if MODE == "fast" else "runs/09_digits-student.safetensors")
print(f"{run.step} steps, loss {run.losses[0][1]:.4f} -> {run.losses[-1][1]:.4f}, {run.wall_time_s:.1f} s")

if MODE == "fast":
    student = pretrained.load("digits-student", device=DEVICE)
    card = pretrained.info("digits-student")["card"]
    print(f"loaded {student}: {card['steps']} steps in {card['wall_time_s'] / 60:.1f} min on {card['device']}")
else:
    student = DiffusionModel(run.ema_model, teacher.schedule, info={"name": "my digits-student",
                                                                    "method": "consistency"},
                             sampler_config=pretrained.load_tensors("digits-student")[1]["sampler_config"])
    print("using the student distilled above")

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 2.6))
panels = [(student, "consistency", s, f"student, {s} step{'s' * (s > 1)}") for s in (1, 2, 4)]
panels.append((teacher, "ddim", 50, "teacher, DDIM-50"))
for ax, (model, sampler, steps, title) in zip(axes, panels):
    x = model.sample(N_LIVE, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
    show_images(x[:16], nrow=8, ax=ax, title=f"{title}{kid_note(x)}")
    if model is student and steps == 2 and MODE != "fast":  # cpu and full mode: the student you made, at the FID count
        x2 = student.sample(metrics.NUM_SAMPLES, steps=2, sampler="consistency", generator=torch.Generator().manual_seed(0))
        fid2, floor = metrics.digits_fid(x2), metrics.floor()["fid"]
        print(f"your student, 2 steps: digits-FID {fid2:.3f} = {fid2 / floor:.2f}x the floor ({floor:.3f}); "
              f"target <= 2x: {'met' if fid2 <= 2 * floor else 'MISSED'}")
fig.suptitle("The same starting noise: the distilled student against its teacher")
fig.tight_layout()
plt.show()

# %% [markdown]
# One step gives recognisable digits with a speckle of leftover noise; from two steps on they are
# hard to tell from the teacher's 50 (the reference table below puts numbers on it). The published pattern is the same: the consistency-models paper reports one-step
# FIDs about 1.7 times the teacher's on CIFAR-10, and a second step closes much of the gap.
#
# ## 5. The speed table (the course text's Exercise 5)
#
# Now everything at once: every sampler draws the same number of unconditional digits from the same
# seed on this machine, timed, and scored with digits-FID and digits-KID (notebooks 04 and 07). DDPM,
# DDIM, DPM-Solver++ and the Karras rows (Euler and Heun on Karras's levels from $\sigma_{max} = 80$, at
# about 10 and 20 network calls) all run our teacher, `digits-ddpm`. The flow rows run `digits-flow`:
# the same network, data and budget, trained with notebook 08's flow-matching loss and SD3's
# logit-normal time sampling (notebook 08 measures that choice). The student rows run the shipped
# `digits-student`, made by section 4's recipe. Each row is judged against the data: the **floor** is
# the digits-FID of real digits against other real digits at the same N, what a perfect sampler would
# score give or take the noise of the measurement.

# %%
specs = speed.TABLE if LIVE_DDPM else [s for s in speed.TABLE if s.label != "DDPM-1000"]
copied = not LIVE_DDPM and N_TABLE == metrics.NUM_SAMPLES  # the reference run's row compares only at its N
live = speed.from_reference(["DDPM-1000"], n=N_TABLE) if copied else []
live += speed.measure(specs, n=N_TABLE, device=DEVICE,
                      progress=lambda i, s: print(f"[{i + 1}/{len(specs)}] {s.label}", end="  "))
print()
print(speed.markdown_table(live, reference="DDPM-1000" if LIVE_DDPM or copied else None))

# %% [markdown]
# At 2 digits per row (`fast` mode) FID is strongly biased and KID is noisy: read the timing columns,
# not the quality ones. At 300 (`cpu` mode) KID can be trusted, but FID still reads high: it is
# biased upward at fewer samples than the 898 that the floor uses, so compare FIDs within the table,
# not with the floor. The **reference run** below is `benchmarks/fast_sampling.py` at the
# digits-FID count, N = 898, recorded on the machine it names; `full` mode reproduces it here.

# %%
reference = speed.reference_table()
ref_rows = reference["rows"]
print(f"reference run: {reference['n']} digits per sampler, {reference['device']}, torch {reference['torch']}, "
      f"{reference['date']}")
print(speed.markdown_table(ref_rows, reference="DDPM-1000"))
ref_fid = next(r["fid"] for r in ref_rows if r["label"] == "DDPM-1000")
floor = metrics.floor()["fid"]
print(f"\nEach row against the real-vs-real floor, digits-FID {floor:.3f} (DDPM-1000: {ref_fid / floor:.2f}x):")
TARGETS = {"DDIM-50": 1.5, "DPM-Solver++-10": 1.6, "Heun-Karras-10": 1.6, "flow Euler-8": 2.0, "student-2": 2.0}
for r in ref_rows:
    target = TARGETS.get(r["label"])
    verdict = "" if target is None else (f"  target <= {target:.1f}x: "
                                         + ("met" if speed.within(r["fid"], floor, target) else "MISSED"))
    print(f"{r['label']:16s} {r['model']:15s} {r['nfe']:4d} calls  FID {r['fid']:.3f} = {r['fid'] / floor:5.2f}x{verdict}")
flow8 = next(r["fid"] for r in ref_rows if r["label"] == "flow Euler-8")
print(f"flow Euler-8 against DDPM-1000 of digits-ddpm: {flow8 / ref_fid:.2f}x (target <= 1.2x)")
for what, fids in reference["karras"]["fids"].items():
    print(f"{what}: " + ", ".join(f"{k} {v:.3f}" for k, v in fids.items()))

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
speed.plot(live, ax=axes[0], key="kid")
axes[0].set_title(f"This run: {N_TABLE} digits per sampler"
                  + (" (read the times; KID this small is noise)" if N_TABLE < 100 else ""))
speed.plot(ref_rows, ax=axes[1], key="fid")
axes[1].set_title(f"Reference run: {reference['n']} digits per sampler ({reference['device']})")
plt.show()

# %% [markdown]
# How to read the plot: further left is faster, lower is better; the number by each point is its
# step count. Each family traces a curve that flattens out: past some step count, more steps buy
# nothing. The question is where each curve reaches the DDPM-1000 line, and how far to the left.
#
# **What the reference run says**, row by row against the floor of 0.179 (the figures below are the
# reference run's, printed above):
#
# - **DDPM-1000** scores 0.151, as close to the real digits as one half of them is to the other (a score
#   below the floor is the floor's own noise: it too is one draw of 898 digits).
# - **DDIM** gives up little for 20 times fewer calls: 0.235 at 50 steps (1.31 times the floor), 0.298 at
#   20, 0.524 at 10, the DDIM paper's pattern.
# - **DPM-Solver++** matches DDIM-50 with 20 calls (0.234) and is at 1.50 times the floor with 10 (0.268).
# - **Euler on Karras's levels** is the best of the teacher's samplers at 20 calls: 0.182, the floor
#   itself. **Heun** does worse for the same calls: 0.381 at 19 calls, 2.1 times the floor (the course's
#   target was 1.6), and 2.58 at 9, where 5 levels leave steps too long for its corrector. A second-order
#   step pays where the solver's own error is the larger one; on this model twice as many levels did more
#   than a better step. Where the grid starts matters more than either: from the schedule's own
#   $\sigma_{max}$ of 20,291, Heun-Karras-10 gave 3.82, and no $\sigma_{max}$ between 20 and 160 brought it
#   under 0.33 (the sweep printed above).
# - **The flow model** with Euler steps: 0.262 at 8 calls (1.46 times the floor), 0.129 at 16, better than
#   DDIM-50 for a third of the calls. Trained on the same network, data and budget as the teacher, it needs
#   fewer steps than DDIM, as the straight-path argument of notebook 08 promises, though not fewer than
#   DPM-Solver++; against DDPM-1000's unusually good 0.151 its 8 steps are 1.73 times worse (the course's
#   target was 1.2).
# - **The student** needs two calls for 0.229 (1.28 times the floor) and four for 0.180; one call gives
#   1.115, recognisable but speckled digits, 6 times the floor, in line with the consistency-models
#   paper's one-step results (about 1.7 times the teacher's FID on CIFAR-10, a harder metric to halve).
#
# One caution: these are one seed and one metric on one small data set. The student's two-step FID
# was 0.157 on its model card, where the noise was drawn in batches of 256, and 0.229 here with one
# batch of 898: the same network, sampler and seed, other noise. Differences of that size are not a
# ranking.

# %%
nb09.fewest_calls_question(ref_rows, floor)

# %% [markdown]
# ## 6. Try it
#
# Pick a sampler and a number of steps and press **Draw**: 16 digits from the same seed, with the
# time they took. Things to try: the student at 1, 2 and 8 steps (more is not always better: it was
# trained for big jumps); DPM-Solver++ at 3 steps against DDIM at 3; flow Euler at 2.

# %%
explorer = SamplerExplorer()
explorer.draw()
explorer

# %% [markdown]
# ## 7. Production notes, measured
#
# The course text's production advice (for Stable Diffusion on a GPU) names three more levers:
# batching, lower precision, and `torch.compile`. Here is what each does for our U-Net on this
# machine. The numbers will differ on a GPU, and the direction can too.

# %%
batches = config.by_mode(fast=(1, 16, 128), cpu=(1, 16, 128, 512), full=(1, 16, 128, 512))
per_image = {}
for b in batches:
    xb = torch.randn(b, 1, 16, 16, device=DEVICE)
    per_image[b] = 1000 * time_call(lambda: teacher.denoiser(xb, t_probe), repeats=3, device=DEVICE) / b
    print(f"batch {b:4d}: {per_image[b]:7.3f} ms per image per call")

# fast mode compares precisions at batch 16: on a CPU without bf16 instructions one bf16 call at batch
# 128 takes about 10 s (20x fp32, on a 2-core CPU without them), and the comparison says the same at 16
B_PREC = config.by_mode(fast=16, cpu=128, full=128)
x_prec = torch.randn(B_PREC, 1, 16, 16, device=DEVICE)


def bf16_call():
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        return teacher.denoiser(x_prec, t_probe)


fp32_ms = 1000 * time_call(lambda: teacher.denoiser(x_prec, t_probe), repeats=3, device=DEVICE)
bf16_ms = 1000 * time_call(bf16_call, repeats=3, device=DEVICE)
with torch.no_grad():
    diff = (bf16_call().float() - teacher.denoiser(x_prec, t_probe)).abs().max().item()
print(f"batch {B_PREC}, fp32: {fp32_ms:.1f} ms; bf16 autocast: {bf16_ms:.1f} ms ({fp32_ms / bf16_ms:.2f}x); "
      f"largest output difference {diff:.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(list(per_image), list(per_image.values()), "o-")
ax.set_xscale("log")
ax.set_ylim(bottom=0)
ax.set_xlabel("batch size (log scale)")
ax.set_ylabel("ms per image per network call")
ax.set_title("Batching: the fixed cost of a call is shared")
ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# `torch.compile` traces the network once and generates fused kernels. Compiling takes a while (and on
# a CPU needs a C++ compiler), so `fast` mode shows the reference run's measurement instead.

# %%
notes = reference.get("notes", {})
if MODE == "fast":
    if "compiled_ms" in notes:
        print(f"reference run ({reference['device']}): batch 128 eager {notes['fp32_ms']:.1f} ms, compiled "
              f"{notes['compiled_ms']:.1f} ms ({notes['fp32_ms'] / notes['compiled_ms']:.2f}x); the first call, "
              f"compiling included, took {notes['compile_first_call_s']:.1f} s")
    else:
        print(f"reference run: torch.compile not measured ({notes.get('compile_error', 'no record')})")
else:
    compiled = torch.compile(teacher.denoiser)
    first = time_call(lambda: compiled(x_prec, t_probe), repeats=1, warmup=0, device=DEVICE)
    compiled_ms = 1000 * time_call(lambda: compiled(x_prec, t_probe), repeats=3, device=DEVICE)
    print(f"batch {B_PREC}: eager {fp32_ms:.1f} ms, compiled {compiled_ms:.1f} ms ({fp32_ms / compiled_ms:.2f}x); "
          f"first call (compiling) {first:.1f} s")

# %% [markdown]
# What the measurements say, for our small model on this kind of machine: batching matters most. The
# reference run (one thread) measured 6.3 ms per image for calls on one image and 2.0 ms per image for
# calls on sixteen, so serving requests one at a time wastes most of the machine. Past a few hundred
# images the time per image rose again (1.7 ms at batch 128, 2.7 ms at 898), once the activations no
# longer fit in the caches. Whether bf16 pays depends on the hardware: on the reference machine's CPU,
# which has bf16 instructions, autocast was 1.54x faster at batch 128, with outputs within 0.025 of
# fp32; on a CPU without them it is usually slower, because every conversion costs time. On a GPU
# with tensor cores half precision is the default. `torch.compile` gave 1.04x on the reference run,
# after a first call of 52 s, so on this CPU it hardly pays. Whatever the hardware, the largest lever
# is the first one: the number of network calls.
#
# ## Summary
#
# - The cost of sampling is the number of network calls times the cost of one call.
# - DDIM reuses a DDPM's network on a coarse grid; with $\eta = 0$ it follows the probability-flow
#   ODE deterministically, and $\sigma_t(\eta)$ interpolates to DDPM-like noise.
# - DPM-Solver++(2M) solves the same ODE in $\lambda$, correcting each step with the previous
#   prediction at no extra cost; written from its update rule, it draws the same digits as diffusers'
#   `DPMSolverMultistepScheduler`, to float32 precision.
# - In Karras et al.'s coordinates $x = x_0 + \sigma\epsilon$, Euler's method is DDIM and Heun's adds a
#   corrector; their noise levels, evenly spaced in $\sigma^{1/\rho}$ with $\rho = 7$, put the short steps at
#   small $\sigma$, and where the grid starts matters as much.
# - Consistency distillation trains a student to map any point of the teacher's trajectory to its
#   end, by comparing only neighbouring grid points; it samples in 1-4 calls.
# - Measured on one machine with one seed against real digits, the table above says which shortcut
#   comes closest to the data with the fewest calls, and what one and two steps cost in quality.
#
# ## What comes next
#
# We have compared samplers with one metric and one seed. Notebook
# [10 · Evaluation, failure modes and production](10_evaluation_and_failures.ipynb) asks how far
# such numbers can be trusted, and what goes wrong with diffusion models in practice.
