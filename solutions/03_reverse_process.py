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
# # 03 · The reverse process: from noise back to data
#
# Notebook 02 built the forward process: a fixed recipe that buries data under Gaussian noise,
# one small dose at a time. Nothing in it is learned. This notebook runs the film backwards, and
# that direction is the one a network has to learn.
#
# What you will do:
#
# 1. Meet the three things a denoising network can be asked to output (the noise $\epsilon$, the
#    clean sample $x_0$, or the velocity $v$) and convert each into the others.
# 2. Compute one reverse step by hand and reproduce the course text's worked example and its
#    "manual reverse step" exercise.
# 3. Write the training loss that every later notebook minimises.
# 4. Write the **DDPM** and **DDIM** sampling loops yourself, from the schedule alone, and sample
#    2-D data with them, using an *exact* noise predictor in place of a network, so you watch the
#    reverse process work before anything is trained.
# 5. Swap our sampler for the one in 🤗 diffusers in one line and get the same samples.
#
# There are three coding exercises, two build exercises (the DDPM and the DDIM sampling loops,
# which the rest of the notebook then samples with) and two quick questions; each has an automatic
# checker. The whole notebook runs in well under a minute on a laptop CPU.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from course_utils import config
from course_utils.data import gaussian_mixture_params, make_toy2d
from course_utils.course.exercises import nb03, use_build
from course_utils.forward import forward_step, q_sample
from course_utils.oracle import GaussianMixtureOracle
from course_utils.parameterization import (
    convert_prediction,
    epsilon_from_v,
    epsilon_from_x0,
    v_from_epsilon_x0,
    x0_from_epsilon,
    x0_from_v,
)
from course_utils.reverse import ddpm_mean
from course_utils.samplers import DDIMSampler, DDPMSampler, sample_loop
from course_utils.schedules import get_schedule
from course_utils.training import diffusion_loss
from course_utils.viz import plot_trajectories, scatter2d

print(config.describe())

# %% [markdown]
# ## 1. What we are after
#
# The forward process gives us $q(x_t \mid x_{t-1})$, a Gaussian we chose ourselves. Going the
# other way, $q(x_{t-1} \mid x_t)$, depends on what the data look like, so it is unknown. We
# approximate each backward move with a Gaussian whose mean a network supplies:
#
# $$p_\theta(x_{t-1} \mid x_t) = \mathcal{N}\big(x_{t-1};\ \mu_\theta(x_t, t),\ \sigma_t^2 I\big).$$
#
# The network gets the noisy sample $x_t$ and the timestep $t$ (so it knows how noisy the input
# is). The variance $\sigma_t^2$ is fixed by the schedule. Sampling means starting from pure
# noise $x_T \sim \mathcal{N}(0, I)$ and taking one such step after another.
#
# > **Timestep convention.** As in diffusers, and everywhere in `course_utils`, timesteps are
# > 0-indexed: `schedule.alphas_cumprod[t]` is $\bar\alpha_t$ for $t = 0, \dots, T-1$,
# > $t = T-1$ is the noisiest step, and the final sampling step goes from $t = 0$ to clean data.
# > We still write $x_0$ for the clean data. The hand-worked examples from the course text use
# > standalone numbers (for instance $\bar\alpha_1 = 0.98$ for "step 1"), not values read from a
# > schedule.

# %% [markdown]
# ## 2. What the network predicts
#
# Every noisy sample is a blend of signal and noise, and notebook 02 gave the closed form:
#
# $$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \epsilon .$$
#
# If we know $x_t$ and $\bar\alpha_t$, a single extra vector pins down everything else. So a
# network may be trained to output any of these three (diffusers calls the choice
# `prediction_type`):
#
# | target | `prediction_type` | definition |
# |---|---|---|
# | the noise | `"epsilon"` | $\epsilon$ (Ho et al. 2020, the usual choice) |
# | the clean sample | `"sample"` | $x_0$ |
# | the velocity | `"v_prediction"` | $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0$ (Salimans & Ho 2022) |
#
# On paper they are interchangeable. Predicting the noise became the default because it trains
# stably; $v$ is a mix of the other two that behaves better at the extremes of the schedule
# (you will see why in a plot below). First, the conversion you will use most: the clean sample
# implied by a noise prediction,
#
# $$\hat{x}_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}} .$$

# %% [markdown]
# ### Exercise 1: from predicted noise to predicted clean sample
#
# Fill in `predict_x0`. The inputs are tensors of the same shape and a float `alpha_bar_t`.
# Then run the check cell below it.

# %%
def predict_x0(x_t, eps, alpha_bar_t):
    """The clean sample implied by a noise prediction.

    Args:
        x_t: (B, D) noisy samples.
        eps: (B, D) the (predicted) noise in x_t.
        alpha_bar_t: a float in (0, 1], the signal fraction at this timestep.

    Returns:
        (B, D) the estimate of x0.
    """
    # BEGIN SOLUTION
    return (x_t - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
    # END SOLUTION


# %%
nb03.check_predict_x0(predict_x0)

# %% [markdown]
# The package has all six conversions in `course_utils.parameterization`. Let us make sure they are
# consistent: noise 500 points of the 2-D mixture used later in this notebook at $t = 300$ of
# the cosine schedule, then go from each target to each other one and back.

# %%
schedule = get_schedule("cosine")  # T = 1000 steps, used for the rest of the notebook

x0 = make_toy2d("gaussian_mixture", n=500, seed=0).double()  # (500, 2)
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
t = 300
a = schedule.alphas_cumprod[t].item()  # alpha_bar_300
x_t = q_sample(x0, t, eps, schedule)
v = v_from_epsilon_x0(eps, x0, a)

assert torch.allclose(x0_from_epsilon(x_t, eps, a), x0)
assert torch.allclose(epsilon_from_x0(x_t, x0, a), eps)
assert torch.allclose(x0_from_v(x_t, v, a), x0)
assert torch.allclose(epsilon_from_v(x_t, v, a), eps)

# convert_prediction does any of the nine conversions (including the trivial ones).
truth = {"epsilon": eps, "sample": x0, "v_prediction": v}
worst = 0.0
for src in truth:
    errors = []
    for dst in truth:
        err = (convert_prediction(truth[src], x_t, a, from_type=src, to_type=dst) - truth[dst]).abs().max().item()
        errors.append(f"{dst}: {err:.0e}")
        worst = max(worst, err)
    print(f"from {src:<13} ->  " + ",  ".join(errors))
assert worst < 1e-12, worst  # float64 round trips are exact up to rounding

# %% [markdown]
# ### Equivalent on paper, not in practice
#
# No network is perfect. Suppose its output is off by a small amount $\delta$. The conversions are
# linear, so the error in the implied $\hat{x}_0$ and $\hat\epsilon$ is $\delta$ times a factor
# that depends only on $\bar\alpha_t$:
#
# | the network predicts | error in $\hat{x}_0$ | error in $\hat\epsilon$ |
# |---|---|---|
# | $\epsilon$ | $\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}\ \delta$ | $\delta$ |
# | $x_0$ | $\delta$ | $\sqrt{\bar\alpha_t/(1-\bar\alpha_t)}\ \delta$ |
# | $v$ | $\sqrt{1-\bar\alpha_t}\ \delta$ | $\sqrt{\bar\alpha_t}\ \delta$ |

# %%
ab = schedule.alphas_cumprod  # (1000,) float64
steps = torch.arange(len(ab))
gain = {  # (error in x0_hat, error in eps_hat) per unit of prediction error
    r"predict $\epsilon$": (((1 - ab) / ab).sqrt(), torch.ones_like(ab)),
    r"predict $x_0$": (torch.ones_like(ab), (ab / (1 - ab)).sqrt()),
    r"predict $v$": ((1 - ab).sqrt(), ab.sqrt()),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for label, (to_x0, to_eps) in gain.items():
    axes[0].plot(steps, to_x0, label=label)
    axes[1].plot(steps, to_eps, label=label)
axes[0].set(title=r"Error in the implied $\hat{x}_0$", ylabel="error / prediction error (log scale)")
axes[1].set(title=r"Error in the implied $\hat\epsilon$")
for ax in axes:
    ax.set(xlabel="timestep t (cosine schedule)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

eps_to_x0 = gain[r"predict $\epsilon$"][0]
print(f"at t = 999 an eps-prediction error is multiplied by {eps_to_x0[-1]:.0f} in x0_hat")
assert eps_to_x0[-1] > 1e3
assert all(float(g.max()) <= 1.0 for g in gain[r"predict $v$"])  # v never amplifies an error

# %% [markdown]
# With $\epsilon$-prediction, the implied clean sample is useless at the noisiest steps (an
# error is blown up by a factor of about $2 \times 10^4$ at $t = 999$); with $x_0$-prediction, the
# implied noise is useless at the cleanest steps. The $v$ target never amplifies an error in
# either direction, which is what "better conditioned" means.

# %% [markdown]
# ## 3. One reverse step
#
# Given $x_t$ and a noise prediction $\epsilon_\theta(x_t, t)$, the mean of the reverse step is
# (Eq. 11 of Ho et al. 2020, with $\alpha_t = 1 - \beta_t$):
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\left(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\right),
# \qquad x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z,\quad z \sim \mathcal{N}(0, I).$$
#
# Read it right to left: take away a small share of the predicted noise, then divide by
# $\sqrt{\alpha_t}$ to undo the shrinking that the forward step applied to the signal. The
# package computes it as `ddpm_mean(x_t, eps_pred, beta_t, alpha_bar_t)`.
#
# **The course text's example.** The forward example started from $x_0 = [0.8, -0.3]$ with
# $\beta_1 = 0.02$ and noise $\epsilon = [0.5, -0.7]$, and got $x_1 \approx [0.863, -0.396]$. If
# the model predicts that very noise, one reverse step should land back on $x_0$.

# %%
x0_demo = torch.tensor([0.8, -0.3], dtype=torch.float64)
eps_demo = torch.tensor([0.5, -0.7], dtype=torch.float64)

x1 = forward_step(x0_demo, 0.02, eps_demo)  # sqrt(0.98) * x0 + sqrt(0.02) * eps
mean_from_rounded = ddpm_mean([0.863, -0.396], eps_demo, beta_t=0.02, alpha_bar_t=0.98)
mean_from_exact = ddpm_mean(x1, eps_demo, beta_t=0.02, alpha_bar_t=0.98)

print("x1 (forward step)           :", x1.numpy().round(3))
print("mean from the rounded x1    :", mean_from_rounded.numpy().round(4))
print("mean from the unrounded x1  :", mean_from_exact.numpy().round(12))

assert torch.allclose(x1, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3)
assert torch.allclose(mean_from_rounded, x0_demo, atol=1e-3)  # the text's three decimals
assert torch.allclose(mean_from_exact, x0_demo, atol=1e-9)  # and exactly, without the rounding

# %% [markdown]
# Why exactly? On the first step of a chain $\bar\alpha_1 = \alpha_1 = 1 - \beta_1$, so the noise
# coefficient $\beta_1 / \sqrt{1-\bar\alpha_1}$ equals $\sqrt{\beta_1}$: the mean subtracts precisely
# the noise the forward step added, then divides out the $\sqrt{\alpha_1}$. On any later step the
# mean is *not* the clean sample: it is a point a little less noisy than $x_t$, and many such
# steps are needed to reach the data.

# %% [markdown]
# ### Exercise 2: the manual reverse step
#
# The course text asks: with $x_T = [0.1, 0.9, -0.5]$, $\beta_T = 0.02$, $\bar\alpha_T = 0.001$ and
# predicted noise $\epsilon_\theta = [0.3, -0.1, 0.2]$, compute the next, slightly cleaner sample.
# Its deterministic part is the mean $\mu_\theta$. Write `reverse_mean` from the formula above
# (do it on paper too: it is four multiplications).

# %%
def reverse_mean(x_t, eps_pred, beta_t, alpha_bar_t):
    """Mean of p(x_{t-1} | x_t) from a noise prediction (Eq. 11 of Ho et al. 2020).

    Args:
        x_t: (B, D) or (D,) the current sample.
        eps_pred: the predicted noise, same shape as x_t.
        beta_t: a float, the noise variance of forward step t.
        alpha_bar_t: a float, the cumulative signal fraction at t.

    Returns:
        The mean, same shape as x_t.
    """
    # BEGIN SOLUTION
    alpha_t = 1 - beta_t
    return (x_t - beta_t / math.sqrt(1 - alpha_bar_t) * eps_pred) / math.sqrt(alpha_t)
    # END SOLUTION


# %%
nb03.check_reverse_mean(reverse_mean)

# %% [markdown]
# The package's answer, for comparison (try the exercise before reading it). To get the sample
# $x_{T-1}$ itself, add noise $\sigma_T z$; here we take $\sigma_T^2 = \beta_T$, one of the two
# choices in Ho et al. (diffusers' `variance_type="fixed_large"`).

# %%
x_T = torch.tensor([0.1, 0.9, -0.5], dtype=torch.float64)
eps_T = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
mean_T = ddpm_mean(x_T, eps_T, beta_t=0.02, alpha_bar_t=0.001)
z = torch.randn(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
x_T_minus_1 = mean_T + math.sqrt(0.02) * z

print("noise coefficient beta/sqrt(1 - alpha_bar):", round(0.02 / math.sqrt(1 - 0.001), 6))
print("mean    :", mean_T.numpy().round(4))
print("x_{T-1} :", x_T_minus_1.numpy().round(4), "(one draw of the noise)")
assert torch.allclose(mean_T, torch.tensor([0.0950, 0.9112, -0.5091], dtype=torch.float64), atol=1e-4)

# %% [markdown]
# At the noisiest step the mean hardly moves: only 2% of the predicted noise is removed and the
# result is scaled up by $1/\sqrt{0.98} \approx 1.01$. One step does very little; a thousand of them
# do the job.
#
# ### The sampler's step is this mean plus noise
#
# `DDPMSampler.step` (the same interface as diffusers' `DDPMScheduler.step`) computes the mean in
# an equivalent way, through $\hat{x}_0$, then adds $\sigma_t z$ with the posterior variance
# $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ (diffusers' default,
# `"fixed_small"`). Drawing the same $z$ with the same seed rebuilds its output by hand:

# %%
ddpm = DDPMSampler(schedule, clip_sample=False)  # our 2-D data are not limited to [-1, 1]
t = 500
x_t = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
eps_pred = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

stepped = ddpm.step(eps_pred, t, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
z = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
by_hand = ddpm_mean(x_t, eps_pred, schedule.betas[t].item(), schedule.alphas_cumprod[t].item()) + math.sqrt(ddpm.variance(t)) * z

print("max |sampler - mean + sigma z| =", (stepped - by_hand).abs().max().item())
assert torch.allclose(stepped, by_hand, atol=1e-10)

# %% [markdown]
# ### Why the last step adds no noise
#
# The noise $\sigma_t z$ stands for what the step cannot know about $x_{t-1}$, and the steps that
# follow clean most of it up again. The last step, from $t = 0$ to the data, has no step after
# it: any noise added there would stay in the output as grain. The formula agrees: with
# $\bar\alpha_{-1} = 1$ (nothing left to remove), $\tilde\beta_0 = \frac{1 - 1}{1-\bar\alpha_0}\beta_0 = 0$.
# The sampler returns the mean itself at $t = 0$ (diffusers does the same).

# %%
for t in (999, 500, 100, 1, 0):
    print(f"t = {t:>3}:  sigma_t^2 = {ddpm.variance(t):.2e}")
assert ddpm.variance(0) < 1e-12  # zero, stored as diffusers' floor of 1e-20

# %% [markdown]
# ## 4. A perfect noise predictor for toy data
#
# To see sampling work we need an $\epsilon_\theta$. Training one is notebook 04's job. For data
# drawn from a mixture of Gaussians we can do better than any network: the best possible noise
# prediction, $\mathbb{E}[\epsilon \mid x_t]$, has a closed form, because a noised Gaussian mixture
# is still a Gaussian mixture. `GaussianMixtureOracle` computes it. Call it like a model:
# `oracle(x_t, t)` returns the predicted noise.
#
# Our data: 8 Gaussian blobs (standard deviation 0.2) on a circle of radius 2.

# %%
num_points = config.by_mode(fast=1000, cpu=2000, full=5000)
data = make_toy2d("gaussian_mixture", n=num_points, seed=0)  # (N, 2) float32
means, std = gaussian_mixture_params()  # (8, 2) centres, and 0.2
oracle = GaussianMixtureOracle(means, std, schedule)

fig, ax = plt.subplots(figsize=(4.2, 4.2))
scatter2d(data, ax=ax, lim=3.5, title=f"Training data: {num_points} points", label="data")
ax.scatter(means[:, 0], means[:, 1], marker="+", s=80, color="black", label="blob centres")
ax.legend(loc="upper right", fontsize=8)
plt.show()

# %% [markdown]
# ## 5. The training loss
#
# A network learns $\epsilon_\theta$ by playing a guessing game over and over (the "simple" loss of
# Ho et al. 2020):
#
# 1. take a real sample $x_0$ from the training data;
# 2. pick a timestep $t$ uniformly from $\{0, \dots, T-1\}$;
# 3. draw noise $\epsilon \sim \mathcal{N}(0, I)$;
# 4. jump straight to $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ (the closed form, no loop);
# 5. ask the network for its guess $\epsilon_\theta(x_t, t)$;
# 6. score the guess with the mean squared error, and take a gradient step.
#
# $$L_\text{simple} = \mathbb{E}_{x_0,\,t,\,\epsilon}\Big[\big\lVert \epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\rVert^2\Big]$$
#
# No discriminator, no perceptual loss: a regression onto the noise. Before writing it, a quick
# question.

# %%
nb03.zero_model_loss_question()

# %% [markdown]
# ### Exercise 3: the simple loss
#
# Write steps 4 to 6. The caller does steps 1 to 3 and passes `x0`, `t` and `noise` in, which
# keeps the result reproducible. `model(x_t, t)` returns the predicted noise; `t` is a `(B,)`
# tensor of timesteps. You may use `q_sample` from notebook 02 for step 4. Return one number
# (a 0-d tensor): the mean over the batch and over the coordinates.

# %%
def training_loss(model, x0, t, noise, schedule):
    """The simple diffusion loss for one batch.

    Args:
        model: a callable, model(x_t, t) -> (B, D) predicted noise.
        x0: (B, D) clean samples.
        t: (B,) LongTensor of timesteps in [0, T).
        noise: (B, D) the noise to add.
        schedule: the NoiseSchedule.

    Returns:
        A 0-d tensor, the mean squared error between noise and prediction.
    """
    # BEGIN SOLUTION
    x_t = q_sample(x0, t, noise, schedule)  # step 4: straight to x_t
    eps_pred = model(x_t, t)  # step 5: the model's guess
    return torch.mean((noise - eps_pred) ** 2)  # step 6: mean squared error
    # END SOLUTION


# %%
nb03.check_training_loss(training_loss)

# %% [markdown]
# Now compare two "models" on the same batch: the exact oracle, and a lazy one that always answers
# zero. This cell uses the checker's reference version of the loss
# (`nb03.reference_training_loss`), so it runs whether or not you have solved Exercise 3. The
# training loop of notebook 04 uses `course_utils.training.diffusion_loss`, which does steps 1 to 6
# in one call, drawing $t$ and $\epsilon$ from a generator; with the same seed it gives the same number.

# %%
gen = torch.Generator().manual_seed(1)
batch = make_toy2d("gaussian_mixture", n=4000, seed=1)  # step 1: real samples
t_batch = torch.randint(0, schedule.num_timesteps, (len(batch),), generator=gen)  # step 2
noise = torch.randn(batch.shape, generator=gen)  # step 3


def zero_model(x, t):
    return torch.zeros_like(x)


loss_zero = nb03.reference_training_loss(zero_model, batch, t_batch, noise, schedule).item()
loss_oracle = nb03.reference_training_loss(oracle, batch, t_batch, noise, schedule).item()
print(f"loss of the zero model : {loss_zero:.3f}")
print(f"loss of the oracle     : {loss_oracle:.3f}")
assert abs(loss_zero - 1.0) < 0.05  # E[eps^2] = 1
assert loss_oracle < 0.6 * loss_zero

# The package's all-in-one loss draws t, then the noise, from the generator: the same draws as above.
package_loss = diffusion_loss(oracle, batch, schedule.alphas_cumprod.float(), torch.Generator().manual_seed(1))
assert abs(package_loss.item() - loss_oracle) < 1e-5

# %% [markdown]
# The oracle is much better, yet its loss is far from zero. It is the best any function of
# $(x_t, t)$ can do, so this gap can never be closed by training. Where does it come from? Look at
# the loss one timestep at a time.

# %%
probe_steps = torch.linspace(0, schedule.num_timesteps - 1, 40).long()
per_step = [nb03.reference_training_loss(oracle, batch, torch.full((len(batch),), int(s)), noise, schedule).item()
            for s in probe_steps]

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(probe_steps, per_step, marker="o", ms=3, label="exact oracle (the floor)")
ax.axhline(1.0, color="tab:red", ls="--", label="zero model")
ax.set(xlabel="timestep t", ylabel=r"MSE between $\epsilon$ and prediction",
       title="Where predicting the noise is hard (8-blob mixture, cosine schedule)")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
assert per_step[0] > 0.9 and per_step[-1] < 0.01

# %% [markdown]
# Near $t = T-1$ the sample is almost pure noise, so "the noise is $x_t$ itself" is nearly right
# and the loss drops to zero. Near $t = 0$ the added noise is tiny compared with the 0.2 spread of
# each blob: nobody can tell which wiggle was noise and which was data, so even the oracle scores
# about 1. The bump in the middle is where the noise becomes large enough to hide which blob a
# point came from. The interesting learning happens in between the two ends.

# %% [markdown]
# ## 6. Sampling: DDPM and DDIM with the oracle
#
# Two samplers turn noise predictions into samples.
#
# * **DDPM** (Ho et al. 2020) takes all $T = 1000$ steps, and every step but the last adds fresh
#   noise $\sigma_t z$: it is **stochastic**.
# * **DDIM** (Song et al. 2021) with $\eta = 0$ adds no noise at all: each step moves
#   deterministically along the path implied by $\hat{x}_0$ and $\hat\epsilon$. That path is smooth
#   enough to follow with 50 steps instead of 1000. With $\eta = 1$ it adds DDPM-like noise again.
#
# The package has both (`DDPMSampler`, `DDIMSampler`, with diffusers' interface, run by
# `sample_loop`). You will write both loops yourself first, from the schedule alone, and the rest
# of this notebook samples with yours once the checker accepts them.
#
# One setting matters for this data: by default both of the package's samplers clip $\hat{x}_0$ to
# $[-1, 1]$, which suits images but would squash our blobs (at radius 2) onto a square. Here they
# run with `clip_sample=False`, and your loops clip nothing either.
#
# ### Build 1: the DDPM sampling loop
#
# Write `ddpm_sample(model, schedule, shape, generator)`: Algorithm 2 of Ho et al. 2020, with the
# 0-indexed timesteps of section 1 and the variance the package and diffusers use by default. In
# the code, $\beta_t$ is `schedule.betas[t]`, $\bar\alpha_t$ is `schedule.alphas_cumprod[t]` (0-d
# float64 tensors; `.item()` gives a Python float) and $T$ is `schedule.num_timesteps`.
#
# 1. Draw $x_T \sim \mathcal{N}(0, I)$.
# 2. For $t = T-1, T-2, \dots, 0$ (one model call per step, noisiest first):
#    * $\hat\epsilon = $ `model(x, t)`, with `x` of shape `(B, D)` and `t` a Python int;
#    * the mean of section 3 (Eq. 11): $\mu = \big(x_t - \tfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\epsilon\big)/\sqrt{\alpha_t}$, with $\alpha_t = 1 - \beta_t$;
#    * if $t > 0$: $x_{t-1} = \mu + \sigma_t z$ with the posterior variance
#      $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t$ (Eq. 7) and $z \sim \mathcal{N}(0, I)$;
#    * if $t = 0$: the sample is $\mu$ itself, **no noise at the last step** (section 3 says why).
# 3. Return the samples, shape `shape`.
#
# **The generator convention.** To give the same samples as the package for the same generator,
# draw in the same order: first `x = torch.randn(shape, generator=generator)` (the default dtype,
# float32), then, at each step with $t > 0$, one `torch.randn(shape, generator=generator)` for $z$,
# and nothing at $t = 0$. Never use torch's global generator (`torch.randn(shape)` without
# `generator=`, or `torch.randn_like`). The cell below lists what the checker grades.

# %%
nb03.BUILD_DDPM


# %%
def ddpm_sample(model, schedule, shape, generator):
    """DDPM ancestral sampling over all T steps (Algorithm 2 of Ho et al. 2020), no clipping.

    Args:
        model: model(x_t, t) -> (B, D) predicted noise, with x_t: (B, D) and t an int in [0, T).
        schedule: the NoiseSchedule (betas, alphas_cumprod, num_timesteps).
        shape: (B, D), the shape of the samples.
        generator: a torch.Generator for x_T and for every step's noise.

    Returns:
        (B, D) float32 samples.
    """
    # BEGIN SOLUTION
    x = torch.randn(shape, generator=generator)  # x_T, the first draw
    for t in range(schedule.num_timesteps - 1, -1, -1):  # T-1, ..., 1, 0
        eps = model(x, t)
        beta_t = schedule.betas[t].item()
        alpha_bar_t = schedule.alphas_cumprod[t].item()
        alpha_bar_prev = schedule.alphas_cumprod[t - 1].item() if t > 0 else 1.0
        # Eq. (11): mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t)
        mean = (x - beta_t / math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(1 - beta_t)
        if t > 0:
            variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t  # beta_tilde_t, Eq. (7)
            x = mean + math.sqrt(variance) * torch.randn(shape, generator=generator)
        else:
            x = mean  # the last step adds no noise
    return x
    # END SOLUTION


# %%
ddpm_result = nb03.check_ddpm_sample(ddpm_sample)
ddpm_result

# %% [markdown]
# ### Build 2: the DDIM loop
#
# Write `ddim_sample(model, schedule, shape, num_inference_steps, generator)`: DDIM with $\eta = 0$
# (Eq. 12 of Song et al. 2021) on a subsequence of $n$ = `num_inference_steps` timesteps.
#
# 1. The timesteps, with diffusers' default `"leading"` spacing: $k = T // n$ (integer division),
#    then $(n-1)k, \dots, 2k, k, 0$, noisiest first: exactly $n$ of them. For $n = 50$:
#    $980, 960, \dots, 20, 0$ (so the first step starts at $t = 980$, not 999).
# 2. Draw $x_T$ = `torch.randn(shape, generator=generator)`: the **only** draw. With $\eta = 0$
#    nothing else is random.
# 3. For each timestep $t$ of the list, with $t'$ the **next timestep of the list** (not $t - 1$:
#    DDIM jumps over the ones in between), and $\bar\alpha_{t'} = 1$ after the last one:
#    * $\hat\epsilon = $ `model(x, t)`;
#    * $\hat x_0 = \big(x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon\big)/\sqrt{\bar\alpha_t}$ (your Exercise 1);
#    * $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\epsilon$: the clean estimate, noised
#      again to the level of $t'$ with the noise the model sees.
# 4. Return the samples, shape `shape`.

# %%
nb03.BUILD_DDIM


# %%
def ddim_sample(model, schedule, shape, num_inference_steps, generator):
    """DDIM with eta = 0 (Eq. (12) of Song et al. 2021) on the "leading" timesteps, no clipping.

    Args:
        model: model(x_t, t) -> (B, D) predicted noise, with x_t: (B, D) and t an int in [0, T).
        schedule: the NoiseSchedule (alphas_cumprod, num_timesteps).
        shape: (B, D), the shape of the samples.
        num_inference_steps: n, the number of steps (and of model calls).
        generator: a torch.Generator, used for x_T only.

    Returns:
        (B, D) float32 samples.
    """
    # BEGIN SOLUTION
    k = schedule.num_timesteps // num_inference_steps
    timesteps = [i * k for i in range(num_inference_steps)][::-1]  # (n-1)k, ..., k, 0
    x = torch.randn(shape, generator=generator)  # x_T, the only draw
    for i, t in enumerate(timesteps):
        eps = model(x, t)
        alpha_bar_t = schedule.alphas_cumprod[t].item()
        alpha_bar_next = schedule.alphas_cumprod[timesteps[i + 1]].item() if i + 1 < len(timesteps) else 1.0
        x0_hat = (x - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
        x = math.sqrt(alpha_bar_next) * x0_hat + math.sqrt(1 - alpha_bar_next) * eps  # Eq. (12), eta = 0
    return x
    # END SOLUTION


# %%
ddim_result = nb03.check_ddim_sample(ddim_sample)
ddim_result

# %% [markdown]
# ### Sampling the mixture with your loops
#
# From here on the notebook samples with your loops once they are correct, and with the package's
# (`sample_loop` with `DDPMSampler` or `DDIMSampler`) until then; the next cell says which. To draw
# the paths as well, we hand the loop a `TracedModel`: the oracle, plus a memory of every $x_t$ it
# is asked about. Both runs start from the same noise (the same seed).

# %%
ddpm_loop = use_build(ddpm_result, ddpm_sample, nb03.package_ddpm_sample, "DDPM loop")
ddim_loop = use_build(ddim_result, ddim_sample, nb03.package_ddim_sample, "DDIM loop")

start = time.perf_counter()
traced = nb03.TracedModel(oracle)
ddpm_samples = ddpm_loop(traced, schedule, (num_points, 2), torch.Generator().manual_seed(0))
ddpm_path = traced.path(ddpm_samples)  # (1001, N, 2): x_T, ..., x_1, then the samples
ddpm_seconds = time.perf_counter() - start

start = time.perf_counter()
traced = nb03.TracedModel(oracle)
ddim_samples = ddim_loop(traced, schedule, (num_points, 2), 50, torch.Generator().manual_seed(0))
ddim_path = traced.path(ddim_samples)  # (51, N, 2)
ddim_seconds = time.perf_counter() - start
print(f"DDPM: 1000 steps in {ddpm_seconds:.2f} s;  DDIM: 50 steps in {ddim_seconds:.2f} s")
print("trajectory shapes (steps + 1, N, 2):", tuple(ddpm_path.shape), tuple(ddim_path.shape))

# %%
fig, axes = plt.subplots(1, 3, figsize=(12.5, 4.6), layout="constrained")
scatter2d(data, ax=axes[0], lim=3.5, title="Training data", color="tab:blue")
scatter2d(ddpm_samples, ax=axes[1], lim=3.5, title="DDPM, 1000 steps", color="tab:orange")
scatter2d(ddim_samples, ax=axes[2], lim=3.5, title=r"DDIM ($\eta = 0$), 50 steps", color="tab:green")
for ax in axes:
    ax.scatter(means[:, 0], means[:, 1], marker="+", s=80, color="black", label="blob centres")
    ax.legend(loc="upper right", fontsize=8)
fig.suptitle(f"{num_points} points each: the oracle's reverse process recovers the mixture")
plt.show()

# %% [markdown]
# The samples look like the data. Let us check it with numbers: for points from a 2-D Gaussian
# with standard deviation $s = 0.2$, the distance to the centre has median
# $s\sqrt{2 \ln 2} \approx 0.235$, and each of the 8 blobs should get about 1/8 of the points.

# %%
def blob_stats(points):
    """(median distance to the nearest centre, share of points in each blob)."""
    dist = torch.cdist(points.double(), means)  # (N, 8)
    nearest = dist.argmin(dim=1)
    shares = torch.bincount(nearest, minlength=len(means)).double() / len(points)
    return dist.min(dim=1).values.median().item(), shares


expected_median = std * math.sqrt(2 * math.log(2))
print(f"theory: median distance {expected_median:.3f}, share per blob {1 / len(means):.3f}")
for name, pts in (("data", data), ("DDPM", ddpm_samples), ("DDIM", ddim_samples)):
    median, shares = blob_stats(pts)
    print(f"{name:>5}: median distance {median:.3f}, blob shares {shares.min():.3f} to {shares.max():.3f}")
    assert abs(median - expected_median) < 0.03, (name, median)
    assert shares.min() > 0.08 and shares.max() < 0.17, (name, shares)

# %% [markdown]
# Now the paths themselves. Each grey line is one sample's journey from its starting noise to its
# end point. DDPM's paths jitter (fresh noise at every one of its 1000 steps), so we draw 8 of
# them, at every 20th step; DDIM's 25 paths, drawn at all 50 steps, are smooth curves.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
plot_trajectories(ddpm_path[::20], ax=axes[0], num_paths=8, lim=3.5, title="DDPM: 8 paths (stochastic)")
plot_trajectories(ddim_path, ax=axes[1], num_paths=25, lim=3.5, title=r"DDIM: 25 paths ($\eta = 0$, deterministic)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Stochastic or deterministic?
#
# Your loops, like the package's `sample_loop`, draw the starting noise *and* every later noise from
# one generator. To separate the two, here is the package's loop written out with its samplers'
# `step`, starting from an $x_T$ that we give it. Before running it, answer Question A.

# %%
nb03.ddim_determinism_question()


# %%
def denoise_from(x_T, sampler, num_steps, generator, **step_kwargs):
    """The sampling loop: from a given x_T, one sampler step per timestep."""
    sampler.set_timesteps(num_steps)
    x = x_T
    for t in sampler.timesteps:  # descending: 999, ..., 0 for DDPM
        eps_pred = oracle(x, t)  # the "network"
        x = sampler.step(eps_pred, t, x, generator=generator, **step_kwargs).prev_sample
    return x


ddim = DDIMSampler(schedule, clip_sample=False)  # the package's samplers: `ddpm` is section 3's
x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(42))
ends = {}
for name, sampler, num_steps in (("DDPM", ddpm, 1000), ("DDIM", ddim, 50)):
    ends[name] = [denoise_from(x_T, sampler, num_steps, torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    gap = (ends[name][0] - ends[name][1]).norm(dim=1).mean().item()
    print(f"{name}: two generators, same x_T -> mean distance between the two end points {gap:.3f}")

assert torch.equal(ends["DDIM"][0], ends["DDIM"][1])  # bit for bit the same
assert (ends["DDPM"][0] - ends["DDPM"][1]).norm(dim=1).mean() > 0.1

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
for ax, name in zip(axes, ends):
    first, second = ends[name]
    for i in range(len(x_T)):
        ax.plot([x_T[i, 0], first[i, 0]], [x_T[i, 1], first[i, 1]], color="tab:blue", lw=0.6, alpha=0.5)
        ax.plot([x_T[i, 0], second[i, 0]], [x_T[i, 1], second[i, 1]], color="tab:orange", lw=0.6, alpha=0.5)
    ax.scatter(x_T[:, 0], x_T[:, 1], color="0.3", s=25, label="shared start $x_T$")
    ax.scatter(first[:, 0], first[:, 1], color="tab:blue", s=60, marker="o", label="end, generator seed 1")
    ax.scatter(second[:, 0], second[:, 1], color="tab:orange", s=60, marker="x", label="end, generator seed 2")
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
           title=f"{name}: same start, two generators")
    ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Thin lines join each start to its two end points (they are not the paths). DDPM sends the same
# start to different places, often to different blobs; DDIM sends it to the same point every time. That determinism is what makes DDIM handy for reproducible outputs
# and for interpolating between two starting noises.

# %% [markdown]
# ## 7. The same result with diffusers, in one line
#
# Our samplers speak diffusers' language, so a diffusers scheduler drops into the same loop.
# Our `"cosine"` schedule is diffusers' `"squaredcos_cap_v2"`.

# %%
from diffusers import DDIMScheduler

ours = DDIMSampler(get_schedule("cosine"), clip_sample=False)
theirs = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False)  # the one-line swap

ours_samples = sample_loop(oracle, ours, (num_points, 2), 50, generator=torch.Generator().manual_seed(1))
theirs_samples = sample_loop(oracle, theirs, (num_points, 2), 50, generator=torch.Generator().manual_seed(1))

max_diff = (ours_samples - theirs_samples).abs().max().item()
print(f"same timesteps: {torch.equal(ours.timesteps, theirs.timesteps)}; max |ours - diffusers| = {max_diff:.1e}")
assert torch.equal(ours.timesteps, theirs.timesteps)
assert max_diff < 1e-3

# %% [markdown]
# The small difference is rounding: diffusers stores its schedule in float32, ours is float64. (The
# package's tests check every sampler against diffusers this way, and to $10^{-10}$ when both use
# the same float64 schedule.)

# %% [markdown]
# ## 8. Extra: a perfect denoiser only remembers
#
# The oracle can also be built from a finite training set: one tiny Gaussian per training point,
# `GaussianMixtureOracle.from_data(points, schedule, bandwidth)`. With `bandwidth=0` it is the exact
# minimiser of the training loss *on that set*. Sampling with it shows what that minimiser does.

# %%
train_moons = make_toy2d("moons", n=200, seed=1)
num_moon_samples = config.by_mode(fast=500, cpu=1000, full=2000)
moon_samples = {}
for bandwidth in (0.0, 0.1):
    memo_oracle = GaussianMixtureOracle.from_data(train_moons, schedule, bandwidth=bandwidth)
    moon_samples[bandwidth] = ddim_loop(memo_oracle, schedule, (num_moon_samples, 2), 50,
                                        torch.Generator().manual_seed(3))  # yours once Build 2 is correct

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (bandwidth, samples) in zip(axes, moon_samples.items()):
    nearest = torch.cdist(samples.double(), train_moons.double()).min(dim=1).values
    ax.scatter(train_moons[:, 0], train_moons[:, 1], s=30, facecolors="none", edgecolors="black",
               label="200 training points")
    scatter2d(samples, ax=ax, lim=2.7, color="tab:red", s=4, label=f"{num_moon_samples} DDIM samples")
    ax.set_title(f"bandwidth {bandwidth}: median distance to\nnearest training point {nearest.median():.1e}")
    ax.legend(loc="lower left", fontsize=8)
    if bandwidth == 0.0:
        assert nearest.median() < 1e-3  # the samples are copies of training points
    else:
        assert nearest.median() > 0.02  # new points near the data
fig.tight_layout()
plt.show()

# %% [markdown]
# With bandwidth 0 every sample is a copy of a training point: perfect training loss, zero
# creativity. A trained network is only an approximation of this function, and the ways it falls
# short of it (smoothness, limited capacity, finite training) are what let it produce new samples,
# more like the blurred version on the right. Notebook 10 returns to memorisation and
# generalisation.

# %% [markdown]
# ## Summary
#
# * A denoiser can predict $\epsilon$, $x_0$ or $v$; given $x_t$ and $\bar\alpha_t$ each determines the
#   others (`course_utils.parameterization`), but they amplify errors differently.
# * The reverse mean is $\mu = \big(x_t - \tfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta\big)/\sqrt{\alpha_t}$;
#   the course text's example recovers $[0.8, -0.3]$ and its Exercise 2 gives about $[0.0950, 0.9112, -0.5091]$.
# * The last step adds no noise: nothing comes after it to remove it, and $\tilde\beta_0 = 0$.
# * Training is a regression onto the noise; even the perfect predictor keeps a loss floor.
# * DDPM is stochastic (1000 noisy steps); DDIM with $\eta = 0$ is deterministic and needs far fewer
#   steps. Both recover the data when the noise prediction is exact, and our DDIM matches diffusers'.
# * Both loops fit in a dozen lines written from the schedule: DDPM draws $x_T$, then one $z$ per step
#   with $t > 0$ and uses the posterior variance $\tilde\beta_t$; DDIM draws only $x_T$ and walks a
#   subsequence of timesteps, each step to the *next timestep of the list*, ending at $\bar\alpha = 1$.
#
# ## What comes next
#
# [04 · Training a U-Net](04_unet_training.ipynb) replaces the oracle with a
# network: a small U-Net trained with the loss you wrote in Exercise 3, then sampled with the very
# same loop.
