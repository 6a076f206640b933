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
# # 01 · The opening failure: optimizing pixels against CLIP
#
# You want an image of "a red circle on a blue background". You know nothing about diffusion, but
# you do have CLIP: a network that scores how well an image matches a text. The obvious plan is to
# start from random pixels and change them, by gradient ascent, until the score is high.
#
# The score goes up. The image stays noise. This notebook runs that plan, measures the failure
# three ways, explains it, and then asks a diffusion model for the same prompt.
#
# **A picture to keep in mind for the whole course.** A sculptor does not carve a statue in one
# blow: he taps away thin layers of a shapeless block, one stroke at a time, and he knows where to
# tap because he has studied thousands of finished statues. A diffusion model makes an image the
# same way. The block is pure Gaussian noise; each stroke is one denoising step of a network; the
# years of study are its training on real images; a client's sketch is the prompt that steers every
# stroke; and a master on a deadline who skips strokes he knows are redundant is a fast sampler.
# The search in this notebook is a sculptor who never studied a statue.
#
# **Why it matters.** The image and video generators in production today (Stable Diffusion, DALL-E 3,
# Midjourney, Imagen, Adobe Firefly, and Sora for video) are diffusion models or close relatives of
# them, so knowing how they work belongs to an AI engineer's basic equipment.
#
# In this notebook you will:
#
# 1. write one step of gradient ascent on pixels, then let an optimizer run hundreds of them;
# 2. watch the CLIP score climb past that of real images while the pixels stay noise;
# 3. measure the result with a second network that was never optimized against (the shapes judge)
#    and with the distance to the nearest real image;
# 4. add a hand-made prior (blur, or an 8×8 grid) and see how far it gets;
# 5. sample the same prompt from a small text-conditioned diffusion model.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | searches | time |
# |---|---|---|
# | `fast` | 8 images, 60 optimizer steps per search | under a minute |
# | `cpu` | 16 images, 400 steps | about 1 minute on a laptop |
# | `full` | 32 images, 1,000 steps | not yet measured on a GPU |
#
# Three coding exercises and two questions, each with an automatic checker. A check says
# ✏️ *not attempted* until you fill in the function above it.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import config, metrics, pretrained
from course_utils.data import make_shapes
from course_utils.course.exercises import nb01
from course_utils.models.clip import CLIPScorer, all_captions, zero_shot_accuracy
from course_utils.course.pixel_search import gradient_ascent_step, initial_parameters, lowres_image, optimize_pixels
from course_utils.metrics.distances import nearest_data, real_vs_real_distance
from course_utils.viz import show_images

MODE, DEVICE = config.get_mode(), config.get_device()
print(config.describe())
torch.manual_seed(0)

# %% [markdown]
# ## 1. The promise
#
# The course's world is small on purpose: 32×32 images of one shape (circle, square or triangle) in
# one of six colours on a plain background of another colour, each with a caption. Everything
# ships with the package and runs offline.
#
# Two networks read these images:
#
# - a **tiny CLIP**, trained contrastively on 20,000 shapes and their captions. Like the real CLIP
#   (Radford et al., 2021), it maps an image and a text to unit vectors; the score is
#   $100 \cdot \cos(\text{image}, \text{text})$, from −100 to 100.
# - the **shapes judge**, a classifier with four heads: shape, colour, background, and *picture or
#   noise*. It was trained on shapes with a little noise and blur, and on images of pure noise. It
#   knows nothing about text. We use it as an independent referee, because we will never optimize
#   against it.
#
# First, check that both read real images well.

# %%
PROMPT = "a red circle on a blue background"
N = config.by_mode(fast=8, cpu=16, full=32)            # images per search
STEPS = config.by_mode(fast=60, cpu=400, full=1000)     # optimizer steps per search

clip = pretrained.load("tiny-clip", device=DEVICE)
scorer = CLIPScorer(clip)
judge = metrics.shapes_judge()                          # the shipped judge, on the CPU

data = make_shapes(config.by_mode(fast=2000, cpu=4000, full=10000), seed=1)   # data.images: (M, 3, 32, 32)
held_out = make_shapes(500, seed=2)                     # images neither network was trained on
print(f"tiny CLIP: the best of all {len(all_captions())} captions is the right one for "
      f"{zero_shot_accuracy(clip.cpu(), held_out):.0%} of held-out images")
clip.to(DEVICE)
print("shapes judge on the same images:", {k: f"{v:.0%}" for k, v in metrics.judge_accuracy(judge, held_out).items()})

# %% [markdown]
# Now the target. Some real images in our data set happen to carry exactly our prompt. Their CLIP
# score tells us what "a good match" looks like. Random pixels, the naive starting point, score
# far below them.

# %%
real_match = data.images[[c == PROMPT for c in data.captions]]      # (K, 3, 32, 32)
start = torch.tanh(initial_parameters("pixels", N, torch.Generator().manual_seed(0)))   # (N, 3, 32, 32), uniform
with torch.no_grad():
    real_score = scorer.score(real_match.to(DEVICE), PROMPT).cpu()   # (K,)
    start_score = scorer.score(start.to(DEVICE), PROMPT).cpu()       # (N,)
print(f"{len(real_match)} real images of {PROMPT!r}: CLIP score {real_score.mean():.1f} on average "
      f"(min {real_score.min():.1f})")
print(f"{N} random images: CLIP score {start_score.mean():.1f} on average")

fig, axes = plt.subplots(1, 2, figsize=(11, 2.2))
show_images(real_match[:N], nrow=N, ax=axes[0], title=f"Real: {PROMPT}")
show_images(start, nrow=N, ax=axes[1], title="Random pixels: where the search starts")
plt.show()

# %% [markdown]
# ## 2. One step of gradient ascent
#
# The score is a differentiable function of the pixels, so autograd gives its gradient
# $\nabla_x s(x)$: the direction in pixel space in which the score rises fastest. One step of
# gradient ascent moves every pixel a little that way, then clamps it back into $[-1, 1]$:
#
# $$x \leftarrow \operatorname{clamp}\big(x + \eta\, \nabla_x s(x),\ -1,\ 1\big).$$
#
# ### Exercise 1: one step by hand
#
# Write `ascent_step(scorer, prompt, x, lr)`. `x` is a `(B, 3, 32, 32)` batch; `scorer.score(x, prompt)`
# returns the `(B,)` scores. Each image should move by the gradient of *its own* score. Use
# `torch.autograd.grad` on the sum of the scores (the images do not interact, so the sum's gradient
# for one image is that image's own gradient). Return a tensor that does not require grad.

# %%
def ascent_step(scorer, prompt, x, lr):
    """clamp(x + lr * d(sum of scores)/dx, -1, 1); x: (B, 3, 32, 32)."""
    # BEGIN SOLUTION
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(scorer.score(x, prompt).sum(), x)   # (B, 3, 32, 32)
    return (x + lr * grad).clamp(-1, 1).detach()
    # END SOLUTION


nb01.check_ascent_step(ascent_step)

# %% [markdown]
# The package's `gradient_ascent_step` is the same function. Here are 10 plain steps from the
# random start (the cell uses the package version, so it runs whether or not you solved the
# exercise):

# %%
x = start.to(DEVICE)
for _ in range(10):
    x = gradient_ascent_step(scorer, PROMPT, x, lr=0.02)
with torch.no_grad():
    plain_score = scorer.score(x, PROMPT).cpu()
print(f"10 plain steps, lr = 0.02: mean score {start_score.mean():.1f} -> {plain_score.mean():.1f}; "
      f"largest pixel change {(x.cpu() - start).abs().max():.3f}")
assert plain_score.mean() > start_score.mean()

# %% [markdown]
# The score rises. The right learning rate, though, depends on the size of the gradient, which
# changes as the search goes on. Pixel-optimization code usually uses **Adam** (Kingma & Ba, 2015),
# which scales each pixel's step by a running estimate of its gradient's size. The package's
# `optimize_pixels` does that, and runs a batch of independent searches at once. To keep every
# pixel in range without clamping, it optimizes free numbers $w$ and shows the scorer
# $x = \tanh(w)$.

# %% [markdown]
# ## 3. Run it

# %%
naive = optimize_pixels(scorer, PROMPT, n=N, steps=STEPS, lr=0.05, parametrization="pixels",
                        generator=torch.Generator().manual_seed(0), record_every=STEPS // 4)
print(f"{naive.num_parameters:,} free numbers per image; mean CLIP score {naive.scores[0].mean():.1f} -> "
      f"{naive.scores[-1].mean():.1f} after {naive.steps} steps (real images of the prompt: {real_score.mean():.1f})")

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(naive.scores.numpy(), color="tab:blue", lw=0.8, alpha=0.4)
ax.plot(naive.scores.mean(1).numpy(), color="tab:blue", lw=2.5, label=f"optimized pixels (mean of {N})")
ax.axhline(real_score.mean(), color="tab:green", ls="--", label="real images of the prompt (mean)")
ax.axhline(start_score.mean(), color="0.5", ls=":", label="random pixels (mean)")
ax.set(xlabel="optimizer step", ylabel="CLIP score (100 x cosine)",
       title=f"Gradient ascent on the tiny CLIP's score for {PROMPT!r}")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# And the images, as the search went on (one row per snapshot, one column per search):

# %%
def show_snapshots(result, title):
    """Rows: the snapshots of a PixelSearchResult, labelled with their step; columns: the n searches."""
    rows = len(result.snapshot_steps)
    fig, axes = plt.subplots(rows, 1, figsize=(1.1 * result.images.shape[0], 1.2 * rows))
    for ax, step, images, scores in zip(axes, result.snapshot_steps, result.snapshots,
                                        result.scores[result.snapshot_steps]):
        show_images(images, nrow=len(images), ax=ax)
        ax.set_ylabel(f"step {step}\nscore {scores.mean():.0f}", rotation=0, ha="right", va="center", fontsize=8)
    axes[0].set_title(title)
    fig.tight_layout()
    plt.show()


show_snapshots(naive, f"Optimizing pixels for {PROMPT!r}")

# %% [markdown]
# Within a few dozen steps the score reaches its ceiling of 100, above the real images of the
# prompt. The pictures barely change: here and there a faint reddish smudge, but no disc and no
# blue background, only noise. CLIP says yes; your eyes say no. Eyes are not a measurement, so we now measure, three ways.

# %% [markdown]
# ## 4. Measure the failure
#
# ### What the tiny CLIP reads, and how firmly
#
# Zero-shot reading: score each image against all 90 captions of the shapes world and keep the
# best. Then a robustness test: soften every image with a light 3×3 blur. A real red circle on
# blue is still a red circle on blue after that, and its score should barely move.

# %%
def soften(x):
    """A light 3x3 box blur: (B, 3, 32, 32) -> same shape. A real image barely changes."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


captions = all_captions()
with torch.no_grad():
    text = clip.encode_text(captions)                                                    # (90, 64)
    clip_reads = (clip.encode_image(naive.images.to(DEVICE)) @ text.T).argmax(1).cpu()   # (N,)
    soft_real = scorer.score(soften(real_match).to(DEVICE), PROMPT).mean().item()
    soft_naive = scorer.score(soften(naive.images).to(DEVICE), PROMPT).mean().item()
clip_says = [captions[i] for i in clip_reads]
fooled = sum(c == PROMPT for c in clip_says) / N
print(f"the tiny CLIP's best caption is the prompt for {fooled:.0%} of the optimized images")
print(f"CLIP score before -> after a 3x3 blur: real images {real_score.mean():.1f} -> {soft_real:.1f}, "
      f"optimized pixels {naive.scores[-1].mean():.1f} -> {soft_naive:.1f}")

# %% [markdown]
# CLIP is certain: the best caption for the noise is our prompt. But the certainty is fragile. A
# blur that real images shrug off knocks the optimized images' score down, because what CLIP
# "sees" in them lives in pixel-level patterns, not in a shape.
#
# ### What the shapes judge reads
#
# The judge was trained on the same kind of images, but nothing was optimized against it. Its
# fourth head says whether it sees a shapes picture at all; where it does not, it reads the image
# as "noise". Its other three heads always name a shape and two colours, even in noise: guessing at
# random they would get the shape right 1 time in 3 and each colour 1 time in 6. "all" counts the
# images where all four are right. We also ask it about the random pixels we started from.

# %%
judge_says = judge.captions(naive.images)
for i in range(min(N, 4)):
    print(f"image {i}: CLIP reads {clip_says[i]!r:40} judge reads {judge_says[i]!r}")

COLUMNS = ("shape", "color", "background", "picture", "all")
CHANCE = {"shape": 1 / 3, "color": 1 / 6, "background": 1 / 6}
adherence = {"real images of the prompt": metrics.prompt_adherence(real_match, PROMPT),
             "random pixels (the start)": metrics.prompt_adherence(start, PROMPT),
             "optimized pixels": metrics.prompt_adherence(naive.images, PROMPT)}
print(f"\n{'judge: fraction right':28}" + "".join(f"{k:>12}" for k in COLUMNS))
for name, row in adherence.items():
    print(f"{name:28}" + "".join(f"{row[k]:>12.2f}" for k in COLUMNS))
print(f"{'chance (random guessing)':28}" + "".join(f"{CHANCE[k]:>12.2f}" if k in CHANCE else f"{'':>12}"
                                                   for k in COLUMNS))

# %% [markdown]
# Read the table row by row. On real images the judge is right every time. The random starting
# pixels and the optimized pixels are the same thing to it: noise (the `picture` column).
#
# Its other heads deserve a second look. Forced to name a colour even in noise, the colour head
# names red for the optimized pixels far more often than chance. The judge is a small
# convolutional network trained on the same images as the tiny CLIP, and networks trained on the
# same data share blind spots: a pattern that fools one partly fools the other. This is known as
# the *transfer* of adversarial examples (Szegedy et al., 2014; Papernot et al., 2016). A second
# network is a better referee than the one you optimized against, more so when it may answer
# "none of these". The next measure uses no network at all.

# %%
nb01.fooled_question()

# %% [markdown]
# ### How far from any real image?
#
# A network-free measure: the distance from each image to the *nearest* image of the data set. We
# use the root-mean-square (RMS) pixel difference,
#
# $$d(x, y) = \sqrt{\tfrac{1}{D}\textstyle\sum_{i=1}^{D} (x_i - y_i)^2}, \qquad D = 3 \cdot 32 \cdot 32 = 3{,}072,$$
#
# which is in pixel units (pixels live in $[-1, 1]$). To know what "near" means, we measure the
# same thing for real images that were held out of the set: that is how close a real image
# typically is to its nearest neighbour.
#
# ### Exercise 2: distance to the nearest real image
#
# Write `rms_to_nearest(images, data)`: `images` is `(B, C, H, W)`, `data` is `(N, C, H, W)`;
# return the `(B,)` RMS distance from each image to its nearest data image. (Broadcasting
# `images[:, None] - data[None]` gives a `(B, N, C, H, W)` difference; `torch.cdist` is faster.)

# %%
def rms_to_nearest(images, data):
    """(B,) RMS pixel distance from each image to the closest of the N data images."""
    # BEGIN SOLUTION
    sq = ((images[:, None] - data[None]) ** 2).flatten(2)    # (B, N, C*H*W)
    return sq.mean(2).min(1).values.sqrt()                  # (B,)
    # END SOLUTION


nb01.check_nearest_distance(rms_to_nearest)

# %% [markdown]
# The package's `nearest_data` computes the same distances and also returns which data image is
# the nearest, so we can look at it.

# %%
d_real = real_vs_real_distance(data.images, 200, torch.Generator().manual_seed(0))   # (200,)
d_start, _ = nearest_data(start, data.images)                                       # (N,)
d_naive, nearest_idx = nearest_data(naive.images, data.images)                      # (N,)
print(f"RMS distance to the nearest of {len(data)} real images (median): real held-out {d_real.median():.3f}, "
      f"random pixels {d_start.median():.3f}, optimized pixels {d_naive.median():.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
groups = {"real (held out)": d_real, "random pixels": d_start, "optimized pixels": d_naive}
for i, (name, d) in enumerate(groups.items()):
    jitter = torch.rand(len(d), generator=torch.Generator().manual_seed(i)) * 0.3 - 0.15
    axes[0].scatter(d.numpy(), i + jitter.numpy(), s=12, alpha=0.6)
axes[0].set(yticks=range(len(groups)), yticklabels=list(groups), xlabel="RMS distance to the nearest real image",
            title="How far from the data? (one dot per image)", xlim=(0, None))
axes[0].grid(alpha=0.3, axis="x")
pairs = torch.stack([naive.images[:4], data.images[nearest_idx[:4]]], 1).flatten(0, 1)   # (8, 3, 32, 32)
show_images(pairs, nrow=2, ax=axes[1], title="optimized | its nearest real image")
fig.tight_layout()
plt.show()

# %% [markdown]
# Held-out real images sit close to some image of the set. The optimized images are as far from
# the data as the random pixels they started from: the search changed what CLIP sees, not what
# the image is.

# %%
# The story of this notebook, as measured numbers (these checks guard it in CI):
assert naive.scores[-1].mean() > naive.scores[0].mean() + 50           # the score climbs a lot ...
assert naive.scores[-1].mean() > real_score.mean()                     # ... past the real images' score
assert fooled >= 0.75                                                  # the tiny CLIP reads the prompt ...
assert soft_naive < soft_real - 10                                     # ... but a light blur breaks its reading
assert adherence["real images of the prompt"]["all"] >= 0.9            # the judge reads real images ...
assert adherence["optimized pixels"]["picture"] <= 0.25                # ... and calls the optimized ones noise
assert d_naive.median() > 3 * d_real.median()                          # far from every real image

# %% [markdown]
# ## 5. Why it fails: three reasons
#
# The course text gives three reasons. Each one is visible in the numbers above.

# %%
dims_here, dims_512 = 3 * 32 * 32, 3 * 512 * 512
print(f"free numbers: {dims_here:,} here, {dims_512:,} for a 512x512 RGB image ({dims_512 // dims_here}x more)")

# %% [markdown]
# **1. The search space is vast.** Even our 32×32 image has 3,072 numbers to set, and a 512×512
# RGB image has 786,432. Almost every point of that space is noise; real images fill a thin
# sliver of it. A random start lies far from that sliver (the random pixels' distance above), and
# with thousands of directions to move in, the steepest way up the score is almost never the way
# towards a real image.
#
# **2. CLIP is not a generator.** CLIP learned which caption fits an image, among real images. It
# never learned what happens off the data, so thousands of free pixels are enough to push its
# image features onto the prompt's: a score above that of real images, a confident caption, and no
# red circle. These are **adversarial examples**: the optimizer asks the network, not the data,
# what to change, and the network's blind spots are the easiest things to find. Their fragility
# under a light blur gives them away.
#
# **3. There is no prior.** Nothing in the search knows what images look like: that a background
# is flat, that a shape has edges, that a few colours fill whole regions. The optimized images
# stay as far from every real image as the noise they started from.

# %% [markdown]
# ## 6. A hand-made prior
#
# Reason 3 suggests a fix: build some knowledge of images into the search. Two classic attempts:
#
# - **blur**: keep all 3,072 free numbers, but show CLIP a blurred version (a fixed Gaussian,
#   $\sigma = 1.5$ pixels). Pixel-level patterns can no longer reach the score.
# - **lowres**: search only an 8×8 grid per channel, 192 numbers, and upsample it to 32×32. The
#   search space is 16 times smaller, and every image in it is smooth.
#
# ### Exercise 3: the 8×8 prior
#
# Write `my_lowres_image(w)`: `w` is a `(B, 3, 8, 8)` tensor of free numbers; squash it into
# $(-1, 1)$ with `torch.tanh`, then upsample to `(B, 3, 32, 32)` with
# `F.interpolate(..., size=(32, 32), mode="bilinear", align_corners=False)`. Bilinear weights are
# non-negative and sum to 1, so the result stays in $[-1, 1]$.

# %%
def my_lowres_image(w):
    """(B, 3, 8, 8) free numbers -> (B, 3, 32, 32) image in [-1, 1]."""
    # BEGIN SOLUTION
    return F.interpolate(torch.tanh(w), size=(32, 32), mode="bilinear", align_corners=False)
    # END SOLUTION


nb01.check_lowres_image(my_lowres_image)

# %% [markdown]
# Now rerun the search with each prior (with the package's parametrizations, which match yours),
# and put all three searches side by side.

# %%
runs = {"pixels": naive}
for name in ("blur", "lowres"):
    runs[name] = optimize_pixels(scorer, PROMPT, n=N, steps=STEPS, lr=0.05, parametrization=name,
                                 generator=torch.Generator().manual_seed(0), record_every=STEPS // 4)

fig, axes = plt.subplots(3, 1, figsize=(1.1 * N, 4.0))
for ax, (name, res) in zip(axes, runs.items()):
    show_images(res.images, nrow=N, ax=ax)
    ax.set_ylabel(f"{name}\n{res.num_parameters:,} numbers", rotation=0, ha="right", va="center", fontsize=9)
axes[0].set_title(f"After {STEPS} steps of gradient ascent for {PROMPT!r}")
fig.tight_layout()
plt.show()

table = {}
for name, res in runs.items():
    table[name] = dict(metrics.prompt_adherence(res.images, PROMPT), score=res.scores[-1].mean().item(),
                       distance=nearest_data(res.images, data.images)[0].median().item())
print(f"{'search':8} {'free numbers':>12} {'CLIP score':>10} {'judge: shape':>13} {'color':>6} {'backgr.':>8} "
      f"{'picture':>8} {'all':>5} {'distance':>9}")
for name, r in table.items():
    print(f"{name:8} {runs[name].num_parameters:>12,} {r['score']:>10.1f} {r['shape']:>13.2f} {r['color']:>6.2f} "
          f"{r['background']:>8.2f} {r['picture']:>8.2f} {r['all']:>5.2f} {r['distance']:>9.3f}")
real_row = adherence["real images of the prompt"]
print(f"{'real':8} {'':>12} {real_score.mean():>10.1f} {real_row['shape']:>13.2f} {real_row['color']:>6.2f} "
      f"{real_row['background']:>8.2f} {real_row['picture']:>8.2f} {real_row['all']:>5.2f} {d_real.median():>9.3f}")

# %% [markdown]
# The prior helps. With pixel-level patterns out of reach, the easiest way up the score is now to
# paint a red blob on a blue field, and the judge no longer calls the result noise: it reads the
# prompt. That is reason 3
# confirmed: the missing piece was a prior.
#
# But look at the pictures and at the last column. The blobs have no edges and no definite shape;
# the backgrounds are mottled; the images are still more than twice as far from the nearest real
# image as a real image is. (The judge is lenient with blobs: it was trained on blurred and noisy
# shapes, so that it could grade imperfect samples.)
#
# Is the 8×8 grid simply unable to do better? No. Squeeze the real images of the prompt through
# the same grid (average each 4×4 block, then upsample exactly as the search does):

# %%
coarse = F.interpolate(real_match, size=(8, 8), mode="area")                  # (K, 3, 8, 8)
in_grid = lowres_image(torch.atanh(coarse.clamp(-0.999, 0.999)))             # (K, 3, 32, 32)
with torch.no_grad():
    grid_score = scorer.score(in_grid.to(DEVICE), PROMPT).mean().item()
d_grid = nearest_data(in_grid, data.images)[0].median().item()
print(f"real images through the 8x8 grid: judge reads the prompt in "
      f"{metrics.prompt_adherence(in_grid, PROMPT)['all']:.0%}, CLIP score {grid_score:.1f}, "
      f"distance to the data {d_grid:.3f} (the lowres search: {table['lowres']['distance']:.3f})")
fig, axes = plt.subplots(2, 1, figsize=(1.1 * N, 3.2))
show_images(in_grid[:N], nrow=N, ax=axes[0], title="What the 8x8 grid can draw: real images of the prompt")
show_images(runs["lowres"].images, nrow=N, ax=axes[1], title="What the search found in the same 8x8 grid")
fig.tight_layout()
plt.show()

assert table["blur"]["all"] > table["pixels"]["all"] and table["lowres"]["all"] > table["pixels"]["all"]
assert min(table[k]["distance"] for k in runs) > 2 * d_real.median()   # every search stays far from the data,
assert table["lowres"]["distance"] > d_grid + 0.1                      # though the grid holds much closer images
assert table["lowres"]["score"] > grid_score                           # that CLIP scores lower than the blobs

# %% [markdown]
# The grid can draw clean red circles on flat blue, close to the data. The search does not find
# them: it finds whatever smooth pattern CLIP likes best, which scores *higher* than the faithful
# drawings. A hand-made prior removes some wrong answers; it does not say what the right ones look
# like. For this tiny world, "be smooth" gets surprisingly far. For photographs, nobody can write
# down the rules (faces have two eyes, fur has texture, text has letters), which is the real
# argument for learning the prior from data.

# %%
nb01.prior_question()

# %% [markdown]
# ## 7. The same prompt, from a diffusion model
#
# A diffusion model does not search from scratch with someone else's critic. It *learns* the prior:
# trained on real images, it learns to turn noise into images that look like the data, step by
# step, and a text encoder steers which ones. The package ships a small one, trained on 20,000
# shapes and their captions. Here it draws our prompt, with 25 sampler steps.

# %%
diffusion = pretrained.load("shapes-text", device=DEVICE)
samples = diffusion.sample(N, steps=25, prompts=PROMPT, guidance_scale=3.0,
                           generator=torch.Generator().manual_seed(0)).cpu()       # (N, 3, 32, 32)
with torch.no_grad():
    sample_score = scorer.score(samples.to(DEVICE), PROMPT).cpu()                # (N,)
sample_adherence = metrics.prompt_adherence(samples, PROMPT)
d_samples = nearest_data(samples, data.images)[0]
show_images(samples, nrow=N, title=f"shapes-text diffusion model, 25 steps: {PROMPT!r}")
plt.show()

print(f"{'':26} {'CLIP score':>10} {'judge: all right':>17} {'distance to data':>17}")
for name, score, adh, dist in [
        ("real images of the prompt", real_score.mean(), real_row["all"], d_real.median()),
        ("optimized pixels", naive.scores[-1].mean(), adherence["optimized pixels"]["all"], d_naive.median()),
        ("blur prior", table["blur"]["score"], table["blur"]["all"], table["blur"]["distance"]),
        ("diffusion samples", sample_score.mean(), sample_adherence["all"], d_samples.median())]:
    print(f"{name:26} {score:>10.1f} {adh:>17.2f} {dist:>17.3f}")
assert sample_adherence["all"] >= 0.75                                            # the judge reads the prompt
assert d_samples.median() < min(r["distance"] for r in table.values())           # closer than any search got

# %% [markdown]
# The diffusion model was never shown the CLIP score, and its samples are what we asked for: the
# judge reads the prompt, and they sit much closer to the data than anything the search found.
# A high score from the network you optimized against proves little; an independent reading and
# closeness to real data are what count.

# %% [markdown]
# ## 8. Optional: the real CLIP
#
# Everything above used a tiny CLIP trained on this notebook's shapes. The real CLIP
# (`openai/clip-vit-base-patch32`, about 600 MB) fails in the same way. This cell needs the
# internet (Colab has it) and takes a few minutes on a CPU; set `USE_REAL_CLIP = True` to run it.
# It optimizes 64×64 pixels; `CLIPScorer` resizes them to the 224×224 that CLIP expects.

# %%
USE_REAL_CLIP = False

if USE_REAL_CLIP:
    real_clip = CLIPScorer.from_pretrained("openai/clip-vit-base-patch32")
    real_clip.model.to(DEVICE)
    big = optimize_pixels(real_clip, PROMPT, n=2, steps=config.by_mode(fast=20, cpu=100, full=300), lr=0.05,
                          generator=torch.Generator().manual_seed(0), record_every=20, image_shape=(3, 64, 64))
    print(f"real CLIP score: {big.scores[0].mean():.1f} -> {big.scores[-1].mean():.1f}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.4, 1]})
    axes[0].plot(big.scores.numpy())
    axes[0].set(xlabel="optimizer step", ylabel="CLIP score (100 x cosine)", title="Real CLIP, 64x64 pixels")
    show_images(big.images, nrow=2, ax=axes[1], title="The optimized images")
    plt.show()
else:
    print("Skipped: set USE_REAL_CLIP = True (needs the internet) to optimize against the real CLIP.")

# %% [markdown]
# ## Summary
#
# - Gradient ascent on a CLIP score, from random pixels, drives the score to its ceiling, above
#   that of real images of the prompt.
# - The images stay noise. The tiny CLIP reads the prompt in them, but a light blur breaks its
#   reading; the shapes judge, which nothing was optimized against, calls them noise; and they are
#   as far from every real image as the noise they started from.
# - Three reasons: the space is vast (3,072 numbers here, 786,432 at 512×512), CLIP is a critic and
#   not a generator (the optimizer finds adversarial examples), and the search has no prior.
# - A hand-made prior (blur, an 8×8 grid) helps in this simple world, but the results stay far
#   from the data, even though the 8×8 grid can draw the real thing.
# - A diffusion model that learned its prior from data draws the prompt.
#
# ## What comes next
#
# A diffusion model learns to undo noise. Before it can learn that, we need a precise recipe for
# *adding* noise to real images, step by step. That is
# [02 · The forward process](02_forward_process.ipynb).
