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
# # 10 · Evaluation, failure modes and production notes
#
# Nine notebooks built diffusion models up from random pixels to a distilled two-step student. This
# last one asks three practical questions about everything we built:
#
# 1. **How far can a quality number be trusted?** FID moves with the number of samples, and a model
#    that only copies its training set scores beautifully. We measure both, and build the check that
#    catches the copier.
# 2. **What goes wrong, and what fixes it?** The course text's failure-fix table, reproduced on our
#    own models: each row is caused on purpose, measured, fixed, and measured again.
# 3. **What does it cost to serve?** Memory and time per step by precision and batch size, and the
#    "latency bottleneck order" of a text-to-image model, measured on our latent text model.
#
# It ends with a self-check: the course text's retrieval prompts and interview questions, where you
# write your answer before you may see ours.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | digits scored | prompts | fine-tuning | time |
# |---|---|---|---|---|
# | `fast` | 200 (FID curve), 64 (failure rows) | 30 | 10 steps, two runs (shows the stored 300-step runs) | under a minute |
# | `cpu` | 898, the digits-FID count (the bf16 row: 100 where the CPU emulates bf16) | all 90 captions | 300 steps, two runs | about 8 minutes on a laptop |
# | `full` | 898 | 90 | 300 steps | not yet measured on a GPU |
#
# One build (digits-FID itself, which section 1 then measures with), three coding exercises and two
# questions, each with an automatic checker.

# %%
import logging

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg
import torch
from IPython.display import Markdown, display
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

from course_utils import config, metrics, pretrained
from course_utils.course.stored import stored_run
from course_utils.course import evaluation, failures, production, speed
from course_utils.data import load_dark_and_bright_digits, load_digits
from course_utils.data.shapes import BACKGROUNDS, COLORS, SHAPES, caption
from course_utils.course.exercises import nb10, use_build
from course_utils.metrics.distances import nearest_data
from course_utils.profiling import time_call
from course_utils.course.quiz import SelfCheckQuiz
from course_utils.schedules import get_schedule
from course_utils.viz import show_images

MODE, DEVICE = config.get_mode(), config.get_device()
N_EVAL = config.by_mode(fast=200, cpu=metrics.NUM_SAMPLES, full=metrics.NUM_SAMPLES)
COUNTS = config.by_mode(fast=(25, 50, 100, 200), cpu=(50, 100, 200, 400, 898), full=(50, 100, 200, 400, 898))
N_ROW = config.by_mode(fast=64, cpu=metrics.NUM_SAMPLES, full=metrics.NUM_SAMPLES)
N_PROMPTS = config.by_mode(fast=30, cpu=90, full=90)
FINETUNE = config.by_mode(fast={"checkpoints": (0, 10), "lr": 1e-3, "n": 16},  # proves the loop; see 2.4
                          cpu={"checkpoints": (0, 40, 80, 120, 200, 300), "lr": 1e-3},
                          full={"checkpoints": (0, 40, 80, 120, 200, 300), "lr": 1e-3})
print(config.describe())
print(f"{N_EVAL} digits for the FID curve, {N_ROW} per failure row, {N_PROMPTS} prompts")

digits, labels = load_digits()  # all 1,797: what digits-ddpm was trained on
ddpm = pretrained.load("digits-ddpm", device=DEVICE)
samples = ddpm.sample(N_EVAL, steps=10, generator=torch.Generator().manual_seed(0), batch_size=N_EVAL)
print(f"{ddpm}\n{len(samples)} samples drawn with DDIM-10")

# %% [markdown]
# ## 1. How far can a quality number be trusted?
#
# The course text lists FID's problems: it is sensitive to the number of samples ("use 50K
# minimum"), it can be gamed by memorising the training images, and two models with the same FID
# can feel very different. Our digits-FID (notebook 05) measures the same thing in a digit
# classifier's feature space, so we can test each claim directly.
#
# ### 1.1 Build: digits-FID from features
#
# FID fits a Gaussian (mean $\mu$ and covariance $\Sigma$) to each set of image features and
# measures the distance between the two Gaussians, the Fréchet distance:
#
# $$d^2 = \lVert\mu_1-\mu_2\rVert^2 + \operatorname{Tr}(\Sigma_1) + \operatorname{Tr}(\Sigma_2) - 2\operatorname{Tr}\big((\Sigma_1\Sigma_2)^{1/2}\big).$$
#
# The first term compares where the two clouds of features sit, the traces compare their spread
# and shape. FID proper uses the 2,048 features of an Inception network; digits-FID uses the 64
# features of the course's digit classifier (`metrics.features`), so it can be computed in
# seconds. Everything else is the formula, and you write it.
#
# Write `my_frechet(f1, f2)`: `f1` is an `(N, D)` and `f2` an `(M, D)` float64 tensor of features, one
# row per image, and it returns $d^2$ as a float.
#
# - $\mu$ is the mean over the rows, shape `(D,)`; $\Sigma$ is the `(D, D)` covariance between the
#   **columns**, `np.cov(f, rowvar=False)` (numpy's default, like `torch.cov`'s, treats each row as a
#   variable).
# - $(\Sigma_1\Sigma_2)^{1/2}$ is a **matrix** square root, the matrix $R$ with $RR = \Sigma_1\Sigma_2$:
#   `scipy.linalg.sqrtm`, not `np.sqrt`, which takes the root of each entry.
# - With fewer images than features (N = 25 or 50 against D = 64 in `fast` mode's curve below) the
#   covariances are singular and `sqrtm` returns complex numbers with tiny imaginary parts: take the
#   real part of the trace.
#
# The package's `metrics.frechet_distance` computes the same number another way (through the
# eigenvalues of a symmetric matrix, which never go complex). The checker grades:

# %%
nb10.FRECHET_BUILD

# %%
def my_frechet(f1, f2):
    """Fréchet distance between Gaussians fitted to f1 (N, D) and f2 (M, D), one row per image."""
    # BEGIN SOLUTION
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)                          # (D,)
    cov1, cov2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)      # (D, D): the columns are the variables
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)                            # the matrix square root of the product
    trace = np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean).real  # complex round-off when singular
    return float(((mu1 - mu2) ** 2).sum() + trace)
    # END SOLUTION


frechet_result = nb10.check_frechet(my_frechet, samples)
frechet_result

# %% [markdown]
# From here on section 1 measures every FID with your function once the check says it is correct,
# and with the package's (`nb10.frechet_from_features`) until then. The features are computed once:
# the reference is half "A" of the real digits, what every digits-FID is measured against; the
# floor uses half "B", real digits the reference never saw.

# %%
frechet = use_build(frechet_result, my_frechet, nb10.frechet_from_features, "Fréchet distance")
reference = metrics.reference_features()   # (899, 64): half A's features
real_half = metrics.reference_split()[1]   # half B: 898 real digits


def digits_fid_of(features):
    """digits-FID of (n, 64) features against the reference half A."""
    return frechet(features, reference)


# The same nested random subsets as evaluation.fid_by_sample_count(samples, COUNTS, seed=0).
subsets = torch.Generator().manual_seed(0)
sample_features = metrics.features(samples[torch.randperm(len(samples), generator=subsets)[:max(COUNTS)]])
real_features = metrics.features(real_half[torch.randperm(len(real_half), generator=subsets)[:max(COUNTS)]])
print(f"features: samples {tuple(sample_features.shape)}, real digits {tuple(real_features.shape)}, "
      f"reference {tuple(reference.shape)}")

# %% [markdown]
# ### 1.2 FID depends on N
#
# With few samples the covariance estimate is noisy, and noise only ever *adds* distance: FID is
# **biased upwards** at small N. So a raw FID means little on its own; it means something next to
# the **floor**, the FID of *real* digits against the reference at the same N. Below, the same
# samples are scored on nested subsets of growing size.

# %%
rows = []
for n in COUNTS:
    fid, floor = digits_fid_of(sample_features[:n]), digits_fid_of(real_features[:n])
    rows.append({"n": n, "fid": fid, "floor": floor, "ratio": fid / floor})
for r in rows:
    print(f"N = {r['n']:4d}: FID {r['fid']:.3f}, real-vs-real floor {r['floor']:.3f}, ratio {r['ratio']:.2f}")

# %% [markdown]
# KID (kernel inception distance, Bińkowski et al. 2018) compares the same features with a kernel
# instead of Gaussians, and its estimator is **unbiased**: its average does not drift with N, only
# its spread shrinks. Real digits score about 0 at every N, so no floor is needed.

# %%
kid = [metrics.digits_kid(samples[:n]) for n in COUNTS]
kid_real = [metrics.digits_kid(real_half[:n]) for n in COUNTS]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
ax1.plot(COUNTS, [r["fid"] for r in rows], "o-", label="digits-ddpm samples")
ax1.plot(COUNTS, [r["floor"] for r in rows], "s--", color="gray", label="real digits (the floor)")
ax1.set(xscale="log", xlabel="number of images N", ylabel="digits-FID", title="FID falls with N, even for real data")
ax2.errorbar(COUNTS, [1000 * m for m, _ in kid], [1000 * s for _, s in kid], fmt="o-", capsize=3,
             label="digits-ddpm samples")
ax2.errorbar(COUNTS, [1000 * m for m, _ in kid_real], [1000 * s for _, s in kid_real], fmt="s--", color="gray",
             capsize=3, label="real digits")
ax2.axhline(0, color="black", lw=0.8)
ax2.set(xscale="log", xlabel="number of images N", ylabel="digits-KID x 1000 (mean ± std over subsets)",
        title="KID's mean does not drift; its spread shrinks")
for ax in (ax1, ax2):
    ax.set_xticks(COUNTS, [str(n) for n in COUNTS])
    ax.minorticks_off()
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **Question A.** Answer it from the numbers above.

# %%
nb10.fid_count_question(rows)

# %% [markdown]
# ### 1.3 What FID rewards and misses: the memoriser
#
# A "model" that returns random *training* images is the worst generative model imaginable: it
# cannot make anything new. Score it.

# %%
copier = evaluation.memorizer(digits, N_EVAL, seed=0)
copier_fid = digits_fid_of(metrics.features(copier))
real = next(r for r in rows if r["n"] == N_EVAL)
print(f"at N = {N_EVAL}: memoriser FID {copier_fid:.3f}, digits-ddpm {real['fid']:.3f}, real floor {real['floor']:.3f}")

# %% [markdown]
# The copier beats our real model and sits at (or even under) the real-data floor: its images *are*
# real digits. FID compares distributions of features; it has no idea whether a sample is new.
#
# The check that catches it asks a different question: **how close is each sample to its nearest
# training image, compared with how close real images are to each other?** A held-out real digit is
# typically some distance from its nearest neighbour in the training set; a sample much closer than
# almost any real digit ever is, is a copy. Write the core of that check.
#
# **Exercise 1.** `my_copy_share(samples, train, threshold)` returns the share (0 to 1) of `samples`
# `(N, C, H, W)` whose RMS pixel distance, $\sqrt{\text{mean}((a-b)^2)}$ over the pixels, to the
# **nearest** image of `train` `(M, C, H, W)` is below `threshold`. (`torch.cdist` on flattened images
# gives Euclidean distances; divide by the square root of the number of pixels to get RMS.)

# %%
def my_copy_share(samples, train, threshold):
    # BEGIN SOLUTION
    a, b = samples.flatten(1).double(), train.flatten(1).double()  # (N, D), (M, D)
    nearest = torch.cdist(a, b).min(dim=1).values / a.shape[1] ** 0.5  # (N,) RMS distance
    return float((nearest < threshold).float().mean())
    # END SOLUTION


nb10.check_copy_share(my_copy_share)

# %% [markdown]
# The library's version, `evaluation.memorization_report`, sets the threshold from the data: the
# distance under which only 1% of held-out real digits fall. Run it on the copier and on our real
# samples, and look at a few samples next to their nearest training digit.

# %%
for name, x in (("memoriser", copier), ("digits-ddpm", samples)):
    rep = evaluation.memorization_report(x, digits)
    print(f"{name:12s} median distance to nearest training digit {rep['median']:.3f} "
          f"(real digits: {rep['yardstick_median']:.3f}); copies: {100 * rep['copies']:.1f}% "
          f"(threshold {rep['threshold']:.3f})")

dist, idx = nearest_data(samples[:12], digits)
fig, axes = plt.subplots(1, 2, figsize=(12, 2.2))
show_images(samples[:12], nrow=12, ax=axes[0], title="12 digits-ddpm samples")
show_images(digits[idx], nrow=12, ax=axes[1],
            title=f"their nearest training digits (RMS distance {dist.min():.2f} to {dist.max():.2f})")
fig.tight_layout()
plt.show()

# %% [markdown]
# Our model's samples are about as far from the training set as real held-out digits are, and
# almost none fall under the copy threshold; the copier is caught 100%. The same check, in the
# feature space of a big image model instead of pixels, is how researchers found that Stable
# Diffusion does reproduce some heavily duplicated training images (Carlini et al. 2023). It is also
# the first tool for the copyright question of the course text: you cannot argue about what a model
# copies without measuring it.
#
# The other blind spot the course text names, **prompt adherence**, is why notebook 05 added a
# second metric (the classifier's accuracy on the label asked for, the shapes judge for prompts):
# FID never sees the prompt.
#
# ## 2. The failure-fix table, reproduced
#
# The course text's table names the failures you will meet in practice. Here are six of them,
# each caused on purpose on our models, measured, fixed and measured again. Every `failures.demo_*`
# function is short; read it (`failures.demo_schedule??`) to see exactly what runs.
#
# ### 2.1 Blurry, poor samples: a schedule that destroys the image too early
#
# `digits-class-linear` is `digits-class` with one change: DDPM's original linear schedule instead of
# the cosine one. Same network, data, training budget and seed. The linear schedule has already
# erased the digits (alpha bar below 0.01) by step 673 of 1,000; the cosine one keeps them until
# step 935.

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.2), gridspec_kw={"width_ratios": [1.2, 1, 1]})
for name in ("linear", "cosine"):
    ax1.plot(get_schedule(name).alphas_cumprod, label=name)
ax1.axhline(0.01, color="gray", ls=":", label="alpha bar = 0.01")
ax1.set(xlabel="timestep t", ylabel="alpha bar t (signal kept)", title="How fast each schedule erases the image")
ax1.legend()
schedule_demo = failures.demo_schedule(n=N_ROW, steps=20, device=DEVICE)
for ax, key, title in ((ax2, "broken", "linear schedule"), (ax3, "fixed", "cosine schedule")):
    show_images(schedule_demo.images[key][:32], nrow=8, ax=ax, title=title)
fig.tight_layout()
plt.show()
print(f"digits-FID at N = {N_ROW}: linear {schedule_demo.broken:.3f}, cosine {schedule_demo.fixed:.3f}")

# %% [markdown]
# With the linear schedule, a third of the training steps are spent on inputs that are already pure
# noise, and the fine, low-noise end where strokes get their shape gets fewer of them; the samples
# come out with softer, malformed strokes, and FID says so. Nichol & Dhariwal (2021) introduced the
# cosine schedule for exactly this reason, on small images like ours.
#
# ### 2.2 and 2.3 The prompt ignored, and burnt colours: guidance too weak or too strong
#
# One sweep of the latent text model `shapes-latent` over the guidance scale (notebook 05), one image
# per prompt from the same noise at each scale, scored by the shapes judge (are shape, colour,
# background all right, and is it a picture at all?) and by the share of pixels at the very ends of
# the colour range.

# %%
captions = [caption(s, c, b) for s in SHAPES for c in COLORS for b in BACKGROUNDS if c != b]
order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(0))
prompts = [captions[i] for i in order[:N_PROMPTS]]
ignored, burnt = failures.demo_guidance(prompts, steps=15, low=0.5, good=3.0, high=20.0, device=DEVICE)

fig, axes = plt.subplots(1, 3, figsize=(15, 2.8))
for ax, (w, x) in zip(axes, ((0.5, ignored.images["broken"]), (3.0, ignored.images["fixed"]),
                             (20.0, burnt.images["broken"]))):
    show_images(x[:10], nrow=10, ax=ax, title=f"w = {w:g}: adherence {ignored.details['adherence'][w]:.0%}, "
                                               f"saturated {ignored.details['saturation'][w]:.1%}")
fig.tight_layout()
plt.show()
print("the first prompts:", "; ".join(prompts[:4]), "...")

# %% [markdown]
# At w = 0.5, halfway between the unconditional model and the plain conditional one, many of the
# images ignore part of the prompt, typically the colour or the background; w = 3 fixes that. (At
# w = 1 this model already follows most prompts; a weaker model, or deterministic DDIM, needs the
# push more.) At w = 20 the guided prediction overshoots: colours pile up at the ends of the range,
# edges fringe, and adherence itself starts to fall. The course text's advice (w around 7 for
# Stable Diffusion) is the same trade-off on a bigger model; our tiny model peaks earlier.
#
# **Exercise 2.** Write the saturation metric: `my_saturation(images, threshold)` returns the share
# of **all** pixel values (every image, channel and position) whose absolute value is at least
# `threshold` (both ends of [-1, 1]).

# %%
def my_saturation(images, threshold):
    # BEGIN SOLUTION
    return float((images.abs() >= threshold).float().mean())
    # END SOLUTION


nb10.check_saturation(my_saturation)

# %% [markdown]
# ### 2.4 Fine-tune collapse
#
# DreamBooth and LoRA fine-tune a big model on a handful of images of one subject. Push it too far
# (too many steps, too high a learning rate, too few images) and the model forgets everything else:
# every sample becomes a near-copy of one of the handful. We fine-tune `digits-class` on four
# training 3s, twice with the same steps and seed: once plainly, once with **regularisation
# images** mixed in half and half (64 3s drawn from the model *before* fine-tuning: DreamBooth's
# prior preservation). Each run is one continuous fine-tuning; at a few checkpoints along it we
# draw 64 3s and count how many are copies of the four (closer to one than 99% of real digits are
# to their nearest neighbour).
#
# The two runs take about 3.3 minutes on two CPU cores, too long for `fast` mode. There the notebook
# fine-tunes 10 steps of each run, which proves the loop, and then shows the **stored run**: the same
# call at `cpu` mode's size, recorded by `benchmarks/failure_modes.py --write-finetune` on the
# machine it names. The plot marks this run's own points on the stored curves. `cpu` and `full` mode
# run all 300 steps live.

# %%
collapse = failures.demo_finetune(**FINETUNE, device=DEVICE)
live, stored = collapse, MODE == "fast"
if stored:
    collapse = failures.recorded_finetune()
    print(f"stored run: {collapse.samples}, torch {collapse.details['recorded']['torch']}")
runs = {"plain": "plain", "regularized": "with regularisation images"}  # the runs' keys and their labels

fig, axes = plt.subplots(1, 4, figsize=(16, 3.2), gridspec_kw={"width_ratios": [0.6, 1, 1, 1.2]})
show_images(collapse.images["targets"], nrow=2, ax=axes[0], title="the 4 images")
steps = collapse.details["settings"]["checkpoints"][-1]
tag = "stored run: " if stored else ""
show_images(collapse.images["broken"][:32], nrow=8, ax=axes[1], title=f"{tag}plain, {steps} steps")
show_images(collapse.images["fixed"][:32], nrow=8, ax=axes[2], title=f"{tag}regularised, {steps} steps")
for key, name in runs.items():
    c = collapse.details[key]
    line, = axes[3].plot([r["steps"] for r in c], [100 * r["copy_share"] for r in c], "o-", label=name)
    if stored:
        axes[3].plot([r["steps"] for r in live.details[key]], [100 * r["copy_share"] for r in live.details[key]],
                     "x", ms=10, mew=2, color=line.get_color(), label=f"{name}: this run")
axes[3].set(xlabel="fine-tuning steps", ylabel="% of samples that copy one of the 4",
            title="Collapse grows with training" + (" (stored run)" if stored else ""))
axes[3].legend(fontsize=8)
fig.tight_layout()
plt.show()
for key, name in runs.items():
    print(f"{name:38s} " + ", ".join(f"{r['steps']} steps: {r['copy_share']:.0%}" for r in collapse.details[key]))
if stored:
    for key, name in runs.items():
        print(f"{'this run, ' + name:38s} " + ", ".join(f"{r['steps']} steps: {r['copy_share']:.0%}" for r in live.details[key])
              + f" ({live.details['settings']['n']} digits per point)")

# %% [markdown]
# Plain fine-tuning turns a growing share of the samples into copies of the four images; the curve
# shows the first fix (stop early, while the share is still near 0), the regularised run the second
# (keep showing the model what the rest of the class looks like). Real fine-tuning tools watch
# exactly these two numbers: samples from a fixed set of seeds at checkpoints, and their distance to
# the fine-tuning images.
#
# ### 2.5 A different batch on every run: no seed control
#
# `sample()` draws its starting noise (and, for DDPM, the noise of every step) from a random number
# generator. Without one of your own it uses the global one, whose state moves on with every draw
# anywhere in the program.

# %%
seed_demo = failures.demo_seed(n=8, steps=10, device=DEVICE)
fig, axes = plt.subplots(1, 2, figsize=(12, 2.2))
show_images(seed_demo.images["broken"], nrow=8, ax=axes[0],
            title=f"no generator: run 1 over run 2 (largest difference {seed_demo.broken:.2f})")
show_images(seed_demo.images["fixed"], nrow=8, ax=axes[1],
            title=f"seeded generator: run 1 over run 2 (difference {seed_demo.fixed:.2f})")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Exercise 3.** Write `my_draw(seed)` so that it always returns the same four digits for the same
# seed, whatever else the program has drawn in between: sample 4 digits from `ddpm` with 5 DDIM steps.

# %%
def my_draw(seed):
    # BEGIN SOLUTION
    return ddpm.sample(4, steps=5, generator=torch.Generator().manual_seed(seed))
    # END SOLUTION


nb10.check_seeded_draw(my_draw)

# %% [markdown]
# ### 2.6 Precision
#
# The course text's precision failures are Stable Diffusion's: SDXL's VAE overflows float16's largest
# number (65,504) and decodes to black or grid-patterned images, which is why its diffusers config
# sets `force_upcast=True` and decodes it in float32 (SD 1.5's VAE stays within range). Do they show on our models? Notebook 06 measured our VAE's largest activation at 9.8, far
# from that limit (its float16 decode differs from float32 by at most 0.003). Here we run the digits
# U-Net in bfloat16 (7 stored bits of mantissa, 8 with the implicit leading one: about 2 decimal
# digits) while the sampler's own arithmetic
# stays in float32, which is how diffusers' pipelines use reduced precision.

# %%
# A CPU without bf16 instructions emulates bf16: on a 2-core CPU without them one U-Net call
# takes 8x (batch 4) to over 20x (batch 128) as long as in fp32, and 898 digits x 20 steps took 14.5
# minutes. So measure first, and compare 100 digits where bf16 is slow: both runs share their noise
# and sampler, so the gap between them is the precision's at any N. Fast mode: 16 digits x 4 steps.
slowdown = production.precision_slowdown(pretrained.load("digits-class", device=DEVICE), "bf16")
n_precision = config.by_mode(fast=16, cpu=N_ROW if slowdown < 3 else 100, full=N_ROW)
print(f"one U-Net call takes {slowdown:.1f}x as long in bf16 as in fp32 on this {DEVICE.type}: "
      f"comparing {n_precision} digits")
precision_demo = failures.demo_precision(n=n_precision, steps=config.by_mode(fast=4, cpu=20, full=20),
                                         precision="bf16", device=DEVICE)
print(f"digits-FID at N = {n_precision}: U-Net in bf16 {precision_demo.broken:.3f}, in fp32 {precision_demo.fixed:.3f}; "
      f"largest pixel difference {precision_demo.details['largest pixel difference']:.3f}")

# %% [markdown]
# Honest result: at this size the precision failure does **not** show. bf16 moves individual pixels
# a little and FID not at all (a difference this small is noise). The rule it illustrates still
# holds: keep the schedule and the sampler's update in float32 (our `sample()` casts the network's
# output back), and only the network's matrix multiplications in reduced precision.
#
# ### 2.7 Never quite black, never quite white: a schedule that stops short of pure noise
#
# This failure is not in the course text's table; Lin et al. (2024, "Common Diffusion Noise Schedules and
# Sample Steps are Flawed") found it in Stable Diffusion, which could not draw a plain black or a plain
# white image however it was prompted. Its scaled-linear schedule ends at $\sqrt{\bar\alpha_T} = 0.068$:
# the noisiest training input still holds 6.8% of the image. Invisible to the eye, but not to the network:
# the mean of that input still says whether the image was dark or bright, and the network learns to read
# it. At sampling time the first input is pure noise, whose mean says nothing; the network reads
# "mid-grey", and the later steps, which only refine, cannot move the overall brightness far.
#
# Measure the leak directly: take the digits in a dark and a bright version (two classes, mean brightness
# about $-0.85$ and $+0.85$), noise them to the last timestep, and guess each image's class from the sign
# of its noisy mean alone.

# %%
dark_bright, db_labels = load_dark_and_bright_digits()  # (3594, 1, 16, 16), (3594,): 0 dark, 1 bright
print(f"real means: dark {dark_bright[db_labels == 0].mean():+.2f}, bright {dark_bright[db_labels == 1].mean():+.2f}")
for name, sched in (("scaled-linear (Stable Diffusion)", get_schedule("scaled_linear")),
                    ("cosine (this course)", get_schedule("cosine")),
                    ("scaled-linear, zero terminal SNR", get_schedule("scaled_linear", rescale_betas_zero_snr=True))):
    a_T = float(sched.alphas_cumprod[-1])
    x_T = a_T**0.5 * dark_bright + (1 - a_T) ** 0.5 * torch.randn(dark_bright.shape, generator=torch.Generator().manual_seed(0))
    guessed = (x_T.mean(dim=(1, 2, 3)) > 0).long()  # (3594,): bright if the noisy mean is positive
    print(f"{name:34s} sqrt(alpha_bar_T) = {a_T**0.5:.4f}: class read from x_T's mean "
          f"{(guessed == db_labels).float().mean():.1%} of the time (chance: 50%)")

# %% [markdown]
# With Stable Diffusion's schedule the class can be read from the "pure noise" input most of the time;
# the course's cosine schedule ends far closer to zero, and the rescaled schedule at exactly zero. Lin et
# al.'s fix has three parts, all options of the package: rescale the schedule so that $\bar\alpha_T = 0$
# (`get_schedule(..., rescale_betas_zero_snr=True)`, as diffusers names it), predict $v$ instead of
# $\epsilon$ (at $\bar\alpha_T = 0$ the input *is* the noise, so a noise prediction says nothing about the
# image; the package refuses that pairing), and start sampling at the last timestep ("trailing" spacing,
# notebook 09) rather than diffusers' default "leading" grid, which never visits it.
#
# Does the leak cost brightness in the samples? That takes two training runs, stored: benchmark 9
# (`benchmarks/training_recipes.py zero-snr`) trains a class-conditional U-Net on the dark and bright
# digits twice, with Stable Diffusion's recipe (scaled-linear schedule, noise prediction) and with Lin et
# al.'s fix, and measures the mean brightness of each class's samples with DDIM-25 on both grids.

# %%
recipes_run = stored_run("training_recipes")  # benchmarks/results/training_recipes.json; None outside the repository
if recipes_run is not None:
    entry = recipes_run["zero-snr"]
    print(f"stored run: {entry['budget']}; {entry['device']}, {entry['date']}")
    print(f"real images: dark {entry['real']['dark']:+.3f}, bright {entry['real']['bright']:+.3f}")
    for arm in entry["arms"]:
        for spacing, b in arm["brightness"].items():
            print(f"{arm['label']:24s} {spacing:>8}: " + ", ".join(f"{k} {v:+.3f}" for k, v in b.items()))

# %% [markdown]
# What the stored run says (real images: $-0.847$ and $+0.847$): with Stable Diffusion's recipe the
# samples stop short of both extremes, $-0.818$ and $+0.816$ unguided on diffusers' grid, about 3.5% of
# the way back towards grey; the trailing grid alone barely helps ($-0.825$, $+0.823$). With Lin et al.'s
# fix they reach the real brightness: $-0.846$ and $+0.841$ unguided with the trailing grid, $-0.859$ and
# $+0.849$ at $w = 3$. On 16-by-16 digits whose class label already says "dark" or "bright" the gap is
# small; in Stable Diffusion, where the brightness of a plain black image must come from a prompt
# through guidance, it was the difference between a black image and a grey one. The rule it teaches
# holds at any size: the schedule you train on must end where sampling starts, in pure noise.
#
# ### The table, measured

# %%
demos = [schedule_demo, ignored, burnt, collapse, seed_demo, precision_demo]
display(Markdown(failures.failure_table(demos)))

# %% [markdown]
# ### The rows that need a production system
#
# Three rows of the course text's table cannot be reproduced on digits and shapes; here is what
# they say and where to look.
#
# - **ControlNet not working** (the pose or edges are not respected): ControlNet adds a trainable
#   copy of the U-Net's encoder that reads a control image (a pose skeleton, an edge map). Check
#   that the control image was made by the preprocessor the ControlNet was trained with, and that
#   its conditioning scale is high enough (about 0.7 or more).
# - **NSFW outputs in production**: a model trained on web images can draw what a service must not
#   show. Stable Diffusion's pipelines ship a safety checker (a classifier on the output image);
#   negative prompts and guidance steer away from content; a production service adds its own filter
#   and review.
# - **Licences**: read the licence of the weights you deploy before you build on them. FLUX.1
#   [schnell] is Apache 2.0, FLUX.1 [dev] carries a non-commercial licence for the model, SDXL the
#   CreativeML Open RAIL++-M licence, and Stable Diffusion 3 Stability AI's own community licence.
#   Whether outputs and training data are free to use is a legal question, unsettled in many places.

# %% [markdown]
# ## 3. Production notes, measured
#
# The course text quotes Stable Diffusion on an A10G: fp32 at 512x512 needs about 12 GB and 8 s per
# image, fp16 halves both. Our models are a thousand times smaller, but the same questions can be
# asked and answered by measurement on whatever machine runs this notebook.
#
# ### 3.1 Time and memory per step, by precision and batch size

# %%
digits_class = pretrained.load("digits-class", device=DEVICE)
# fast mode stops at batch 16: on a CPU without bf16 instructions one bf16 call at batch 128 takes about
# 10 s (20x fp32, on a 2-core CPU without them)
BATCHES = config.by_mode(fast=(1, 4, 16), cpu=(1, 16, 128), full=(1, 16, 128))
costs = production.step_costs(digits_class, batches=BATCHES, precisions=("fp32", "bf16"), repeats=3)
print(f"one digits-class U-Net call on {DEVICE.type}:")
for r in costs:
    print(f"  {r['precision']} batch {r['batch']:3d}: {r['ms']:7.1f} ms ({r['ms_per_image']:.2f} ms per image), "
          f"peak {r['memory_mb']:6.1f} MB ({r['mb_per_image']:.2f} MB per image)")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.5))
for p in ("fp32", "bf16"):
    sel = [r for r in costs if r["precision"] == p]
    ax1.plot([r["batch"] for r in sel], [r["ms_per_image"] for r in sel], "o-", label=p)
    ax2.plot([r["batch"] for r in sel], [r["memory_mb"] for r in sel], "o-", label=p)
ax1.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per image per call",
        title="Batching amortises each call")
ax2.set(xscale="log", yscale="log", xlabel="batch size", ylabel="peak activation memory (MB)",
        title="Memory grows with the batch")
for ax in (ax1, ax2):
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
    ax.xaxis.set_minor_locator(NullLocator())  # only the batch sizes measured
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # 1, 2, 5, 10, 20, ...: labels on a span under 10x
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Memory here is what one call holds beyond the weights (on CUDA the allocator's peak, on the CPU
# the allocations PyTorch's profiler records): it grows linearly with the batch, which is what runs
# a GPU out of memory at inference. Halving the bytes per number (bf16) halves the largest tensors.
# Time per image falls steeply with batching until the machine is busy: on a GPU that is the reason
# to batch requests.
#
# ### 3.2 `torch.compile`
#
# Compiling fuses the network's small operations into fewer, larger kernels. Its first call is slow
# (it compiles); after that each call is faster. In `fast` mode we show benchmark 3's recorded run;
# in `cpu` and `full` mode the cell measures it here.

# %%
notes = speed.reference_table()["notes"]
if MODE == "fast":
    print(f"recorded ({speed.reference_table()['device']}): batch 128, eager {notes['fp32_ms']:.0f} ms, compiled "
          f"{notes['compiled_ms']:.0f} ms ({notes['fp32_ms'] / notes['compiled_ms']:.2f}x) after a "
          f"{notes['compile_first_call_s']:.0f} s first call")
else:
    x128, t500 = torch.randn(128, 1, 16, 16, device=DEVICE), torch.tensor(500, device=DEVICE)
    eager = time_call(lambda: digits_class.denoiser(x128, t500), repeats=5, device=DEVICE)
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)  # one known graph break: the label range check
    compiled_net = torch.compile(digits_class.denoiser)
    first = time_call(lambda: compiled_net(x128, t500), repeats=1, warmup=0, device=DEVICE)
    compiled = time_call(lambda: compiled_net(x128, t500), repeats=5, device=DEVICE)
    print(f"batch 128: eager {1000 * eager:.0f} ms, compiled {1000 * compiled:.0f} ms ({eager / compiled:.2f}x) "
          f"after a {first:.0f} s first call")

# %% [markdown]
# ### 3.3 The latency bottleneck order, on the latent text model
#
# The course text ranks what sets a text-to-image model's latency: steps, then resolution, then
# precision, then the VAE decode, then the text encoder. Measure each on `shapes-latent` (25 guided
# DDIM steps on 8x8x4 latents, one decode, one prompt encoding), as the latency each knob controls
# for one image.

# %%
latent = pretrained.load("shapes-latent", device=DEVICE)
latency = production.latency_breakdown(latent, steps=25, fast_steps=4, batch=1, repeats=5)
print(f"shapes-latent, one image, fp32, 25 guided steps: {latency[0]['baseline_ms']:.1f} ms in all")
for r in latency:
    print(f"  {r['factor']:15s} {r['change']:45s} {r['ms']:7.1f} ms ({r['share']:.0%} of the total)")

fig, ax = plt.subplots(figsize=(8, 2.8))
ax.barh([r["factor"] for r in latency][::-1], [r["ms"] for r in latency][::-1])
ax.set(xlabel="ms per image this knob controls", title=f"shapes-latent on {DEVICE.type}: where the latency is")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Question B.** Answer it from your own measurement above.

# %%
nb10.bottleneck_question(latency)

# %% [markdown]
# Steps dominate, as the course text says, because every step is a full network call and the
# other costs are paid once. The rest of the order depends on the machine and the model: our VAE
# and text encoder are tiny, so they are a small share; on Stable Diffusion the decode of a 512x512
# image is a real cost. A negative precision bar means bf16 autocast *costs* time here: at batch 1 its
# casts can outweigh its savings, and on a CPU without bf16 instructions every bf16 operation is
# emulated and slower at any batch (section 3.1 measured which holds on this machine). That is the
# lesson of the whole section: the order is a measurement, not a law, so measure it on the machine
# you will serve from.
#
# ## 4. The honest admission, with numbers
#
# Our models draw digits and shapes, so the social biases of web-scale data cannot show here, but
# the mechanism can: a model's "random" samples carry the proportions it learnt, and nothing forces
# them to match the data's. Our training digits are balanced (about 10% each). Are the samples?

# %%
drawn = torch.as_tensor(metrics.class_distribution(samples))
data_share = torch.bincount(labels, minlength=10).float() / len(labels)
print("digit:           " + " ".join(f"{d:5d}" for d in range(10)))
print("training data:   " + " ".join(f"{p:5.1%}" for p in data_share.tolist()))
print("digits-ddpm:     " + " ".join(f"{p:5.1%}" for p in drawn.tolist()))
most, least = int(drawn.argmax()), int(drawn.argmin())
print(f"most drawn: {most} ({drawn[most]:.1%}), least drawn: {least} ({drawn[least]:.1%}), "
      f"a ratio of {drawn[most] / drawn[least]:.1f} (samples: {len(samples)}; at this N a share moves by about "
      f"±{(0.1 * 0.9 / len(samples)) ** 0.5:.1%} by chance alone)")

# %% [markdown]
# Balanced data did not give perfectly balanced samples: some digits come out more often than
# others, by more than chance explains when the ratio above is large. No single FID would tell you;
# counting does. At web scale the same drift, added to data that is skewed to begin with, is the
# homogeneity the course text warns about, and the fine-tune experiment above is its extreme. What a
# model was trained on, and under what licence, is a question for its data card before it is one
# for its metrics.
#
# ## 5. Self-check
#
# The course text ends with retrieval prompts and interview questions. Write your answer to each
# (at least 15 words) before you reveal the model answer, then tick the key points your answer made.
# Writing first is the point: recalling is what makes it stick.

# %%
SelfCheckQuiz()

# %% [markdown]
# ## Before you move on: the foundation-gap check
#
# The course text closes with four things any project that builds on diffusion will assume. Tick
# each only if you can say it without looking, and reread the notebook named if you cannot.
#
# | you must be able to say | notebooks |
# |---|---|
# | how a diffusion model makes an image: the forward process destroys the signal with noise, a network learns to reverse it step by step, sampling starts from noise and ends at something that looks like the training data | [02](02_forward_process.ipynb), [03](03_reverse_process.ipynb), [04](04_unet_training.ipynb) |
# | what latent space is: a VAE encodes an image into a small latent, diffusion runs entirely there, and the VAE's decoder turns the final latent back into pixels | [06](06_latent_diffusion.ipynb) |
# | how a prompt steers the image: text encoder, token vectors, cross-attention at every resolution, each image region attending to the words it needs; guidance amplifies the difference | [05](05_guidance.ipynb) |
# | the speed-quality trade-off: more steps, slower and better; DDIM and DPM-Solver++ for fewer deterministic steps; a distilled student for one to four | [09](09_fast_sampling.ipynb) |
#
# The four gaps the course text warns about: being unsure that $\bar\alpha_T \approx 0$ means $x_T$
# is pure noise (02); no feel for what the guidance scale does (05, the sweep); mixing up pixel-space
# and latent-space shapes (06); and never having run a model yourself, which ten notebooks have now
# taken care of.
#
# ## What comes next
#
# This is the end of the series: ten notebooks from random pixels against CLIP
# ([01](01_naive_clip_failure.ipynb)) to a distilled two-step student
# ([09](09_fast_sampling.ipynb)) and the ways all of it can fail (here). The repository's
# README lists every notebook. From here: rerun any notebook with
# `COURSE_MODE=cpu` (or `full` on a GPU) for full-size results, fine-tune a real model with diffusers
# on Colab, and take the checks of this notebook (FID with its floor, the copy check, the
# failure-fix table) to every model you train.
