# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 02 · The forward process: destroying images on purpose
#
# A diffusion model learns to turn noise into images. Before it can learn that, we need the
# opposite direction: a fixed recipe that turns any image into noise, a little at a time. That
# recipe is the **forward process**. Nothing in it is learned; it is a few lines of arithmetic,
# and everything in the next notebooks leans on it.
#
# In this notebook you will:
#
# 1. take one step of the noising chain by hand and reproduce the course text's two-pixel example;
# 2. compare the three classic **noise schedules** (linear, cosine, scaled linear) by their
#    signal level $\bar\alpha_t$ and their signal-to-noise ratio, and see why cosine keeps images
#    recognisable for longer;
# 3. find the timestep at which the linear schedule has erased 99% of the signal;
# 4. write the **closed form** that jumps from a clean image straight to any timestep, and prove by
#    sampling that it matches running the chain step by step;
# 5. check that the process is **variance preserving**;
# 6. **build** the piece training uses: a whole batch of images noised at a batch of timesteps, one
#    per image, with noise from a generator you are given;
# 7. play with an explorer widget (schedule dropdown, timestep slider) that runs on your build.
#
# Five exercises and one build are checked automatically. A check says ✏️ *not attempted* until you
# fill in the function above it.
#
# **How long it takes.** Nothing is trained here; `COURSE_MODE` (printed below) only sets how many
# noised copies the sampling checks draw:
#
# | mode | noised copies (the closed-form check) | time |
# |---|---|---|
# | `fast` | 20,000 | about 10 seconds |
# | `cpu` | 100,000 | under half a minute on a laptop |
# | `full` | 200,000 | under a minute (not yet measured on a GPU) |

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_utils import config
from course_utils.data import load_digits, make_shapes
from course_utils.course.exercises import nb02, use_build
from course_utils.forward import forward_step, q_sample
from course_utils.schedules import SCHEDULE_NAMES, NoiseSchedule, get_schedule
from course_utils.viz import plot_schedules, show_images
from course_utils.course.widgets import ForwardExplorer

print(config.describe())

# %% [markdown]
# The forward process is cheap arithmetic, so this notebook computes on the CPU even when a GPU is
# present, and runs in seconds. The *mode* (`COURSE_MODE`: `fast`, `cpu` or `full`) only changes how
# many Monte Carlo samples we draw.
#
# We will use two small image sets that ship with the course (no download): handwritten digits
# (16×16, grayscale) and procedurally drawn coloured shapes (32×32, RGB). Pixels live in $[-1, 1]$.

# %%
digits, digit_labels = load_digits()                # (1797, 1, 16, 16) in [-1, 1]
shapes = make_shapes(n=8, seed=0)                   # shapes.images: (8, 3, 32, 32) in [-1, 1]
digit = digits[:1]                                  # (1, 1, 16, 16): the first digit, a zero
shape = shapes.images[3:4]                          # (1, 3, 32, 32)
print("digit label:", int(digit_labels[0]), "| shape:", shapes.captions[3])

# %% [markdown]
# ## 1. One step of the chain
#
# Start from a clean image $x_0$. Each step shrinks the current image a little and adds a little
# Gaussian noise:
#
# $$x_{\text{new}} = \sqrt{1-\beta}\,x_{\text{prev}} + \sqrt{\beta}\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$
#
# $\beta$ is the **variance** of the noise this step adds, so the noise is multiplied by
# $\sqrt{\beta}$ (the course text says "scaled by $\beta_t$" in words, but its worked example
# multiplies by $\sqrt{0.02} \approx 0.1414$, which is right). The factor $\sqrt{1-\beta}$, just
# below 1, shrinks the signal so that the total variance does not grow (section 8 shows why that
# matters). Each step has its own $\beta$; we also write $\alpha = 1 - \beta$.
#
# The course text works one step by hand on a two-pixel "image": $x_0 = [0.8, -0.3]$,
# $\beta = 0.02$, noise $\varepsilon = [0.5, -0.7]$. The package's `forward_step` does the same sum:

# %%
x0_pair = torch.tensor([0.8, -0.3], dtype=torch.float64)
eps_pair = torch.tensor([0.5, -0.7], dtype=torch.float64)
beta = 0.02

shrunk = math.sqrt(1 - beta) * x0_pair       # sqrt(0.98) = 0.98995 -> [0.792, -0.297]
added = math.sqrt(beta) * eps_pair           # sqrt(0.02) = 0.14142 -> [0.071, -0.099]
x1_pair = forward_step(x0_pair, beta, eps_pair)
print("signal part:", shrunk.numpy().round(3), "| noise part:", added.numpy().round(3), "| x1:", x1_pair.numpy().round(3))

# The course text's answer, to the 3 decimals it prints:
assert torch.allclose(x1_pair, torch.tensor([0.863, -0.396], dtype=torch.float64), atol=1e-3)

# %% [markdown]
# ### Exercise 1: one step by hand
#
# Write `my_forward_step(x_prev, beta_t, noise)` returning $\sqrt{1-\beta_t}\,x_{\text{prev}} + \sqrt{\beta_t}\,\text{noise}$.
# `x_prev` and `noise` are tensors of the same shape; `beta_t` is a Python float. The checker runs
# it on the example above and on a batch of images, and compares with `forward_step`.

# %%
def my_forward_step(x_prev, beta_t, noise):
    """One step of the forward chain. x_prev, noise: tensors of one shape; beta_t: a float in (0, 1]."""
    # BEGIN SOLUTION
    return math.sqrt(1 - beta_t) * x_prev + math.sqrt(beta_t) * noise
    # END SOLUTION


nb02.check_one_step(my_forward_step)

# %% [markdown]
# ## 2. A timestep convention, once and for all
#
# Papers number the steps $1, \dots, T$. Code (diffusers, this course) stores them in
# arrays indexed $0, \dots, T-1$. We follow the code: **index `t` of every schedule array is
# timestep `t`**, with $T = 1000$, so `t` runs from 0 to 999.
#
# - `betas[0]` is the noise variance of the *first* step (the paper's $\beta_1$), `betas[999]` the last.
# - `alphas_cumprod[t]` $= \bar\alpha_t = \prod_{s=0}^{t} (1-\beta_s)$ is the signal left after
#   steps $0, 1, \dots, t$, that is after $t + 1$ steps. So `alphas_cumprod[0]` $= 1 - \beta_0 = 0.9999$,
#   not exactly 1: the clean image, with no step applied, is simply called `x0` (the course text's
#   "$\bar\alpha_0 = 1$" describes that clean image).
# - "Timestep $t$" therefore means the image after $t+1$ steps of the chain; a 1-indexed count
#   would call our $t = 673$ "step 674". We write $x_t$ for the sample at timestep $t$, except that
#   $x_0$ always means the clean image (the one wrinkle of this convention).

# %%
linear = get_schedule("linear")                     # T = 1000 by default
print(linear, "| betas[0] =", float(linear.betas[0]), "| betas[999] =", float(linear.betas[999]))
print("alphas_cumprod[0] =", float(linear.alphas_cumprod[0]))

assert math.isclose(float(linear.alphas_cumprod[0]), 0.9999)   # = 1 - beta_0, one step already applied
assert len(linear) == 1000

# %% [markdown]
# ## 3. Running the chain on a real image
#
# Let us apply `forward_step` 1000 times to a digit and a shape, with the linear schedule's betas,
# and keep a snapshot at a few timesteps. The helper below only draws one labelled row of images.

# %%
def show_strip(ax, images, t_values, row_label):
    """Draw (N, C, H, W) images in one row, label each column with its timestep and the row on the left."""
    show_images(images, nrow=len(images), ax=ax)
    width = images.shape[-1] + 1                     # image_grid puts 1 pixel between images
    ax.set_xticks([i * width + (width - 2) / 2 for i in range(len(images))], [f"t = {t}" for t in t_values],
                  fontsize=8)
    ax.set_ylabel(row_label, rotation=0, ha="right", va="center", fontsize=9)


SNAPSHOTS = [0, 100, 250, 400, 500, 650, 800, 999]


def run_chain(x0, schedule, keep, generator):
    """Apply forward_step for t = 0 .. max(keep); return the snapshots at the timesteps in keep."""
    x, kept = x0, []
    for t in range(max(keep) + 1):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = forward_step(x, float(schedule.betas[t]), noise)
        if t in keep:
            kept.append(x)
    return torch.cat(kept)                            # (len(keep), C, H, W)


g = torch.Generator().manual_seed(0)
chain_digit = run_chain(digit, linear, SNAPSHOTS, g)
chain_shape = run_chain(shape, linear, SNAPSHOTS, g)

fig, axes = plt.subplots(2, 1, figsize=(10, 3.6))
show_strip(axes[0], chain_digit, SNAPSHOTS, "digit")
show_strip(axes[1], chain_shape, SNAPSHOTS, "shape")
fig.suptitle("The chain, one forward_step at a time (linear schedule)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The image fades and the noise takes over. By $t = 250$ the digit is faint, and from about
# $t = 500$ on nothing of it is visible. How fast this happens is decided entirely by the betas: the **schedule**.

# %% [markdown]
# ## 4. Three noise schedules
#
# - **Linear** (Ho et al. 2020, the original DDPM): $\beta$ rises in a straight line from $10^{-4}$
#   to $0.02$.
# - **Cosine** (Nichol & Dhariwal 2021): chosen so that $\bar\alpha_t$ itself follows a squared
#   cosine, $\bar\alpha(u) \propto \cos^2\!\big(\tfrac{u + s}{1 + s}\cdot\tfrac{\pi}{2}\big)$ with $u = t/T$, $s = 0.008$.
# - **Scaled linear** (Stable Diffusion): $\sqrt{\beta}$ rises in a straight line from
#   $\sqrt{0.00085}$ to $\sqrt{0.012}$.
#
# Two numbers describe how much of the image survives at timestep $t$: the signal level
# $\bar\alpha_t$ and the **signal-to-noise ratio** $\text{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$
# (plotted as $\log \text{SNR}$, since it spans many orders of magnitude).

# %%
schedules = {name: get_schedule(name) for name in SCHEDULE_NAMES}
axes = plot_schedules(list(schedules.values()))
plt.gcf().suptitle("Three noise schedules, T = 1000", y=1.02)
plt.show()

# %% [markdown]
# ### Exercise 2: read the plot
#
# Answer with the radio buttons and press **Check**.

# %%
nb02.signal_question(t=500)

# %% [markdown]
# The table puts numbers on the curves: $\bar\alpha_t$ at a few timesteps for each schedule.

# %%
print(f"{'t':>5} | " + " | ".join(f"{name:>13}" for name in schedules))
for t in [0, 100, 250, 500, 750, 999]:
    print(f"{t:>5} | " + " | ".join(f"{float(s.alphas_cumprod[t]):>13.4f}" for s in schedules.values()))

ab500 = {name: float(s.alphas_cumprod[500]) for name, s in schedules.items()}
assert ab500["cosine"] > ab500["scaled_linear"] > ab500["linear"]
assert round(ab500["linear"], 3) == 0.078 and round(ab500["cosine"], 3) == 0.492

# %% [markdown]
# The course text says the linear schedule "adds noise too fast at early steps" and that cosine
# "preserves structure longer". The numbers agree: halfway through, linear has kept under 8% of the
# signal's variance, cosine almost half. Here is what that looks like. Every row uses the same noise
# draw, so only the schedule differs.

# %%
noise_shape = torch.randn(shape.shape, generator=torch.Generator().manual_seed(1))
noise_digit = torch.randn(digit.shape, generator=torch.Generator().manual_seed(2))
ts = torch.tensor(SNAPSHOTS)

fig, axes = plt.subplots(6, 1, figsize=(10, 8))
for row, (name, s) in enumerate(schedules.items()):
    n = len(ts)
    show_strip(axes[row], q_sample(shape.expand(n, -1, -1, -1), ts, noise_shape.expand(n, -1, -1, -1), s),
               SNAPSHOTS, name)
    show_strip(axes[row + 3], q_sample(digit.expand(n, -1, -1, -1), ts, noise_digit.expand(n, -1, -1, -1), s),
               SNAPSHOTS, name)
axes[0].set_title("A shape noised under each schedule")
axes[3].set_title("A digit noised under each schedule")
fig.tight_layout()
plt.show()

# %% [markdown]
# With the linear schedule the shape is a blur by $t = 400$; with cosine it is still clearly
# visible at $t = 500$. A schedule that wipes the image out early wastes many of its timesteps on
# near-pure noise, where a model has little left to learn from.

# %% [markdown]
# ## 5. When is the signal gone? (the course text's Exercise 1)
#
# The course text asks: under the linear schedule, at which step does $\bar\alpha_t$ drop below
# $0.01$, i.e. when is less than 1% of the signal's variance left (a signal standard deviation of
# $\sqrt{0.01} = 0.1$)?
#
# ### Exercise 3
#
# Write `first_step_below(alphas_cumprod, threshold)`: given the `(T,)` tensor of $\bar\alpha_t$,
# return the **first 0-indexed** `t` with `alphas_cumprod[t] < threshold`, as a Python `int`. You
# may assume some `t` qualifies. The checker tries it on all three schedules and on a tiny
# hand-made array.

# %%
def first_step_below(alphas_cumprod, threshold):
    """First 0-indexed t with alphas_cumprod[t] < threshold (an int)."""
    # BEGIN SOLUTION
    below = alphas_cumprod < threshold               # (T,) booleans, False then True (alpha_bar decreases)
    return int(torch.nonzero(below)[0])
    # END SOLUTION


nb02.check_first_step_below(first_step_below)

# %% [markdown]
# The answer, drawn: $\bar\alpha_t$ on a log scale, so that the last 1% is visible.

# %%
ab = linear.alphas_cumprod
T_GONE = 673  # first t with alpha_bar_t < 0.01 under the linear schedule (checked just below)
assert ab[T_GONE - 1] >= 0.01 > ab[T_GONE]
ab_cos = schedules["cosine"].alphas_cumprod
assert ab_cos[934] >= 0.01 > ab_cos[935]        # cosine crosses the same line 262 timesteps later

fig, ax = plt.subplots(figsize=(7, 3.6))
for name, s in schedules.items():
    ax.semilogy(s.alphas_cumprod.numpy(), label=name)
ax.axhline(0.01, color="k", ls="--", lw=1, label=r"$\bar\alpha_t = 0.01$")
ax.axvline(T_GONE, color="tab:blue", ls=":", lw=1.5, label=f"linear crosses at t = {T_GONE}")
ax.set(xlabel="timestep t (0-indexed)", ylabel=r"$\bar\alpha_t$ (log scale)", ylim=(1e-5, 2),
       title=r"When does less than 1% of the signal remain?")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
plt.show()
print(f"alpha_bar[{T_GONE - 1}] = {float(ab[T_GONE - 1]):.5f}, alpha_bar[{T_GONE}] = {float(ab[T_GONE]):.5f}")

# %% [markdown]
# So $t = 673$ in our 0-indexed convention: the 674th application of the step, the paper's
# $\bar\alpha_{674}$. The last 327 timesteps of the linear schedule (673 to 999) all keep less than
# 1% of the signal variance. The cosine schedule crosses the same line only at $t = 935$.

# %% [markdown]
# ## 6. The closed form: jump straight to any timestep
#
# Running hundreds of steps to get one noisy image would make training painfully slow. Luckily,
# Gaussians compose. Apply the first two steps (timesteps 0 and 1, with $\alpha_s = 1 - \beta_s$) to $x_0$:
#
# $$\text{sample at timestep 1} = \sqrt{\alpha_1}\big(\sqrt{\alpha_0}\,x_0 + \sqrt{1-\alpha_0}\,\varepsilon_0\big) + \sqrt{1-\alpha_1}\,\varepsilon_1 .$$
#
# The two noise terms are independent Gaussians, so together they are one Gaussian whose variance
# is the sum, $\alpha_1(1-\alpha_0) + (1-\alpha_1) = 1 - \alpha_0\alpha_1$. Repeating the argument
# step after step gives, with $\bar\alpha_t = \prod_{s=0}^{t}\alpha_s$,
#
# $$q(x_t \mid x_0) = \mathcal N\!\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\big),
# \qquad\text{so}\qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon .$$
#
# One multiply and one add, whatever $t$ is. During training we pick a random $t$ for each image
# and jump there directly.
#
# ### Exercise 4: write the closed form
#
# Write `my_q_sample(x0, t, noise, alphas_cumprod)` for an integer timestep `t`. The checker
# compares it with the package's `q_sample` at several timesteps of all three schedules.

# %%
def my_q_sample(x0, t, noise, alphas_cumprod):
    """x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, for an int timestep t (0-indexed)."""
    # BEGIN SOLUTION
    alpha_bar = alphas_cumprod[t].to(x0.dtype)       # a 0-d tensor: timestep t's alpha_bar
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    # END SOLUTION


nb02.check_closed_form(my_q_sample)

# %% [markdown]
# A quick sanity check connects the two formulas: a schedule with a single step $\beta_0 = 0.02$
# has $\bar\alpha_0 = 0.98$, so its closed form at $t = 0$ is exactly the one step of section 1.

# %%
one_step_schedule = NoiseSchedule(torch.tensor([0.02]), name="one step")
assert torch.allclose(q_sample(x0_pair, 0, eps_pair, one_step_schedule), x1_pair)
print("closed form at t = 0:", q_sample(x0_pair, 0, eps_pair, one_step_schedule).numpy().round(3))

# %% [markdown]
# ## 7. Chain and closed form, side by side
#
# Top row: the chain from section 3 (`forward_step`, one step at a time). Bottom row: the closed
# form (`q_sample`, one jump per timestep). The noise draws differ, so the pixels differ, but the
# two rows should look like samples of the same thing.

# %%
closed_digit = q_sample(digit.expand(len(ts), -1, -1, -1), ts,
                        torch.randn((len(ts), *digit.shape[1:]), generator=torch.Generator().manual_seed(3)), linear)
fig, axes = plt.subplots(2, 1, figsize=(10, 3.4))
show_strip(axes[0], chain_digit, SNAPSHOTS, "chain\n(forward_step)")
show_strip(axes[1], closed_digit, SNAPSHOTS, "closed form\n(q_sample)")
fig.suptitle("The same digit, noised two ways (linear schedule)")
fig.tight_layout()
plt.show()

# %% [markdown]
# "Look alike" is not a proof. Let us measure. Take one pixel with value $x_0 = 0.8$ (the first pixel
# of the course text's example), copy it many times, run the chain on every copy independently,
# and record the copies at a few timesteps. The closed form predicts their mean,
# $\sqrt{\bar\alpha_t}\,x_0$, and their standard deviation, $\sqrt{1-\bar\alpha_t}$.

# %%
N_COPIES = config.by_mode(fast=20_000, cpu=100_000, full=200_000)
CHECK_TS = [0, 9, 99, 299, 672, 999]
PIXEL = 0.8

pixels = torch.full((N_COPIES, 1, 1, 1), PIXEL, dtype=torch.float64)    # (N, 1, 1, 1): N copies of one pixel
chain_pixels = run_chain(pixels, linear, CHECK_TS, torch.Generator().manual_seed(4)).reshape(len(CHECK_TS), -1)

print(f"{N_COPIES} copies of x0 = {PIXEL}, linear schedule")
print(f"{'t':>4} | {'chain mean':>10} {'sqrt(ab)*x0':>11} | {'chain std':>9} {'sqrt(1-ab)':>10}")
for t, values in zip(CHECK_TS, chain_pixels):
    a = float(linear.alphas_cumprod[t])
    mean, std = math.sqrt(a) * PIXEL, math.sqrt(1 - a)
    print(f"{t:>4} | {values.mean():>10.4f} {mean:>11.4f} | {values.std():>9.4f} {std:>10.4f}")
    # Monte Carlo tolerance: 5 standard errors (std/sqrt(N) for a mean, about std/sqrt(2N) for a std).
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(N_COPIES)
    assert abs(values.std() / std - 1) < 5 / math.sqrt(2 * N_COPIES)

# %% [markdown]
# Means and standard deviations agree to within Monte Carlo error at every timestep. Histograms
# compare the whole distributions, not just two numbers: the filled bars come from the chain, the
# outline from `q_sample`, the curve from the closed-form density.

# %%
closed_gen = torch.Generator().manual_seed(5)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, t in zip(axes, [9, 299, 999]):
    a = float(linear.alphas_cumprod[t])
    closed = q_sample(torch.full((N_COPIES,), PIXEL, dtype=torch.float64), t,
                      torch.randn(N_COPIES, generator=closed_gen, dtype=torch.float64), linear)
    chain = chain_pixels[CHECK_TS.index(t)]
    bins = torch.linspace(float(closed.min()), float(closed.max()), 60).numpy()
    ax.hist(chain.numpy(), bins=bins, density=True, alpha=0.5, label="chain (forward_step)")
    ax.hist(closed.numpy(), bins=bins, density=True, histtype="step", lw=1.5, color="k", label="closed form (q_sample)")
    grid = torch.linspace(float(bins[0]), float(bins[-1]), 200, dtype=torch.float64)
    pdf = torch.exp(-(grid - math.sqrt(a) * PIXEL) ** 2 / (2 * (1 - a))) / math.sqrt(2 * math.pi * (1 - a))
    ax.plot(grid.numpy(), pdf.numpy(), color="tab:red", lw=1, label=r"$\mathcal{N}(\sqrt{\bar\alpha_t}x_0,\,1-\bar\alpha_t)$")
    ax.set(xlabel="pixel value $x_t$", ylabel="density", title=rf"t = {t}: $\bar\alpha_t$ = {a:.3f}")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9)
fig.suptitle(f"One pixel, x0 = {PIXEL}, noised {N_COPIES} times")
fig.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %% [markdown]
# ## 8. Variance preservation
#
# Why the shrink factor $\sqrt{1-\beta_t}$? Take the variance of the closed form (the noise is
# independent of $x_0$):
#
# $$\operatorname{Var}(x_t) = \bar\alpha_t\,\operatorname{Var}(x_0) + (1-\bar\alpha_t).$$
#
# If the data have unit variance, $\operatorname{Var}(x_t) = \bar\alpha_t + 1 - \bar\alpha_t = 1$
# at **every** $t$, whatever the schedule: the signal's share shrinks while the noise's share grows,
# and they always add up to 1. Hence the name *variance preserving*. Data with another variance
# drift towards 1.
#
# We test this by sampling, with pixels of value $\pm 1$ (mean 0, variance exactly 1, and very much
# not Gaussian), and with real digit pixels (variance about 0.41).

# %%
N_VAR = config.by_mode(fast=10_000, cpu=20_000, full=20_000)
T = len(linear)
g = torch.Generator().manual_seed(6)
x0_unit = (torch.randint(0, 2, (1, N_VAR), generator=g) * 2 - 1).float().expand(T, -1)       # (T, N), +-1
x0_digit = digits.flatten()[torch.randint(0, digits.numel(), (N_VAR,), generator=g)].expand(T, -1)  # (T, N)
t_all = torch.arange(T)                                   # row t of each batch is noised to timestep t

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
worst = 0.0
for name, s in schedules.items():
    var_unit = q_sample(x0_unit, t_all, torch.randn(T, N_VAR, generator=g), s).var(dim=1)       # (T,)
    var_digit = q_sample(x0_digit, t_all, torch.randn(T, N_VAR, generator=g), s).var(dim=1)
    worst = max(worst, float((var_unit - 1).abs().max()))
    axes[0].plot(var_unit.numpy(), lw=1, alpha=0.8, label=name)
    axes[1].plot(var_digit.numpy(), lw=1, alpha=0.5, label=f"{name} (sampled)")
    theory = s.alphas_cumprod * digits.var().double() + 1 - s.alphas_cumprod
    axes[1].plot(theory.numpy(), color="k", ls="--", lw=1, zorder=3)
axes[1].plot([], [], color="k", ls="--", lw=1, label="formula")
axes[0].set(title=r"$x_0 = \pm 1$: unit variance", ylim=(0, 1.25))
axes[1].set(title=f"digit pixels: Var($x_0$) = {float(digits.var()):.2f}")
for ax in axes:
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="timestep t", ylabel=r"Var($x_t$) across samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
fig.suptitle("Variance of x_t at every timestep")
fig.tight_layout()
plt.show()

print(f"unit-variance data: largest |Var(x_t) - 1| over all t and schedules = {worst:.4f}")
# Sampling error of a variance from N draws is about sqrt(2/N) (0.014 for N = 10,000); allow 5 times that.
assert worst < 5 * math.sqrt(2 / N_VAR)

# %% [markdown]
# For unit-variance data the variance is flat at 1 (up to sampling noise) under all three
# schedules; for the digits it climbs from 0.41 to 1, following the dashed black formula curves.
#
# Without the shrink factor, a chain $x_t = x_{t-1} + \sqrt{\beta_t}\,\varepsilon_t$ would simply pile up
# variance: $\operatorname{Var}(x_{T-1}) = \operatorname{Var}(x_0) + \sum_t \beta_t$.

# %%
no_shrink_var = 1 + float(linear.betas.sum())
print(f"without the shrink factor, unit-variance data end with variance {no_shrink_var:.2f}")
assert round(no_shrink_var, 2) == 11.05    # 1 + 1000 * (1e-4 + 0.02) / 2 = 11.05

# %% [markdown]
# A variance of 11 would leave the final images nowhere near the $\mathcal N(0, I)$ noise that
# generation starts from. With the shrink factor, $x_{T-1}$ is (almost exactly) standard Gaussian
# noise, whatever image we started from.

# %% [markdown]
# ## 9. Build: noise a whole batch at a batch of timesteps
#
# Training (notebook 04) never noises one image at one timestep. It takes a batch of images, draws a
# random timestep **for each image**, jumps each image to its own timestep with the closed form, and
# keeps the noise it added: that noise is what the network learns to predict. Section 8 already did
# this with the package's `q_sample` (row $t$ of its batch at timestep $t$). Now you build it, and the
# explorer of section 10 runs on what you build.
#
# Write `my_noise_batch(x0, t, schedule, generator)` that returns `(x_t, noise)`:
#
# - `x0`: `(B, C, H, W)` clean images; `t`: a `(B,)` LongTensor, image `i`'s timestep `t[i]`
#   (0-indexed); `schedule`: a `NoiseSchedule` (`schedule.alphas_cumprod` is the `(T,)` tensor of
#   $\bar\alpha_t$); `generator`: a `torch.Generator`.
# - Draw standard Gaussian `noise` of `x0`'s shape **from `generator`**
#   (`torch.randn(..., generator=generator)`), so that the same seed gives the same batch.
# - Return $x_t[i] = \sqrt{\bar\alpha_{t[i]}}\,x_0[i] + \sqrt{1-\bar\alpha_{t[i]}}\,\text{noise}[i]$ for
#   every `i` at once, without a Python loop, and the `noise`.
#
# `schedule.alphas_cumprod[t]` has shape `(B,)`: reshape it to `(B, 1, 1, 1)` so that it broadcasts
# over C, H and W and each image gets its own value. Here is what the checker grades:

# %%
nb02.NOISE_BATCH_BUILD

# %%
def my_noise_batch(x0, t, schedule, generator):
    """(x_t, noise): image x0[i] noised to its own timestep t[i] (0-indexed), the noise drawn from generator."""
    # BEGIN SOLUTION
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)    # (B, C, H, W): one draw per pixel
    alpha_bar = schedule.alphas_cumprod[t].to(x0.dtype).view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise, noise
    # END SOLUTION


noise_batch_result = nb02.check_noise_batch(my_noise_batch)
noise_batch_result

# %% [markdown]
# From here on the notebook noises with your function once the check says it is correct, and with
# the package's version (`nb02.noise_batch`, which draws the noise and calls `q_sample`) until then,
# so everything below runs either way. One call noises a digit at all the snapshot timesteps at once:

# %%
noise_fn = use_build(noise_batch_result, my_noise_batch, nb02.noise_batch, "noise_batch")
t_row = torch.tensor(SNAPSHOTS)                                          # (8,): one timestep per image
x_row, noise_row = noise_fn(digit.expand(len(t_row), -1, -1, -1), t_row, linear, torch.Generator().manual_seed(7))
assert x_row.shape == noise_row.shape == (len(t_row), 1, 16, 16)

fig, ax = plt.subplots(figsize=(10, 1.9))
show_strip(ax, x_row, SNAPSHOTS, "one call")
ax.set_title("One batch, one call: image i noised to its own timestep t[i] (linear schedule)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 10. Explore
#
# Pick a schedule and drag the slider. The images are noised by `noise_fn` (your build once it is
# correct), with a generator seeded the same way at every move of a control, so the noise stays the
# same and only the noise level changes. The line above the images shows $\bar\alpha_t$, the signal
# and noise standard deviations and the SNR. (The widget needs a live kernel; on a static page you
# see its starting state only.)

# %%
explorer = ForwardExplorer({"digits": digits[:8], "shapes": shapes.images}, schedules=schedules, seed=0,
                           noise_batch=noise_fn)
explorer

# %% [markdown]
# Things to try: at $t = 250$, compare the linear and cosine schedules. Find the timestep at which
# you can no longer tell which digit is which, under each schedule. Near either end of the slider,
# watch the SNR readout change by orders of magnitude while $\bar\alpha_t$ barely moves.
#
# ### Exercise 5: where signal and noise are equal
#
# SNR $= 1$ means the signal and the noise have the same variance. Use the explorer (dropdown on
# *cosine*) to find where that happens, type the timestep and press **Check**.

# %%
nb02.snr_question("cosine")

# %% [markdown]
# ## Summary
#
# - One step of the chain: $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$; the course
#   text's two pixels $[0.8, -0.3]$ become $[0.863, -0.396]$.
# - The closed form $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ gives the same
#   distribution as running the chain, in one jump. We checked it by sampling.
# - The schedule decides how fast the image disappears. Linear erases 99% of the signal variance by
#   $t = 673$ (0-indexed); cosine keeps about half of it at $t = 500$ and keeps shapes visible for longer.
# - The process preserves unit variance at every timestep, so it ends in standard Gaussian noise.
# - Training noises a whole batch at once, each image at its own timestep: `alphas_cumprod[t]` reshaped
#   to `(B, 1, 1, 1)`, the noise drawn from a generator and kept, since the network learns to predict it.
#
# ## What comes next
#
# The forward process is easy because it only destroys. In
# [03 · The reverse process](03_reverse_process.ipynb) we go the other way: from noise back to an
# image, one denoising step at a time, using exactly the quantities defined here
# ($\beta_t$, $\bar\alpha_t$, and the closed form).
