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
# 6. Read the same models through the **score**, the gradient of the noised data's log density: check
#    that a noise prediction is a rescaled score, denoise with Tweedie's formula, run the reverse SDE and
#    the probability-flow ODE from the same starting points (same distribution at the end, different
#    paths), and see that DDIM is Euler's method on that ODE.
#
# There are three coding exercises, four build exercises (the DDPM and the DDIM sampling loops, the
# score of the noised data and Tweedie's formula, which the rest of the notebook then uses) and two
# quick questions; each has an automatic checker.
#
# **How long it takes.** Nothing is trained here; `COURSE_MODE` (printed below) sets how many points
# and paths the toy samplers draw:
#
# | mode | toy points / ODE paths | time |
# |---|---|---|
# | `fast` | 1,000 / 2,000 | about 20 seconds |
# | `cpu` | 2,000 / 4,000 | under a minute on a laptop |
# | `full` | 5,000 / 10,000 | a minute or two (not yet measured on a GPU) |

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from course_utils import config
from course_utils.data import gaussian_mixture_params, make_toy2d
from course_utils.course.exercises import nb03, use_build
from course_utils.forward import forward_step, q_sample
from course_utils.metrics.distances import sliced_wasserstein
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
from course_utils.score import (probability_flow_step, score_from_epsilon, sigma_from_alpha_bar, solve_probability_flow,
                                solve_reverse_sde)
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
# ## 8. The score view: one vector field, two ways back
#
# DDPM and DDIM were written above as recipes on the predicted noise $\hat\epsilon$. A second reading of
# the same models (Song et al. 2021, *Score-Based Generative Modeling through Stochastic Differential
# Equations*) explains why both recipes land on the data, and why DDIM may take large steps. It rests on
# one object, the score.
#
# ### The score of the noised data
#
# Write $p_t$ for the density of $x_t$: the distribution of the data after the forward process has run to
# timestep $t$ (the data themselves near $t = 0$, almost $\mathcal{N}(0, I)$ at $t = T-1$). Its **score**
# is the gradient of its log density,
#
# $$s(x, t) = \nabla_x \log p_t(x) ,$$
#
# a vector at every point $x$ that points where noisy samples become more likely, fastest. Scaling a
# density by a constant does not change its score (the gradient of $\log c$ is zero), so the score can
# be learned without ever normalising a density.
#
# For our mixture $p_t$ is known. The forward process shrinks each blob's centre $\mu_k$ to
# $c_k = \sqrt{\bar\alpha_t}\,\mu_k$ and gives it the variance $v_t = \bar\alpha_t\,\text{std}^2 + (1-\bar\alpha_t)$ in
# each coordinate (its own spread, $\text{std} = 0.2$, shrunk, plus the noise's), so with $K = 8$ equal weights
#
# $$p_t(x) = \frac{1}{K}\sum_{k=1}^{K} \mathcal{N}\big(x;\ c_k,\ v_t I\big),
# \qquad s(x, t) = \sum_{k=1}^{K} r_k(x)\,\frac{-(x - c_k)}{v_t},
# \qquad r_k(x) = \operatorname{softmax}_k\!\Big(-\frac{\lVert x - c_k\rVert^2}{2 v_t}\Big).$$
#
# Each blob's own score, $-(x - c_k)/v_t$, points at its centre; the mixture's averages them with the
# **responsibilities** $r_k(x)$, the probability that a noisy point at $x$ came from blob $k$.
#
# The link to what a network learns (Vincent 2011): the best noise prediction is the score, rescaled,
#
# $$\mathbb{E}[\epsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\; s(x_t, t) .$$
#
# So a network trained to predict the noise is a score estimator. `GaussianMixtureOracle` has the exact
# log density (`oracle.log_prob(x, t)`) and score (`oracle.score(x, t)`). The next cell checks the score
# against finite differences of the log density, $\big(\log p_t(x + h e_i) - \log p_t(x - h e_i)\big)/(2h)$
# in each coordinate $i$, and against the oracle's noise prediction through `score_from_epsilon`.

# %%
x_probe = 2 * torch.randn(200, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # (200, 2)
h = 1e-5
print(" t    max |score - finite differences|   max |score - (-eps / sqrt(1 - alpha_bar))|")
for t in (0, 300, 700):
    a = schedule.alphas_cumprod[t].item()
    numeric = torch.stack([(oracle.log_prob(x_probe + h * e, t) - oracle.log_prob(x_probe - h * e, t)) / (2 * h)
                           for e in torch.eye(2, dtype=torch.float64)], dim=1)  # (200, 2)
    exact = oracle.score(x_probe, t)
    fd_error = (exact - numeric).abs().max().item()
    eps_error = (exact - score_from_epsilon(oracle(x_probe, t), a)).abs().max().item()
    print(f"{t:>3}    {fd_error:.1e}                             {eps_error:.1e}")
    assert fd_error < 1e-5 and eps_error < 1e-9

# %% [markdown]
# The finite differences agree to within their own error (of order $h^2$ times the third derivative of
# $\log p_t$, largest at $t = 0$ where the blobs are sharpest), the noise prediction to machine precision.
#
# ### Build 3: the score of the noised mixture
#
# Write `mixture_score(x_t, means, std, alpha_bar_t)`: the score $s(x_t, t)$ above for $K$ equal-weight
# blobs $\mathcal{N}(\mu_k, \text{std}^2 I)$ noised to $\bar\alpha_t$ = `alpha_bar_t` (a float).
#
# 1. The noised centres $c_k = \sqrt{\bar\alpha_t}\,\mu_k$, shape `(K, D)`, and the variance
#    $v = \bar\alpha_t\,\text{std}^2 + (1 - \bar\alpha_t)$ (a number).
# 2. The differences $x - c_k$ for every point and blob, shape `(B, K, D)`: `x_t[:, None, :] - centres[None]`.
# 3. The responsibilities $r_k$: a softmax over $k$ (`dim=1`) of $-\lVert x - c_k\rVert^2 / (2v)$, shape `(B, K)`.
#    Use `torch.softmax`: it subtracts the largest value first, so nothing overflows.
# 4. The score $\sum_k r_k\,\big(-(x - c_k)/v\big)$, shape `(B, D)`.
#
# The checker grades exact values first, then lets your score drive the reverse SDE (introduced below)
# from noise to the mixture.

# %%
nb03.BUILD_SCORE


# %%
def mixture_score(x_t, means, std, alpha_bar_t):
    """The score grad_x log p_t(x_t) of equal-weight Gaussian blobs after noising to alpha_bar_t.

    Args:
        x_t: (B, D) noisy points.
        means: (K, D) the blobs' centres mu_k (before noising).
        std: a float, the blobs' standard deviation (before noising).
        alpha_bar_t: a float in (0, 1).

    Returns:
        (B, D) the score at each point.
    """
    # BEGIN SOLUTION
    centres = math.sqrt(alpha_bar_t) * means  # (K, D)
    var = alpha_bar_t * std**2 + (1 - alpha_bar_t)
    diff = x_t[:, None, :] - centres[None]  # (B, K, D)
    r = torch.softmax(-(diff**2).sum(-1) / (2 * var), dim=1)  # (B, K) responsibilities
    return (r[..., None] * (-diff / var)).sum(1)
    # END SOLUTION


# %%
score_result = nb03.check_mixture_score(mixture_score)
score_result

# %% [markdown]
# From here on the score field is yours once the checker accepts it (the package's `oracle.score` until
# then). Here it is at three noise levels, over the log density $\log p_t$: the arrows show the score's
# direction (their lengths are scaled per panel).

# %%
mixture_score_fn = use_build(score_result, mixture_score, nb03.package_mixture_score, "mixture score")


def score_fn(x, t):
    """The score at an int timestep t of the cosine schedule: (B, 2) -> (B, 2)."""
    return mixture_score_fn(x, means.double(), std, schedule.alphas_cumprod[t].item())


grid = torch.linspace(-3.5, 3.5, 141, dtype=torch.float64)
gx, gy = torch.meshgrid(grid, grid, indexing="xy")
points = torch.stack([gx.flatten(), gy.flatten()], dim=1)  # (141 * 141, 2)
ticks = torch.linspace(-3.2, 3.2, 17, dtype=torch.float64)
arrows = torch.stack(torch.meshgrid(ticks, ticks, indexing="xy"), dim=-1).reshape(-1, 2)  # (17 * 17, 2)
fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.6), layout="constrained")
for ax, t in zip(axes, (50, 400, 800)):
    a = schedule.alphas_cumprod[t].item()
    log_density = oracle.log_prob(points, t).reshape(gx.shape)
    image = ax.contourf(gx, gy, log_density.clamp_min(-12), levels=20, cmap="Blues")
    field = score_fn(arrows, t)  # (289, 2)
    ax.quiver(arrows[:, 0], arrows[:, 1], field[:, 0], field[:, 1], color="tab:red", width=0.004,
              label="score direction")
    ax.set(title=rf"t = {t}: $\bar\alpha_t$ = {a:.3f}", xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.legend(loc="lower left", fontsize=8)
fig.colorbar(image, ax=axes, shrink=0.8, label=r"$\log p_t(x)$ (clipped at $-12$)")
fig.suptitle("The score of the noised mixture: arrows point where noisy samples become more likely")
plt.show()

# %% [markdown]
# Near the data ($t = 50$) each arrow points at its nearest blob, and a point between two blobs is pulled
# to the more likely one; at $t = 800$ the blobs have merged into one bump and every arrow points roughly at
# the origin.
#
# ### Tweedie's formula
#
# The score also gives the best guess of the clean point. **Tweedie's formula** (Robbins 1956; Efron 2011)
# says that for Gaussian noise the posterior mean of $x_0$ needs nothing but the score of $x_t$'s own density:
#
# $$\mathbb{E}[x_0 \mid x_t] = \frac{x_t + (1-\bar\alpha_t)\, s(x_t, t)}{\sqrt{\bar\alpha_t}} .$$
#
# Read it left to right: move from $x_t$ along the score by the noise's variance $1 - \bar\alpha_t$, then
# undo the shrinking of the signal. The posterior mean is the **least-squares** estimate: of all functions
# of $x_t$ it has the smallest mean squared error to the true $x_0$. Put
# $s = -\hat\epsilon / \sqrt{1-\bar\alpha_t}$ into it and you get Exercise 1's
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$: the $\hat x_0$ inside every DDPM and
# DDIM step is Tweedie's estimate.
#
# ### Build 4: Tweedie's formula
#
# Write `tweedie_x0(x_t, score, alpha_bar_t)`: $x_t$ and the score are tensors of one shape, `alpha_bar_t` a
# float in $(0, 1]$. The checker grades exact values, then uses your formula as a denoiser with the exact score.

# %%
nb03.BUILD_TWEEDIE


# %%
def tweedie_x0(x_t, score, alpha_bar_t):
    """E[x0 | x_t] from the score of x_t's density (Tweedie's formula).

    Args:
        x_t: (B, D) noisy points.
        score: (B, D) the score grad log p_t at x_t.
        alpha_bar_t: a float in (0, 1].

    Returns:
        (B, D) the posterior mean of x0.
    """
    # BEGIN SOLUTION
    return (x_t + (1 - alpha_bar_t) * score) / math.sqrt(alpha_bar_t)
    # END SOLUTION


# %%
tweedie_result = nb03.check_tweedie_x0(tweedie_x0)
tweedie_result

# %% [markdown]
# Now the denoiser at work (yours once correct): noise 2,000 points of the data to three timesteps,
# estimate $x_0$ with Tweedie's formula and the score field above, and compare its error (the mean squared
# distance to the true $x_0$) with that of the naive guess $x_t / \sqrt{\bar\alpha_t}$ (undo the shrinking,
# keep the noise); and compare the estimate itself with the oracle's own posterior mean.

# %%
denoise = use_build(tweedie_result, tweedie_x0, nb03.package_tweedie_x0, "Tweedie denoiser")

x0_test = make_toy2d("gaussian_mixture", n=2000, seed=4).double()  # (2000, 2)
eps_test = torch.randn(x0_test.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
print("  t   mean |x0_hat - x0|^2: Tweedie   x_t / sqrt(alpha_bar)   max |Tweedie - oracle's posterior mean|")
for t in (100, 400, 700):
    a = schedule.alphas_cumprod[t].item()
    x_t = q_sample(x0_test, t, eps_test, schedule)
    x0_hat = denoise(x_t, score_fn(x_t, t), a)
    mse_tweedie, mse_naive = (((est - x0_test) ** 2).sum(1).mean().item() for est in (x0_hat, x_t / math.sqrt(a)))
    gap = (x0_hat - oracle.posterior_mean(x_t, t)).abs().max().item()
    print(f"{t:>4}   {mse_tweedie:27.3f}   {mse_naive:20.3f}   {gap:25.1e}")
    assert gap < 1e-9 and mse_tweedie < mse_naive

# %% [markdown]
# Tweedie's estimate is the oracle's posterior mean to rounding, and its error is a fraction of the naive
# guess's at every noise level: given the score, the best denoiser needs nothing else.
#
# ### Two ways back: the reverse SDE and the probability-flow ODE
#
# Make the forward steps tiny and many, and the forward process becomes a **stochastic differential
# equation** (SDE): a rule $dx = f(x, t)\,dt + g(t)\,dw$ that says how $x$ drifts ($f$) and how much fresh
# Gaussian noise ($g\,dw$, with $dw$ a tiny Gaussian increment) it receives in an instant $dt$. Two results
# turn it around (Song et al. 2021, Eqs. 6 and 13, after Anderson 1982):
#
# * the **reverse-time SDE** $dx = \big[f - g^2\, s(x, t)\big]\,dt + g\,d\bar w$ ($d\bar w$: fresh Gaussian
#   noise again, with time running backwards), run from noise back to $t = 0$, passes through the same
#   distributions $p_t$ as the forward process at every $t$ (the same *marginals*: the distribution of $x_t$
#   at each $t$ on its own);
# * the **probability-flow ODE** $dx = \big[f - \tfrac12 g^2\, s(x, t)\big]\,dt$ adds no noise at all, yet
#   its solutions pass through the same $p_t$ as well. An ODE (ordinary differential equation) moves each
#   point along a fixed curve: the same start always gives the same end.
#
# Both need only the score. We write them in DDIM's variables (Song, Meng & Ermon 2021, Eq. 14):
#
# $$y = \frac{x_t}{\sqrt{\bar\alpha_t}}, \qquad \sigma_t = \sqrt{\frac{1-\bar\alpha_t}{\bar\alpha_t}},
# \qquad\text{so that}\qquad y = x_0 + \sigma_t\,\epsilon .$$
#
# In them the forward process only *adds* noise: no drift ($f = 0$), and the noise variance grows by
# $d(\sigma^2)$ in each instant ($g^2\,dt = d(\sigma^2)$). The noise level $\sigma$ plays the role of time,
# and the schedule's own timesteps give the grid of $\sigma$'s: no continuous version of the schedule is
# needed. The score in $y$
# is $\nabla_y \log p = \sqrt{\bar\alpha_t}\, s(x_t, t) = -\hat\epsilon/\sigma_t$. Going down one grid step, from
# $\sigma$ to $\sigma' < \sigma$, with $z \sim \mathcal{N}(0, I)$:
#
# | | the simplest step from $\sigma$ to $\sigma'$ |
# |---|---|
# | reverse SDE (Euler–Maruyama: the drift held fixed over the step, plus the step's noise) | $y' = y + (\sigma^2 - \sigma'^2)\,\nabla_y \log p + \sqrt{\sigma^2 - \sigma'^2}\; z$ |
# | probability-flow ODE, $dy/d\sigma = \hat\epsilon$ (Euler: the slope held fixed over the step) | $y' = y + (\sigma' - \sigma)\,\hat\epsilon$ |
#
# For small steps the SDE's drift is twice the ODE's: it overshoots towards the data and the noise it adds
# spreads the points out again. `course_utils.score` has both steps (`reverse_sde_step`,
# `probability_flow_step`) and the loops over a grid of timesteps (`solve_reverse_sde`, `solve_probability_flow`).
#
# **Where to start.** Euler–Maruyama assumes each step changes the noise level by a small fraction. The
# cosine schedule's last steps do not ($\beta_{999} = 0.999$ removes almost all the remaining signal in one
# step), so we start both processes at $t_\text{start}$, the noisiest timestep with $\beta_t \le 0.1$. There
# the blobs' centres have shrunk to radius $2\sqrt{\bar\alpha_t}$, and $\mathcal{N}(0, I)$ is a fine stand-in
# for $p_{t_\text{start}}$.

# %%
t_start = int((schedule.betas <= 0.1).nonzero().max())
a_start = schedule.alphas_cumprod[t_start].item()
print(f"beta_999 = {schedule.betas[-1]:.3f};  t_start = {t_start}: beta = {schedule.betas[t_start]:.3f}, "
      f"alpha_bar = {a_start:.1e}, sigma = {sigma_from_alpha_bar(a_start):.1f}, "
      f"blob centres at radius {2 * math.sqrt(a_start):.3f}")
assert t_start == nb03.SDE_START  # where Build 3's outcome starts its SDE too

num_paths = config.by_mode(fast=2000, cpu=4000, full=10000)
g = torch.Generator().manual_seed(6)
x_start = torch.randn(num_paths, 2, generator=g, dtype=torch.float64)  # (N, 2): the SAME starts for both
grid_steps = range(t_start, -1, -1)  # every timestep from t_start down to 0, then alpha_bar = 1

start = time.perf_counter()
sde_path = solve_reverse_sde(score_fn, x_start, grid_steps, schedule, generator=g)  # (t_start + 2, N, 2)
ode_path = solve_probability_flow(score_fn, x_start, grid_steps, schedule)  # (t_start + 2, N, 2)
print(f"{len(grid_steps)} steps of each for {num_paths} points in {time.perf_counter() - start:.1f} s")
sde_end, ode_end = sde_path[-1], ode_path[-1]

# %% [markdown]
# **Same marginals?** Compare each set of end points with a sample of the data of the same size, by the
# sliced Wasserstein distance (`course_utils.metrics.distances`: the average, over random directions, of
# the distance between the two sets' projections; 0 for identical sets). Two finite samples of one
# distribution are never at distance 0, so the yardstick is the same distance for six fresh draws of the
# data: what sampling error alone gives.

# %%
data_sample = make_toy2d("gaussian_mixture", n=num_paths, seed=100)  # "the data", as many points as the ends
fresh = [make_toy2d("gaussian_mixture", n=num_paths, seed=200 + i) for i in range(6)]
fresh_vs_data = [sliced_wasserstein(d, data_sample) for d in fresh]
sw = {"reverse SDE ends": sliced_wasserstein(sde_end.float(), data_sample),
      "ODE ends": sliced_wasserstein(ode_end.float(), data_sample)}
between = sliced_wasserstein(sde_end.float(), ode_end.float())
for name, value in sw.items():
    print(f"{name:<17} vs the data: {value:.3f}")
print(f"SDE ends vs ODE ends: {between:.3f}")
print(f"yardstick: a fresh draw of the data vs the data: {min(fresh_vs_data):.3f} to {max(fresh_vs_data):.3f} "
      f"({len(fresh)} draws of {num_paths} points)")
assert max(*sw.values(), between) < 2 * max(fresh_vs_data)

# %% [markdown]
# **Different paths?** The two processes started from the same points. Measure how far apart the two ends of
# each start are, and how often they sit in different blobs.

# %%
gap = (sde_end - ode_end).norm(dim=1)  # (N,)
blob_sde, blob_ode = (torch.cdist(e, means.double()).argmin(dim=1) for e in (sde_end, ode_end))
other_blob = (blob_sde != blob_ode).double().mean().item()
random_pairs = (fresh[0] - fresh[1]).norm(dim=1).mean().item()  # two independent draws, point by point
print(f"same start: mean distance between the SDE end and the ODE end {gap.mean():.2f} "
      f"(two unrelated data points: {random_pairs:.2f}; a blob's spread: {std})")
print(f"same start, different blobs: {other_blob:.0%} of the starts")
assert gap.mean() > 5 * std and other_blob > 0.5

# %%
shown = torch.arange(4)  # four starts, both paths of each
colors = plt.get_cmap("tab10")(range(len(shown)))
fig, axes = plt.subplots(1, 3, figsize=(14, 5.4), layout="constrained")
ax = axes[0]
for i, c in zip(shown, colors):
    ax.plot(sde_path[::4, i, 0], sde_path[::4, i, 1], color=c, lw=0.6, alpha=0.7)
    ax.plot(ode_path[:, i, 0], ode_path[:, i, 1], color=c, lw=2.5)
    ax.scatter(*x_start[i], color=c, s=45, marker="o", edgecolors="black", zorder=3)
    ax.scatter(*sde_end[i], color=c, s=70, marker="X", edgecolors="black", zorder=3)
    ax.scatter(*ode_end[i], color=c, s=55, marker="s", edgecolors="black", zorder=3)
ax.scatter(means[:, 0], means[:, 1], marker="+", s=80, color="black")
ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
       title="Four starts, both paths of each\n(one colour per start)")
for ax, name, ends, color in zip(axes[1:], sw, (sde_end, ode_end), ("tab:orange", "tab:blue")):
    scatter2d(ends, ax=ax, lim=3.5, color=color, s=3)
    ax.set_title(f"All {num_paths} {name}\nsliced Wasserstein to the data {sw[name]:.3f}")
handles = [plt.Line2D([], [], color="0.3", lw=0.6, label="reverse SDE path (every 4th step)"),
           plt.Line2D([], [], color="0.3", lw=2.5, label="ODE path"),
           plt.Line2D([], [], color="0.5", marker="o", mec="black", ls="", label="shared start"),
           plt.Line2D([], [], color="0.5", marker="X", mec="black", ls="", label="SDE end"),
           plt.Line2D([], [], color="0.5", marker="s", mec="black", ls="", label="ODE end"),
           plt.Line2D([], [], color="black", marker="+", ls="", label="blob centres"),
           plt.Line2D([], [], color="tab:orange", marker=".", ls="", label="SDE ends"),
           plt.Line2D([], [], color="tab:blue", marker=".", ls="", label="ODE ends")]
fig.legend(handles=handles, loc="outside lower center", ncols=8, fontsize=8)
fig.suptitle(f"Same starts at t = {t_start}: the same distribution at the end, reached along different paths")
plt.show()

# %% [markdown]
# Both clouds look like the data and measure like it: their distances to the data, and to each other, are of
# the size that separates two fresh draws of the data. Yet the same start usually ends in a different blob,
# about as far from its ODE twin as two unrelated data points are: the SDE's noise redecides the path at every
# step, the ODE follows one smooth curve. DDPM's ancestral step is another discretisation of this reverse SDE
# (Song et al. 2021 show it); the ODE is where DDIM comes from.
#
# ### DDIM is Euler's method on the probability-flow ODE
#
# Multiply Euler's step $y' = y + (\sigma' - \sigma)\,\hat\epsilon$ by $\sqrt{\bar\alpha'}$ and use
# $y - \sigma\hat\epsilon = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t} = \hat x_0$ (Exercise 1) and
# $\sqrt{\bar\alpha'}\,\sigma' = \sqrt{1-\bar\alpha'}$:
#
# $$x' = \sqrt{\bar\alpha'}\,\big(y - \sigma\hat\epsilon\big) + \sqrt{\bar\alpha'}\,\sigma'\,\hat\epsilon
#      = \sqrt{\bar\alpha'}\,\hat x_0 + \sqrt{1-\bar\alpha'}\,\hat\epsilon ,$$
#
# DDIM's update with $\eta = 0$ (Build 2), term for term (Song, Meng & Ermon 2021, Sec. 4.3). First the
# identity, step by step on a 50-step DDIM grid: the package's `DDIMSampler.step` against
# `probability_flow_step` with the score $-\hat\epsilon/\sqrt{1-\bar\alpha_t}$.

# %%
ddim.set_timesteps(50)
x = x_start[:500]
worst = 0.0
for t in ddim.timesteps.tolist():
    a, a_next = ddim.alpha_bar(t), ddim.alpha_bar(ddim.previous_timestep(t))  # 1 after the last step
    eps_hat = oracle(x, t)
    x_ddim = ddim.step(eps_hat, t, x).prev_sample
    x_euler = probability_flow_step(x, score_from_epsilon(eps_hat, a), a, a_next)
    worst = max(worst, (x_ddim - x_euler).abs().max().item())
    x = x_ddim
print(f"50 DDIM steps: max |DDIM step - Euler step of the ODE| = {worst:.1e}")
assert worst < 1e-10

# %% [markdown]
# So DDIM with $n$ steps solves the probability-flow ODE with Euler's method on $n$ grid points. Euler's
# method is **first order**: its error at the end shrinks in proportion to the step size, so doubling $n$
# should halve it. To see it, solve the ODE from the same 500 starts very accurately (Heun's method, which
# averages the slopes at both ends of each step and is second order, on every timestep from $t_\text{start}$),
# then run DDIM with $n$ steps on the grid from $t_\text{start}$ down (`timestep_spacing="trailing"`) and
# measure how far its end points are from that solution.

# %%
x_few = x_start[:500]
fine = solve_probability_flow(score_fn, x_few, grid_steps, schedule, solver="heun")[-1]  # (500, 2)
coarser = solve_probability_flow(score_fn, x_few, range(t_start, -1, -2), schedule, solver="heun")[-1]
print(f"Heun on every timestep vs on every other one: {(fine - coarser).norm(dim=1).mean():.1e} "
      "(the reference's own error)")

step_counts = (5, 10, 20, 50, 100, 200, t_start + 1)
ddim_errors = []
for n in step_counts:
    sampler = DDIMSampler(schedule, clip_sample=False, timestep_spacing="trailing", max_timestep=t_start)
    ends = denoise_from(x_few, sampler, n, generator=None)
    ddim_errors.append((ends - fine).norm(dim=1).mean().item())
    print(f"DDIM, {n:>3} steps: mean distance to the fine ODE solution {ddim_errors[-1]:.4f}   "
          f"(x n = {ddim_errors[-1] * n:.2f})")
assert all(e1 > e2 for e1, e2 in zip(ddim_errors, ddim_errors[1:]))  # more steps, closer
assert ddim_errors[-1] < ddim_errors[0] / 50
assert ddim_errors[step_counts.index(50)] < 0.1 * std  # 50 steps: within a tenth of a blob's spread

fig, ax = plt.subplots(figsize=(6.4, 4.2))
ax.loglog(step_counts, ddim_errors, marker="o", label=r"DDIM ($\eta = 0$) = Euler on the ODE")
ax.loglog(step_counts, [ddim_errors[2] * step_counts[2] / n for n in step_counts], ls="--", color="0.5",
          label=r"slope $-1$: error $\propto 1/n$")
ax.set(xlabel="number of DDIM steps n", ylabel="mean distance to the fine ODE solution",
       title="DDIM's end points converge to the ODE's")
ax.grid(alpha=0.3, which="both")
ax.legend()
plt.show()

# %% [markdown]
# The error falls in proportion to $1/n$ (the product "error $\times\, n$" in the table settles to a
# roughly constant value): DDIM behaves as a first-order ODE solver, and 50 steps already land within a
# tenth of a blob's spread of the exact flow. This is why DDIM copes with long strides: it follows a smooth
# curve, and a smooth curve can be followed with long strides. Notebook 09's faster samplers are better ODE
# solvers for the same curve.

# %% [markdown]
# ## 9. Extra: a perfect denoiser only remembers
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
# * The score $s(x, t) = \nabla_x \log p_t(x)$ of the noised data is the noise prediction rescaled,
#   $\mathbb{E}[\epsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\,s$, and Tweedie's formula
#   $\mathbb{E}[x_0 \mid x_t] = (x_t + (1-\bar\alpha_t)\,s)/\sqrt{\bar\alpha_t}$ is the least-squares denoiser.
# * The reverse SDE and the probability-flow ODE, both driven by the score, carry the same starting points to
#   the same distribution along different paths. In $y = x_t/\sqrt{\bar\alpha_t}$ and
#   $\sigma = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$, DDIM's step is Euler's step on the ODE, so its error
#   falls as $1/n$ with the number of steps.
#
# ## What comes next
#
# [04 · Training a U-Net](04_unet_training.ipynb) replaces the oracle with a
# network: a small U-Net trained with the loss you wrote in Exercise 3, then sampled with the very
# same loop.
