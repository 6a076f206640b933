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
# # 04 · Training a U-Net to denoise digits
#
# Notebook 03 sampled with an *exact* noise predictor, which only exists for toy data. Real data
# need a network that learns $\epsilon_\theta(x_t, t)$ from examples. This notebook builds the
# network the course text draws in chapter 3, a **U-Net**, trains it with the loss you wrote in
# notebook 03, samples from it with DDPM and DDIM, and measures how good the samples are.
#
# What you will do:
#
# 1. Take the U-Net apart with real tensors: encoder, bottleneck, decoder, skip connections.
# 2. Build its timestep embedding, the signal that tells it how noisy its input is.
# 3. Build the training step and loop yourself (the draws, the loss, the optimiser step, an EMA of
#    the weights), graded by what a short run achieves; then train with the course's loop.
# 4. Sample with DDPM (1000 steps) and DDIM (50 steps), and score the samples with digits-FID.
# 5. See what happens without skip connections, and train diffusers' `UNet2DModel` with the same
#    loop.
# 6. Weight the loss across noise levels with min-SNR-$\gamma$, a recipe of 2023, and measure what it
#    changes.
# 7. Online, in `full` mode: train the same U-Net on MNIST or Fashion-MNIST, scored by a classifier
#    trained for them on the spot.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | training | time |
# |---|---|---|
# | `fast` | 100 steps of your loop (and of the course's, for comparison), then the shipped checkpoint | about 1 minute |
# | `cpu` | a 1.1M-parameter U-Net, 1,300 steps | about 10 minutes on a laptop, less than half of it training |
# | `full` | a 6.8M-parameter U-Net, 4,000 steps in bf16, each step one CUDA graph | about 3 minutes on a GPU |
#
# Three coding exercises, one build exercise (the training loop) and one question, each with an
# automatic checker.

# %%
import copy
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import FormatStrFormatter

from course_utils import config, metrics, pretrained
from course_utils.course.stored import stored_run
from course_utils.data import load_digits, load_mnist
from course_utils.course.exercises import nb04, use_build
from course_utils.metrics.dataset_fid import DatasetFID
from course_utils.models import UNet, diffusers_unet_like, get_unet_config, timestep_embedding, trace_shapes
from course_utils.pipeline import DiffusionModel
from course_utils.samplers import DDIMSampler, DDPMSampler, sample_loop
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, simple_loss, train
from course_utils.training.objectives import min_snr_weights
from course_utils.viz import show_images

MODE, DEVICE = config.get_mode(), config.get_device()
print(config.describe())

# %% [markdown]
# ## 1. The data
#
# scikit-learn ships 1,797 handwritten digits, 8×8 pixels each. `load_digits` upsamples them to
# 16×16 (room for the U-Net to halve the resolution twice) and maps ink to $[-1, 1]$, the range
# the noise schedule expects. They are small enough to train on a laptop CPU, and real enough that
# a bad model shows.

# %%
images, labels = load_digits()
print(f"images: {tuple(images.shape)}, values in [{images.min():.0f}, {images.max():.0f}]; labels 0-9")
show_images(images[:32], nrow=16, title="Real digits (16x16)")
plt.show()

# %% [markdown]
# ## 2. Anatomy of the U-Net
#
# The network takes a noisy image $x_t$ and its timestep $t$ and returns a tensor of the *same
# shape*: its guess of the noise. Inside, following the course text's figure:
#
# - the **encoder** applies residual blocks and halves the resolution between levels, trading
#   space for channels: it works out *what* is in the image;
# - the **bottleneck** (block, self-attention, block) sees the whole image at 4×4;
# - the **decoder** mirrors the encoder, doubling the resolution back;
# - **skip connections** hand each encoder output to the decoder block at the same resolution,
#   concatenated along the channels, so fine detail does not have to squeeze through 4×4;
# - every residual block adds an embedding of $t$.
#
# `trace_shapes` runs a batch through and records the output shape of every stage.

# %%
unet = UNet("digits-small")
print(f"digits-small: {unet.num_parameters():,} parameters")
print(unet.config)
x = torch.randn(8, 1, 16, 16)
for stage, shape in trace_shapes(unet, x, t=500):
    print(f"{stage:24s} -> {shape}")

# %% [markdown]
# Read the table from the top: `conv_in` lifts 1 channel to 32; the encoder goes
# 16×16 → 8×8 → 4×4 while the channels grow to 64; the decoder comes back up, and its blocks
# are wider *on input* because each one receives `cat(h, skip)`. The output has the input's
# shape, $(8, 1, 16, 16)$, as a noise prediction must.
#
# ### Exercise 1: the bottleneck's shape
#
# Write `bottleneck_shape(sample_size, base_channels, channel_mults)` returning the bottleneck's
# `(C, H, W)` for a U-Net built the way ours is: level $i$ has `base_channels * channel_mults[i]`
# channels and there is one downsampling *between* consecutive levels. The checker compares your
# answer with a real forward pass for four different configurations.

# %%
def bottleneck_shape(sample_size: int, base_channels: int, channel_mults: tuple) -> tuple:
    # BEGIN SOLUTION
    side = sample_size // 2 ** (len(channel_mults) - 1)  # one halving between consecutive levels
    return (base_channels * channel_mults[-1], side, side)
    # END SOLUTION


nb04.check_bottleneck_shape(bottleneck_shape)

# %% [markdown]
# ## 3. Telling the network the time
#
# The same U-Net handles every noise level, from a barely-touched digit ($t = 0$) to pure static
# ($t = 999$). It needs to know which: removing noise from $x_{10}$ and from $x_{900}$ are very
# different jobs. The timestep enters as a **sinusoidal embedding**, the positional encoding of
# transformers: for frequencies $f_i = 10000^{-i/(d/2)}$, $i = 0, \dots, d/2 - 1$,
#
# $$\mathrm{emb}(t) = \big[\cos(t f_0), \dots, \cos(t f_{d/2-1}),\ \sin(t f_0), \dots, \sin(t f_{d/2-1})\big].$$
#
# Fast frequencies separate neighbouring timesteps; slow ones tell early from late. A small MLP
# turns this vector into the embedding that every residual block adds to its features.
#
# ### Exercise 2: write the embedding
#
# `t` is a `(B,)` tensor of timesteps, `dim` is even; return a `(B, dim)` float tensor with the
# cosines first, then the sines.

# %%
def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    # BEGIN SOLUTION
    half = dim // 2
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(half) / half)  # (d/2,)
    args = t.float()[:, None] * freqs[None]  # (B, d/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, d)
    # END SOLUTION


nb04.check_timestep_embedding(sinusoidal_embedding)

# %% [markdown]
# Each column of the picture below is one timestep's embedding (drawn with the package's
# `timestep_embedding`, so it appears whether or not you have solved the exercise), and each row
# one dimension as $t$ runs from 0 to 999. The first rows of each half (the cosines from dimension
# 0, the sines from 32) oscillate fast along $t$, the last rows of each half slowly: every timestep
# gets its own vertical barcode.

# %%
ts = torch.arange(0, 1000)
emb = timestep_embedding(ts, 64)
fig, ax = plt.subplots(figsize=(8, 3.5))
im = ax.imshow(emb.T, aspect="auto", cmap="RdBu", interpolation="nearest")
ax.set(xlabel="timestep t", ylabel="embedding dimension", title="Sinusoidal timestep embedding (dim 64)")
fig.colorbar(im, ax=ax, label="value")
plt.show()

# %% [markdown]
# ## 4. The training loop
#
# Training repeats the six steps of notebook 03: draw clean digits $x_0$, a timestep $t$ for
# each, and noise $\epsilon$; form $x_t$ in closed form; ask the U-Net for $\epsilon_\theta(x_t, t)$;
# minimise $\lVert \epsilon - \epsilon_\theta \rVert^2$. Everything hinges on how $t$ is drawn.
#
# ### Exercise 3: draw the training timesteps
#
# The simple loss draws $t$ **uniformly over every timestep**. Write
# `sample_timesteps(batch_size, num_timesteps, generator)` returning a `(batch_size,)` tensor of
# integer timesteps, 0-indexed, drawn with `generator`. (The course text writes
# $t \sim \mathrm{Uniform}(1, T)$ because it counts from 1; our arrays count from 0.)

# %%
def sample_timesteps(batch_size: int, num_timesteps: int, generator: torch.Generator) -> torch.Tensor:
    # BEGIN SOLUTION
    return torch.randint(0, num_timesteps, (batch_size,), generator=generator)
    # END SOLUTION


nb04.check_sample_timesteps(sample_timesteps)

# %% [markdown]
# ### Build exercise: the training step and the loop
#
# Now write the rest of training yourself: the six steps of the course text's simple loss
# (Algorithm 1 of Ho et al. 2020), the optimiser update, and an average of the weights to sample
# with. Three functions:
#
# **1. `training_step(model, optimizer, x0, alphas_cumprod, generator)`** returns the loss of one
# batch and updates the weights once. `x0` is a batch of clean digits, $(B, 1, 16, 16)$;
# `alphas_cumprod` the schedule's $\bar\alpha$, a float32 `(T,)` tensor on `x0`'s device.
#
# - Draw $t \sim \mathcal{U}\{0, \dots, T-1\}$, a `(B,)` integer tensor, **then**
#   $\epsilon \sim \mathcal{N}(0, I)$ of `x0`'s shape, both with `generator` and on `x0.device`
#   (`torch.randint(..., generator=generator, device=x0.device)`, `torch.randn(...)` likewise). Keep
#   that order: the checker replays your draws from the same seed.
# - Noise in closed form (notebook 02): $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$,
#   with $\bar\alpha_t$ looked up per image and shaped $(B, 1, 1, 1)$.
# - The loss: $L = \operatorname{mean}\big(\epsilon - \epsilon_\theta(x_t, t)\big)^2$ over the batch
#   and every pixel (`F.mse_loss`), where $\epsilon_\theta(x_t, t)$ is `model(x_t, t)`. The network
#   predicts the noise, so the target is the $\epsilon$ you drew.
# - Update: `optimizer.zero_grad()` (`backward` *adds* to the gradients), `loss.backward()`,
#   `optimizer.step()`. Return the loss (`loss.detach()`).
#
# **2. `ema_update(ema_model, model, decay)`** moves every parameter of a copy of the network
# towards the current weights:
#
# $$\theta_{\text{EMA}} \leftarrow d \cdot \theta_{\text{EMA}} + (1 - d) \cdot \theta,$$
#
# in place (tensor methods ending in `_`, such as `mul_`, `add_` and `copy_`, change the tensor itself),
# inside `with torch.no_grad():`, since the average is bookkeeping that autograd must not record. Why
# bother: each optimiser step follows one small batch, so the weights jitter around a good
# solution; their exponential moving average, a mean over roughly the last $1 / (1 - d)$ steps,
# sits closer to its centre and samples cleaner images. Long runs use $d = 0.999$; the checker's
# 100-step run uses $d = 0.9$, since an average over the last 1,000 steps would still be mostly the
# random initial weights.
#
# **3. `train_loop(model, images, schedule, steps, batch_size, lr, ema_decay, generator)`** returns
# `(ema_model, losses)`. Once, before the loop: the EMA copy (`copy.deepcopy(model)`, so it starts at
# the initial weights), the optimiser `torch.optim.AdamW(model.parameters(), lr=lr)`, and
# `schedule.alphas_cumprod` cast to float32 on `images.device` (schedules are float64). Then, each of
# the `steps` steps: draw the batch's rows, `torch.randint(0, len(images), (batch_size,),
# generator=generator, device=images.device)`, call `training_step` on `images[rows]`, then
# `ema_update`. `losses` is the list of the step losses as floats.
#
# The checker tries each piece on tiny cases, then trains a fresh `digits-tiny` U-Net with your
# loop for a fixed 100 steps, samples from its EMA model and lets the shipped digit classifier
# judge the samples. It also runs the course's own loop on the same budget, for comparison.

# %%
nb04.TRAINING_BUILD

# %%
def training_step(model, optimizer, x0: torch.Tensor, alphas_cumprod: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """One batch of the simple loss and one optimiser update; returns the loss (0-d).

    x0: (B, C, H, W) clean images; alphas_cumprod: (T,) float32 on x0's device; draws t, then eps.
    """
    # BEGIN SOLUTION
    b = x0.shape[0]
    t = torch.randint(0, len(alphas_cumprod), (b,), generator=generator, device=x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)  # (B, C, H, W)
    abar = alphas_cumprod[t].view(b, 1, 1, 1)  # (B, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps  # the closed form
    loss = F.mse_loss(model(x_t, t), eps)  # mean over the batch and every pixel
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
    # END SOLUTION


def ema_update(ema_model, model, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param for every parameter, in place, outside autograd."""
    # BEGIN SOLUTION
    with torch.no_grad():
        for ema_p, p in zip(ema_model.parameters(), model.parameters()):
            ema_p.mul_(decay).add_(p, alpha=1 - decay)
    # END SOLUTION


def train_loop(model, images: torch.Tensor, schedule, steps: int, batch_size: int, lr: float, ema_decay: float,
               generator: torch.Generator):
    """Train ``model`` in place on ``images`` (N, C, H, W); returns (ema_model, losses: one float per step)."""
    # BEGIN SOLUTION
    ema_model = copy.deepcopy(model)  # starts at the initial weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    alphas_cumprod = schedule.alphas_cumprod.float().to(images.device)  # float64 -> float32, once
    losses = []
    for _ in range(steps):
        rows = torch.randint(0, len(images), (batch_size,), generator=generator, device=images.device)  # (B,)
        losses.append(training_step(model, optimizer, images[rows], alphas_cumprod, generator).item())
        ema_update(ema_model, model, ema_decay)
    return ema_model, losses
    # END SOLUTION


build_result = nb04.check_training_loop(training_step, ema_update, train_loop)
build_result

# %% [markdown]
# From here on the notebook trains with your loop once the checker accepts it (with the course's
# until then). The checker's run is not thrown away: below are its loss, step by step, and the
# samples of its EMA model, with the digit the classifier reads in each.

# %%
schedule = get_schedule("cosine")
demo_batch = config.by_mode(fast=32, cpu=64, full=64)  # the short runs of this notebook; fast: half the time
loop = use_build(build_result, train_loop, nb04.package_train_loop, "training loop")
quick = nb04.training_run(loop)  # the checker's run of this loop (trained now if the checker did not get to it)
read = metrics.predict_digits(quick.samples)
print(f"{quick.steps} steps in {quick.seconds:.0f} s: loss {quick.first_loss:.3f} -> {quick.last_loss:.3f} "
      f"(first and last tenth); digits-FID of {len(quick.samples)} samples {quick.fid:.1f}; "
      f"the classifier reads {len(read.unique())} of the 10 digits among them")
fig, axes = plt.subplots(1, 2, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1, 2]})
axes[0].plot(range(1, quick.steps + 1), quick.losses)
axes[0].set(xlabel="training step", ylabel="MSE loss of the batch", yscale="log", title=f"Loss, {quick.steps} steps")
axes[0].grid(alpha=0.3)
show_images(quick.samples[:16], nrow=8, ax=axes[1],
            title="EMA model, DDIM-20; the classifier reads: " + " ".join(str(int(d)) for d in read[:16]))
plt.show()

# %% [markdown]
# A hundred steps (seconds on a CPU) already take the loss from about 0.6 to under 0.1, and the
# samples are strokes on a dark background, not noise, but not digits yet either: the classifier's
# readings are guesses. digits-FID, computed on the classifier's features, measures the
# distance: 8 to 9 here, 27 for the untrained network, 1 for real digits at this sample size. The
# rest of training is the same loop, run much longer.
#
# The course's loop, `course_utils.training.train`, does what yours does, with a few additions a
# real run needs. Each one is a field of `TrainConfig`:
#
# - **Learning rate: warm-up, then cosine decay** (`warmup_steps`, `lr_decay="cosine"`). The rate climbs
#   from zero over the first steps (large early updates from random weights can wreck a run), then falls
#   along half a cosine to a tenth of its peak, so the last steps polish instead of jittering.
# - **EMA warm-up** (`ema_warmup=True`). Your EMA starts at the initial, random weights; with $d = 0.999$
#   after 1,300 steps $0.999^{1300} \approx 27\%$ of the average is still those weights. The warm-up
#   uses $d_s = \min(d, (1 + s) / (10 + s))$ at step $s$ (diffusers' `EMAModel` does the same): 0 at the
#   first step, so the average forgets where it started, then it grows to $d$.
# - **bf16 where the chip computes it natively** (`precision`; `config.fast_precision` picks it): a GPU,
#   or a CPU with bf16 instructions, where a step takes about two thirds of the time. Elsewhere bf16 would
#   be emulated and slower, so it stays fp32.
# - Gradient clipping, a clear stop if the loss turns NaN, a progress bar with the time left, and on a
#   GPU one CUDA graph for the whole step (recorded once, then replayed: the GPU no longer waits for
#   Python to launch each small kernel).
# - **Checkpoints you can resume from.** Stopping the cell (■) ends training cleanly and keeps the model
#   trained so far; running the cell again continues from `runs/` where it stopped.

# %% [markdown]
# Now the real model. In `fast` mode we load the checkpoint that ships with the package (trained
# by `python -m course_utils.train digits-ddpm`: 6,000 steps of the 1.1M-parameter U-Net on this
# course's CPU); in `cpu` mode you train the same U-Net for 1,300 steps with all of the above (a few
# minutes), in `full` mode a 6.8M-parameter one.

# %%
if MODE == "fast":
    model = pretrained.load("digits-ddpm", device=DEVICE)
    card = pretrained.info("digits-ddpm")["card"]
    _, meta = pretrained.load_tensors("digits-ddpm")
    losses = meta["losses"]
    print(f"loaded {model}: {card['steps']} steps on {card['device']} in {card['wall_time_s'] / 60:.0f} min")
else:
    preset = "digits-small" if MODE == "cpu" else "digits"
    run = train(UNet(preset), images, schedule,
                TrainConfig(steps=config.by_mode(fast=0, cpu=1300, full=4000),
                            batch_size=config.by_mode(fast=0, cpu=64, full=256),
                            lr=config.by_mode(fast=0, cpu=1e-3, full=5e-4), warmup_steps=config.by_mode(0, 100, 200),
                            lr_decay="cosine", ema_warmup=True,  # see the list above
                            precision=config.fast_precision(DEVICE),  # bf16 where the chip computes it natively
                            cuda_graph=DEVICE.type == "cuda"),  # the whole step as one CUDA graph (eager if it fails)
                device=DEVICE, checkpoint_path=f"runs/04_{preset}.safetensors")
    model = DiffusionModel(run.ema_model, schedule, info={"name": f"my {preset}"})
    losses = run.losses
    print(f"trained {model}: {run.step} steps in {run.wall_time_s / 60:.1f} min ({run.images_per_s:.0f} images/s)")

steps_axis, loss_values = zip(*losses)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(steps_axis, loss_values)
ax.set(xlabel="training step", ylabel="MSE loss (mean over the last log interval)", yscale="log",
       title="Training loss of the digits U-Net")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The loss drops fast, then flattens well above zero: even a perfect denoiser cannot tell the
# noise apart from the digit at high $t$ (notebook 03 showed that floor for the exact oracle).
#
# ## 5. Sampling: DDPM and DDIM
#
# The trained U-Net plugs into the samplers of notebook 03 unchanged. DDPM walks all 1,000 steps
# and adds fresh noise at each; DDIM jumps through 50 of them deterministically.

# %%
n_ddpm, n_ddim = config.by_mode(fast=(1, 16), cpu=(8, 64), full=(16, 64))  # fast mode: fewer digits keep CI quick
t0 = time.perf_counter()
ddpm_samples = sample_loop(model.denoiser, DDPMSampler(model.schedule), (n_ddpm, 1, 16, 16),
                           generator=torch.Generator().manual_seed(0), device=DEVICE)
ddpm_time = time.perf_counter() - t0
t0 = time.perf_counter()
ddim_samples = sample_loop(model.denoiser, DDIMSampler(model.schedule), (n_ddim, 1, 16, 16), 50,
                           generator=torch.Generator().manual_seed(1), device=DEVICE)
ddim_time = time.perf_counter() - t0
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 2]})
show_images(ddpm_samples.cpu(), nrow=4, ax=axes[0], title=f"DDPM, 1000 steps ({ddpm_time:.1f} s for {n_ddpm})")
show_images(ddim_samples.cpu(), nrow=8, ax=axes[1], title=f"DDIM, 50 steps ({ddim_time:.1f} s for {n_ddim})")
plt.show()
print(f"per image: DDPM {ddpm_time / n_ddpm:.2f} s, DDIM {ddim_time / n_ddim:.3f} s")

# %% [markdown]
# ## 6. How good are they? digits-FID
#
# Looking is not measuring. The course's metric, **digits-FID**, is FID's formula applied to the
# 64-number features of a small digit classifier that ships with the package (it gets 99.7% of
# held-out digits right). It compares the feature statistics of generated digits with those of
# real ones; lower is better.
#
# FID depends on how many images you score, so it is always measured at the same count here:
# $N = 898$, half of the real digits. Scoring the *other* half of the real digits the same way
# gives the **floor**, the best any model can hope for at that $N$. The course's bar for a good
# model: within 3× the floor. (To keep CI quick, `fast` mode samples with 6 steps of DPM-Solver++, a
# faster sampler that [notebook 09](09_fast_sampling.ipynb) explains, instead of 50 DDIM steps: on
# this model it scores about what 10 DDIM steps do, in 6 network calls. The shipped model's card
# records its DDIM-50 figure.)

# %%
fid_sampler, fid_steps = config.by_mode(fast=("dpmsolver++", 6), cpu=("ddim", 50), full=("ddim", 50))
t0 = time.perf_counter()
samples = model.sample(metrics.NUM_SAMPLES, steps=fid_steps, sampler=fid_sampler,
                       generator=torch.Generator().manual_seed(0))
fid = metrics.digits_fid(samples)
floor = metrics.floor()["fid"]
spread = metrics.class_distribution(samples)
sampler_name = {"ddim": "DDIM", "dpmsolver++": "DPM-Solver++"}[fid_sampler]
print(f"digits-FID ({sampler_name}-{fid_steps}, N = {len(samples)}): {fid:.3f}   real-vs-real floor: {floor:.3f}   "
      f"ratio {fid / floor:.1f}x   ({time.perf_counter() - t0:.0f} s)")
if MODE == "fast":
    shipped = pretrained.info("digits-ddpm")["card"]["metric"]
    print(f"the shipped model's card ({shipped['sampler']}, N = {shipped['n']}): digits-FID "
          f"{shipped['digits_fid']:.3f} = {shipped['digits_fid'] / floor:.1f}x the floor")
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar(range(10), spread * 100)
ax.axhline(10, color="0.4", ls="--", label="uniform (10%)")
ax.set(xlabel="digit (as read by the classifier)", ylabel="% of samples", xticks=range(10),
       title="Which digits does the model draw?")
ax.legend()
plt.show()
# Sanity bounds that hold for any trained model and fail for a broken one (noise scores ~100x higher):
noise_fid = metrics.digits_fid(torch.rand(metrics.NUM_SAMPLES, 1, 16, 16) * 2 - 1)
print(f"for scale: uniform noise scores {noise_fid:.1f}")
assert fid < noise_fid / 5, "samples should be far closer to digits than noise is"

# %% [markdown]
# The recipe shows up here as much as the length. In `cpu` mode your U-Net trained 1,300 steps with
# the additions of section 4; on the course's 2-core test machine that run scored 0.370, 2.1× the floor
# (the stored run in `docs/BENCHMARKS.md`; your figure above is your own run's). The same U-Net trained
# 2,000 steps at a constant rate, with an EMA that still held a share of its random start, scored 14× to
# 16× the floor: clearly digits, but blotchy. The shipped model trained 6,000 steps and scores 0.249,
# 1.4× the floor. If you have the time, rerun the training cell with more steps: it resumes from its
# checkpoint in `runs/` (the cosine decay stretches to the new length).
#
# ## 7. Why skip connections matter
#
# Take the skips away and the decoder must rebuild a 16×16 digit from the 4×4 bottleneck alone.
# We train two tiny U-Nets with your loop for the same number of steps, identical but for the skips, and compare
# their loss at low noise ($t < 100$), where the exact position of every stroke matters, and at
# high noise ($t \ge 500$). In `fast` mode the runs are short, so the gap is small; `cpu` and
# `full` mode train long enough to see it open up.

# %%
def loss_at(net, t_lo, t_hi, n=512, seed=123):
    """Mean simple loss on held-out digits with t drawn from [t_lo, t_hi)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = images[torch.randint(0, len(images), (n,), generator=gen)].to(DEVICE)
    t = torch.randint(t_lo, t_hi, (n,), generator=gen).to(DEVICE)
    noise = torch.randn(x0.shape, generator=gen).to(DEVICE)
    with torch.no_grad():
        return simple_loss(net, x0, t, noise, schedule.alphas_cumprod.float().to(DEVICE)).item()


ablation_steps = config.by_mode(fast=30, cpu=300, full=3000)
rows = []
for skips in (True, False):
    torch.manual_seed(0)
    net = UNet(get_unet_config("digits-tiny", skip_connections=skips)).to(DEVICE)
    loop(net, images.to(DEVICE), schedule, ablation_steps, demo_batch, 1e-3, 0.99,  # the loop you built (or ours)
         torch.Generator(DEVICE).manual_seed(0))
    rows.append((skips, net.num_parameters(), loss_at(net, 0, 100), loss_at(net, 500, 1000)))
print(f"after {ablation_steps} steps each:")
print(f"{'skips':>6} {'parameters':>11} {'loss, t < 100':>14} {'loss, t >= 500':>15}")
for skips, n_params, low, high in rows:
    print(f"{str(skips):>6} {n_params:>11,} {low:>14.4f} {high:>15.4f}")

# %% [markdown]
# With skips the low-noise loss is lower: at small $t$ the job is to find a faint layer of noise
# on top of a sharp digit, which needs the full-resolution features. At high $t$ the two are
# closer, since there the network mostly has to guess the overall shape, which the bottleneck
# can carry.

# %%
nb04.skip_question()

# %% [markdown]
# ## 8. The same loop with diffusers' U-Net
#
# 🤗 diffusers ships a production U-Net, `UNet2DModel`. `diffusers_unet_like("digits-small")`
# builds one with the same widths, depth and attention placement as ours, wrapped so it is
# called as `model(x_t, t)`. The parameter counts come out identical, and the same `train`
# function and samplers run on it.

# %%
theirs = diffusers_unet_like("digits-small")
print(f"ours: {UNet('digits-small').num_parameters():,} parameters   diffusers: {theirs.num_parameters():,}")
steps_cmp = config.by_mode(fast=10, cpu=120, full=4000)
cmp_cfg = TrainConfig(steps=steps_cmp, batch_size=demo_batch, lr=1e-3, warmup_steps=min(100, steps_cmp // 4),
                      lr_decay="cosine", ema_warmup=True, precision=config.fast_precision(DEVICE),  # section 4's recipe
                      log_every=max(1, steps_cmp // 10), cuda_graph=DEVICE.type == "cuda")
torch.manual_seed(0)
ours_run = train(UNet("digits-small"), images, schedule, cmp_cfg, device=DEVICE, progress=False)
torch.manual_seed(0)
theirs_run = train(theirs, images, schedule, cmp_cfg, device=DEVICE, progress=False)
for name, r in (("ours", ours_run), ("diffusers", theirs_run)):
    print(f"{name:>10}: {r.step} steps, final loss {r.losses[-1][1]:.4f}, {r.images_per_s:.0f} images/s")

# %%
n_theirs = config.by_mode(fast=8, cpu=32, full=32)  # fast mode: its samples are still noise
their_samples = sample_loop(theirs_run.ema_model.eval(), DDIMSampler(schedule), (n_theirs, 1, 16, 16), 50,
                            generator=torch.Generator().manual_seed(2), device=DEVICE)
show_images(their_samples.cpu(), nrow=16, title=f"diffusers UNet2DModel after {steps_cmp} steps (DDIM-50)")
plt.show()

# %% [markdown]
# In `fast` mode ten steps teach either network almost nothing, so these samples are still
# noise: the point is that the loop runs. With `COURSE_MODE=cpu` both train for 120 steps (under a
# minute together) and draw rough strokes; on a GPU, 4,000 steps each. The speed figures of both networks, on this CPU and on a GPU, are recorded in
# `docs/BENCHMARKS.md`.
#
# ## 9. Weighting the loss across noise levels: min-SNR-$\gamma$
#
# The simple loss treats every timestep alike: $t$ is uniform and each example counts once. But the
# timesteps pull the network in different directions. Hang et al. (2023, "Efficient Diffusion Training
# via Min-SNR Weighting Strategy") looked at the loss as a multi-task problem, one task per noise level,
# and found that the nearly clean timesteps dominate. Write the signal-to-noise ratio
# $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$. The noise error and the clean-image error are tied by
#
# $$\lVert \hat\epsilon - \epsilon \rVert^2 = \mathrm{SNR}(t)\,\lVert \hat x_0 - x_0 \rVert^2,$$
#
# so in terms of the image, the simple loss weights timestep $t$ by $\mathrm{SNR}(t)$: about 1,400 at
# $t = 10$ under our cosine schedule, 1 at $t = 500$ and 0.0002 at $t = 990$. The model spends its effort on removing the last grain
# of noise, which the samples hardly show. Min-SNR-$\gamma$ caps that weight at $\gamma$ (the paper uses 5):
# in image terms the weight becomes $\min(\mathrm{SNR}(t), \gamma)$, so for the noise loss each example is
# multiplied by
#
# $$w(t) = \frac{\min(\mathrm{SNR}(t), \gamma)}{\mathrm{SNR}(t)},$$
#
# which is 1 wherever $\mathrm{SNR} \le \gamma$ (the noisy three quarters of the timesteps here) and falls
# below 1 for the nearly clean ones. It is one option of the course's loop, `TrainConfig(snr_gamma=5.0)`
# (diffusers' training scripts call it `--snr_gamma`).

# %%
snr = schedule.alphas_cumprod / (1 - schedule.alphas_cumprod)  # (1000,)
fig, (ax_snr, ax_w) = plt.subplots(1, 2, figsize=(11, 3.3))
ax_snr.plot(snr.numpy())
ax_snr.axhline(5.0, color="C3", ls="--", lw=1, label="gamma = 5")
ax_snr.set(yscale="log", xlabel="timestep t", ylabel="SNR(t)", title="Signal-to-noise ratio, cosine schedule")
ax_snr.legend()
for gamma in (1.0, 5.0, 20.0):
    ax_w.plot(min_snr_weights(snr, gamma).numpy(), label=f"gamma = {gamma:g}")
ax_w.set(xlabel="timestep t", ylabel="weight on the noise loss", title="Min-SNR-gamma weights")
ax_w.legend()
fig.tight_layout()
plt.show()
print(f"SNR > 5 (weight below 1) for t < {int((snr > 5).sum())}; weight at t = 10: {min_snr_weights(snr, 5.0)[10]:.4f}")

# %% [markdown]
# A short run first: the tiny U-Net of section 7, trained by the course's loop twice, identical (data,
# seed, steps) but for `snr_gamma`, then the loss of each measured on held-out digits at three bands of
# noise. The weighted run should give up a little at low noise, the band it now weights less.

# %%
snr_steps = config.by_mode(fast=60, cpu=300, full=3000)
snr_rows = {}
for name, gamma in (("plain", None), ("min-SNR-5", 5.0)):
    torch.manual_seed(0)
    run = train(UNet(get_unet_config("digits-tiny")), images, schedule,
                TrainConfig(steps=snr_steps, batch_size=demo_batch, lr=1e-3, warmup_steps=min(100, snr_steps),
                            snr_gamma=gamma, precision=config.fast_precision(DEVICE), log_every=max(1, snr_steps // 10)),
                device=DEVICE, progress=False)
    net = run.model.eval()  # the trained weights themselves: an EMA would still be mostly the start in fast mode
    snr_rows[name] = [loss_at(net, lo, hi) for lo, hi in ((0, 100), (100, 500), (500, 1000))]
print(f"after {snr_steps} steps each, the simple (unweighted) loss on held-out digits:")
print(f"{'':>10} {'t < 100':>9} {'100-499':>9} {'t >= 500':>9}")
for name, losses in snr_rows.items():
    print(f"{name:>10} " + " ".join(f"{v:>9.4f}" for v in losses))

# %% [markdown]
# The loss says where the effort went, not whether the samples are better. That needs a digits-FID
# learning curve, which takes longer than this notebook should: benchmark 9
# (`benchmarks/training_recipes.py min-snr`) trains digits-ddpm's U-Net twice for 2,000 steps of batch 64,
# plain and with $\gamma = 5$, and scores the EMA weights every 500 steps (N = 898, DPM-Solver++-20).

# %%
recipes_run = stored_run("training_recipes")  # benchmarks/results/training_recipes.json; None outside the repository
if recipes_run is not None:
    entry = recipes_run["min-snr"]
    print(f"stored run: {entry['budget']}; {entry['device']}, {entry['date']}")
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for arm in entry["arms"]:
        steps_axis, fids = [p["step"] for p in arm["curve"]], [p["fid"] for p in arm["curve"]]
        ax.plot(steps_axis, fids, "o-", label=arm["label"])
        print(f"{arm['label']:>10}: digits-FID by step " + ", ".join(f"{k}: {v:.3f}" for k, v in zip(steps_axis, fids)))
    ax.axhline(entry["floor_fid"], color="0.4", ls=":", label=f"real vs real ({entry['floor_fid']:.3f})")
    ax.set(xlabel="training step", ylabel="digits-FID (lower is better, log scale)", yscale="log",
           title="Min-SNR-5 against the plain loss (stored run)")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))  # 0.3, not 3 x 10^-1
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.legend()
    plt.show()

# %% [markdown]
# What the stored run says (one seed, N = 898; the floor, real digits against real digits, is 0.179):
# the weighted run is ahead at every milestone, 0.557 against 0.735 after 1,000 steps and 0.269 against
# 0.306 after 2,000, and it reaches the plain run's final quality with a quarter of the steps to spare
# (0.298 at 1,500). Both reach 3x the floor at the same milestone, 1,500 steps, so at this resolution
# the curves differ in how far they get, not in when they cross that bar. The paper reports a 3.4x
# faster convergence on ImageNet, for large models and long runs; on a small U-Net and 2,000 steps the
# gain is smaller but measurable. Your short run above shows the mechanism, not the gain: the
# weighted model gives up a little at low noise for a lower loss at high noise, where the digit's
# shape is decided.
#
# ## 10. Beyond 1,797 digits: MNIST and Fashion-MNIST (`full` mode, online)
#
# The same U-Net and the same loop train on MNIST's 60,000 handwritten digits or on Fashion-MNIST's
# 60,000 clothing items (shirts, shoes, bags), brought to this notebook's 16×16. Neither ships with the
# course: torchvision downloads them (about 12 MB for MNIST, 30 MB for Fashion-MNIST) into `data/`,
# which needs an internet connection (Colab has one), and training on 60,000 images is `full` mode's
# work. digits-FID's classifier knows only our digits, so the quality number is built the same way
# for the new data: the same small classifier, trained here on the new training images in about a
# minute, its features compared on 1,000 generated against 1,000 held-out real images, with 1,000
# other real images giving the floor.
#
# Set `DATASET` to `"mnist"` or `"fashion"` and run the cell in `full` mode with internet; as shipped
# it only says what it would do.

# %%
DATASET = "digits"  # "mnist" or "fashion": download, train and score (full mode, online)
if DATASET == "digits" or MODE != "full":
    print(f"DATASET = {DATASET!r}, mode {MODE!r}: nothing to download. Set DATASET = 'mnist' or 'fashion' in full "
          "mode, with internet, to train this notebook's U-Net on 60,000 images (torchvision downloads about "
          "12 MB for MNIST, 30 MB for Fashion-MNIST into data/).")
else:
    (x_train, y_train), (x_test, y_test) = (load_mnist("data", kind=DATASET, split=split, download=True, size=16)
                                            for split in ("train", "test"))
    scorer = DatasetFID(x_train, y_train, x_test, y_test, n=1000)
    print(f"{DATASET}: {len(x_train):,} training images; its classifier reads {scorer.accuracy:.1%} of the "
          f"{len(x_test):,} test images right; real-vs-real floor {scorer.floor:.3f} at N = 1,000")
    run = train(UNet("digits"), x_train, schedule,
                TrainConfig(steps=8000, batch_size=256, lr=5e-4, warmup_steps=200, cuda_graph=DEVICE.type == "cuda"),
                device=DEVICE, checkpoint_path=f"runs/04_{DATASET}.safetensors")
    data_model = DiffusionModel(run.ema_model, schedule, info={"name": f"my {DATASET} U-Net"})
    drawn = data_model.sample(1000, steps=50, sampler="ddim", generator=torch.Generator().manual_seed(0))
    fid_new = scorer.fid(drawn.cpu())
    print(f"FID on {DATASET}'s classifier (DDIM-50, N = 1,000): {fid_new:.3f} = {fid_new / scorer.floor:.1f}x "
          f"the floor, after {run.step} steps in {run.wall_time_s / 60:.1f} min")
    show_images(drawn[:32].cpu(), nrow=16, title=f"{DATASET}: 32 samples of your U-Net")
    plt.show()

# %% [markdown]
# ## What comes next
#
# The model draws random digits: you cannot ask for a 7. Notebook
# [05 · Guidance](05_guidance.ipynb) adds class and text conditioning and
# classifier-free guidance, and measures the trade between following the prompt and variety.
