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
# # 06 · Latent diffusion: denoise a small code, not the pixels
#
# Every model so far denoised pixels. At 32×32 that is affordable; at 512×512 a single image is
# 786,432 numbers and a thousand passes of a U-Net over all of them is what made pixel-space DDPM
# take minutes per image. Latent diffusion (Rombach et al. 2022, the paper behind Stable
# Diffusion) splits the job in two: an **autoencoder** learns once to squeeze an image into a
# small **latent**, and diffusion then runs on latents. This notebook builds both halves on the
# shapes world and measures what the split buys.
#
# What you will do:
#
# 1. Measure how redundant images are: how many numbers they take, and how few they need.
# 2. Build the variational autoencoder's (VAE's) training signal yourself: the reparameterisation
#    trick, the KL term and the loss; then train the VAE with it.
# 3. Check its reconstructions on shapes it never saw, and find the scale factor for its latents.
# 4. Look inside a latent, channel by channel (the course text's Exercise 4).
# 5. Run text-conditioned diffusion on latents, decode, and compare it with the pixel model of
#    notebook 05: quality, operations and seconds per image.
# 6. Decode in half precision and see why production pipelines decode in fp32.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | training | samples | time |
# |---|---|---|---|
# | `fast` | the build's check trains a narrow VAE for 150 steps twice (your loss, the package's), then the shipped `shapes-vae` and `shapes-latent` | 18 captions, DDIM-10 | under a minute |
# | `cpu` | the shipped VAE recipe shortened to 1,500 steps, printed in section 3 | all 90 captions, DDIM-25 | about 6 minutes on a laptop, most of it training the VAE |
# | `full` | the shipped VAE recipe | 90 captions x 4, DDIM-50 | not yet measured on a GPU |
#
# One build (the VAE's sampling and loss: three functions, graded together and by a short training
# run), one coding exercise and three questions, each with an automatic checker.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import config, metrics, pretrained
from course_utils.data import make_shapes
from course_utils.course.exercises import nb06, use_build
from course_utils.guidance import ClassifierFreeGuidance
from course_utils.latent import (decode, encode, latent_channel_correlations, numbers_per_image, reconstruction_error,
                                 train_vae)
from course_utils.models.clip import all_captions
from course_utils.models.vae import VAE, vae_loss
from course_utils.profiling import sampling_cost
from course_utils.recipes import get_recipe
from course_utils.samplers import DDIMSampler
from course_utils.viz import show_images
from course_utils.course.widgets import LatentExplorer

MODE, DEVICE = config.get_mode(), config.get_device()
print(config.describe())

# %% [markdown]
# ## 1. How redundant is an image?
#
# Our shapes are 32×32 RGB: 3,072 numbers each. But an image of one shape on a plain background
# is described by a handful of facts: the shape, its colour, its size and position, the
# background's colour. Two measurements make that redundancy concrete:
#
# - **Neighbouring pixels agree.** The correlation between a pixel and the one to its right,
#   over many images.
# - **Few directions hold almost all the variation.** Principal component analysis (PCA) finds
#   the directions in 3,072-dimensional pixel space along which the images vary most; we count
#   how many it takes to hold 99% of the variance.

# %%
data = make_shapes(config.by_mode(fast=2000, cpu=5000, full=5000), seed=0)
x = data.images  # (N, 3, 32, 32) in [-1, 1]
left, right = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
neighbour_r = torch.corrcoef(torch.stack([left, right]))[0, 1]
flat = x.flatten(1) - x.flatten(1).mean(0)  # (N, 3072), centred
variances = torch.linalg.svdvals(flat) ** 2  # (min(N, 3072),) variance along each principal direction
explained = variances.cumsum(0) / variances.sum()
k99 = int((explained < 0.99).sum()) + 1
print(f"{len(x)} images of {x[0].numel():,} numbers each")
print(f"correlation of horizontally neighbouring pixel values: {neighbour_r:.3f}")
print(f"principal directions holding 90% / 99% of the variance: "
      f"{int((explained < 0.9).sum()) + 1} / {k99} of {x[0].numel():,}")

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(range(1, len(explained) + 1), 100 * explained)
ax.axhline(99, color="0.5", ls="--", lw=1)
ax.axvline(k99, color="0.5", ls=":", lw=1)
ax.set(xscale="log", xlabel="number of principal directions kept", ylabel="variance held (%)",
       title=f"Shapes images: {k99} of 3,072 directions hold 99% of the variance")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# A linear map can already drop most of the numbers; a nonlinear encoder can do better still. The
# course's VAE, `shapes-vae`, maps each 32×32×3 image to an **8×8×4** latent: the spatial grid
# shrinks by 4 in each direction and the channels grow from 3 to 4 (Stable Diffusion's VAE maps
# 512×512×3 to 64×64×4, a factor of 8 per direction).

# %%
vae_shape = VAE("shapes-vae")
counts = numbers_per_image(vae_shape)
print(f"pixels: {counts['pixels']:,} numbers per image, latents: {counts['latents']:,}; latent shape "
      f"{vae_shape.latent_shape}")
print(f"Stable Diffusion for comparison: {512 * 512 * 3:,} pixels -> {64 * 64 * 4:,} latents")
nb06.compression_question(counts["pixels"], counts["latents"])

# %% [markdown]
# ## 2. The variational autoencoder
#
# A plain autoencoder maps an image to one latent point. The VAE's encoder instead outputs a
# Gaussian over latents: a **mean** and a **log-variance** per latent number,
# $q(z \mid x) = \mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$. Training draws a latent from
# that Gaussian, decodes it, and minimises
#
# $$\mathcal L = \underbrace{\lVert D(z) - x \rVert^2}_{\text{reconstruction}} \; + \; \beta\, \underbrace{\mathrm{KL}\big(q(z\mid x)\,\Vert\,\mathcal N(0, I)\big)}_{\text{keep latents tame}}.$$
#
# The KL term pulls every posterior towards a standard normal, which keeps the latent space smooth
# and bounded, so that the diffusion model has well-behaved data to learn. Latent diffusion keeps
# $\beta$ small (here $10^{-3}$ per latent number): the latents must still carry the image's detail.
#
# ### Build: the VAE's sampling and its loss
#
# You write the three pieces that turn the encoder's output into a training signal; the package's
# `VAE` supplies the network. `model.encode(x)` maps images `(B, 3, 32, 32)` to the posterior, whose
# `.mean` and `.logvar` ($\log \sigma^2$) are `(B, 4, 8, 8)` each, and `model.decode(z)` maps latents
# `(B, 4, 8, 8)` back to images.
#
# 1. **The reparameterisation trick**, `sample_latent(mean, logvar, generator)`. Drawing
#    $z \sim \mathcal N(\mu, \sigma^2)$ directly has no gradient with respect to $\mu$ and $\sigma$
#    (that is what `torch.normal(mean, std)` does). Draw the noise first instead,
#    $\varepsilon \sim \mathcal N(0, I)$, and compute
#    $$z = \mu + \sigma\,\varepsilon, \qquad \sigma = \exp(\tfrac12 \log \sigma^2):$$
#    the randomness is now an input and gradients flow through $\mu$ and $\sigma$. Draw $\varepsilon$
#    once, with `torch.randn(mean.shape, generator=generator)`: the checker replays the same generator.
# 2. **The KL term in closed form**, `kl_to_standard_normal(mean, logvar)`, one value per example
#    `(B,)`. For a diagonal Gaussian against $\mathcal N(0, I)$ it needs no sampling:
#    $$\mathrm{KL} = \tfrac12 \sum_i \big(\mu_i^2 + \sigma_i^2 - 1 - \log \sigma_i^2\big),$$
#    summed over every dimension except the first (the batch).
# 3. **The loss**, `vae_training_loss(model, x, kl_weight=1e-3, generator=None)`: encode `x`, draw
#    `z` with your `sample_latent`, decode it, and return a dict of three one-number tensors, as the
#    package's `vae_loss` does:
#    - `"recon"`: the squared error $(D(z) - x)^2$ averaged over every pixel of the batch
#      (`F.mse_loss`'s default);
#    - `"kl"`: your KL averaged over the batch and divided by the number of latent numbers per image
#      (4 × 8 × 8 = 256), so that `kl_weight` is the weight per latent number of the equation above;
#    - `"loss"`: `recon + kl_weight * kl`, the one the optimiser minimises.
#
# The checker below says what it grades before you start. Its last stage trains a small VAE with
# your loss and measures how well it reconstructs shapes it never saw, by the PSNR
# ($10 \log_{10}(1 / \mathrm{MSE})$ on pixels scaled to [0, 1]; higher is better). Once your build is
# correct, section 3 trains with your loss; until then it uses the package's.

# %%
nb06.VAE_BUILD

# %%
def sample_latent(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """mean, logvar: (B, C, h, w) -> z: (B, C, h, w), z = mean + exp(0.5 * logvar) * eps, eps ~ N(0, I)."""
    # BEGIN SOLUTION
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)  # (B, C, h, w)
    return mean + torch.exp(0.5 * logvar) * eps
    # END SOLUTION


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """mean, logvar: (B, ...) -> (B,): KL(N(mean, exp(logvar)) || N(0, I)) per example."""
    # BEGIN SOLUTION
    return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)
    # END SOLUTION


def vae_training_loss(model: VAE, x: torch.Tensor, kl_weight: float = 1e-3,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """x: (B, 3, 32, 32) in [-1, 1] -> {"loss", "recon", "kl"}, each a scalar tensor."""
    # BEGIN SOLUTION
    posterior = model.encode(x)
    mean, logvar = posterior.mean, posterior.logvar  # (B, 4, 8, 8) each
    z = sample_latent(mean, logvar, generator)  # (B, 4, 8, 8)
    recon = F.mse_loss(model.decode(z), x)  # mean over every pixel
    kl = kl_to_standard_normal(mean, logvar).mean() / mean[0].numel()  # per latent number
    return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}
    # END SOLUTION


# %%
vae_result = nb06.check_vae_build(sample_latent, kl_to_standard_normal, vae_training_loss)
loss_fn = use_build(vae_result, vae_training_loss, vae_loss, "VAE loss")
vae_result

# %% [markdown]
# ## 3. Training the VAE
#
# `train_vae` trains the VAE with AdamW and a cosine decay of the learning rate, with the loss you
# give it (`loss_fn=`), here `loss_fn`: your
# `vae_training_loss` once the build is correct, the package's `vae_loss` until then. The shipped
# `shapes-vae` was trained by the recipe printed below, and then its decoder alone for 8,000 more
# steps with the encoder frozen, so that every latent stays as it was and decodes sharper (Stable
# Diffusion's improved VAE, `sd-vae-ft-mse`, was made the same way; `latent.finetune_decoder`).
# In `fast` mode the build's check has already shown the loop learning (150 steps of a narrower
# VAE), so we load the shipped one and draw both its stages (the brief spike where the second
# begins: its learning rate starts again at full size, with no warm-up); in
# `full` mode we run the recipe with `loss_fn`; in `cpu` mode 1,500 of its 2,500 steps (the cosine
# decay stretched to fit), in bf16 where the chip computes it natively (notebook 04), enough for the
# 30 dB of PSNR that section 4 asks of it. One batch through the loss first, to see its parts:

# %%
recipe = get_recipe("shapes-vae")
tc = config.by_mode(fast=recipe.train, cpu=replace(recipe.train, steps=1500, precision=config.fast_precision(DEVICE)),
                    full=recipe.train)
print(f"recipe: {tc.steps} steps of batch {tc.batch_size}, lr {tc.lr:g} (cosine decay), KL weight 1e-3")
torch.manual_seed(0)
with torch.no_grad():
    parts = loss_fn(VAE("shapes-vae"), x[:16], generator=torch.Generator().manual_seed(0))
print("an untrained VAE on 16 images: " + ", ".join(f"{k} {float(v):.4f}" for k, v in parts.items()))

if MODE == "fast":
    vae = pretrained.load("shapes-vae", device=DEVICE)
    card = pretrained.info("shapes-vae")["card"]
    meta = pretrained.load_tensors("shapes-vae")[1]
    stage_one = meta["losses"][-1][0]  # then the decoder alone, its steps counted on from here
    curve = meta["losses"] + [(stage_one + r[0], *r[1:]) for r in meta["decoder_finetune_losses"]]
    print(f"loaded the shipped shapes-vae: {card['parameters']:,} parameters, {card['train_config']['steps']} steps "
          f"on {card['device']} in {card['wall_time_s'] / 60:.0f} min, then its decoder alone "
          f"{card['decoder_finetune']['steps']:,} steps in {card['decoder_finetune']['wall_time_s'] / 60:.0f} min")
else:
    train_images = make_shapes(20000, seed=0).images  # the recipe's 20,000 shapes
    run = train_vae(train_images, steps=tc.steps, batch_size=tc.batch_size, lr=tc.lr, seed=tc.seed,
                    log_every=50, device=DEVICE, loss_fn=loss_fn, precision=tc.precision)
    print(f"{tc.steps} steps of batch {tc.batch_size} in {run.wall_time_s:.0f} s: reconstruction error "
          f"{run.losses[0][2]:.4f} -> {run.losses[-1][2]:.4f}")
    vae, curve = run.model.to(DEVICE), run.losses

steps_axis = [row[0] for row in curve]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(steps_axis, [row[2] for row in curve], label="reconstruction (MSE per pixel)")
ax.plot(steps_axis, [1e-3 * row[3] for row in curve], label="1e-3 x KL (per latent number)")
ax.set(yscale="log", xlabel="training step", ylabel="loss term", title="Training the VAE on 20,000 shapes")
if MODE == "fast":  # the shipped VAE's second stage
    ax.axvline(stage_one, color="grey", ls="--", lw=1, label="decoder alone from here (encoder frozen)")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Reconstructions of shapes it never saw
#
# Encode held-out shapes (a different seed from training), take the posterior mean, decode. Two
# numbers say how well it works: the mean squared error per pixel (and the PSNR, the same error on
# a log scale; higher is better), and whether the shapes judge of notebook 05 still reads the
# right shape and colours in the reconstructions.

# %%
held_out = make_shapes(config.by_mode(fast=500, cpu=2000, full=2000), seed=1)
err = reconstruction_error(vae, held_out.images)
recon = decode(vae, encode(vae, held_out.images))
judge_recon = metrics.judge_accuracy(metrics.shapes_judge(), type(held_out)(recon, held_out.captions, held_out.shape,
                                                                            held_out.color, held_out.background))
print(f"{err['n']} held-out shapes: MSE {err['mse']:.4f} per pixel, PSNR {err['psnr_db']:.1f} dB, "
      f"worst image MSE {err['worst_mse']:.4f}; target >= 30 dB: {'met' if err['psnr_db'] >= 30 else 'MISSED'}")
print("the shapes judge on the reconstructions: " + ", ".join(f"{k} {v:.1%}" for k, v in judge_recon.items()))

fig, axes = plt.subplots(2, 1, figsize=(10, 3.4))
show_images(held_out.images[:12], nrow=12, ax=axes[0], title="held-out shapes")
show_images(recon[:12], nrow=12, ax=axes[1], title=f"decoded from 8x8x4 latents (PSNR {err['psnr_db']:.1f} dB)")
fig.tight_layout()
plt.show()
assert judge_recon["shape"] > 0.9 and judge_recon["color"] > 0.9, "the VAE loses what the image shows"

# %% [markdown]
# Edges come back slightly soft (the decoder has to invent 12 numbers for each one it is given),
# but shape, colour and background survive: that is all the diffusion model needs to get right.
#
# ## 5. The scale factor
#
# The noise schedule assumes data of about unit variance: at the last step $x_T$ should look like
# $\mathcal N(0, I)$. The VAE's latents have whatever spread training gave them, so latent
# diffusion multiplies them by a **scale factor** before diffusing and divides it out before
# decoding. Stable Diffusion's is 0.18215.
#
# ### Exercise 1: compute the scale factor
#
# Write `scaling_factor(latents)`: the number that gives `latents * factor` a standard deviation of
# 1, over every element of every latent.

# %%
def scaling_factor(latents: torch.Tensor) -> float:
    # BEGIN SOLUTION
    return 1.0 / latents.std()
    # END SOLUTION


nb06.check_scaling_factor(scaling_factor)

# %%
raw = encode(vae, x, scaled=False)  # (N, 4, 8, 8), posterior means
print(f"latent std before scaling: {raw.std():.3f}; the shipped factor: {vae.config.scaling_factor:.4f}; "
      f"after scaling: {(raw * vae.config.scaling_factor).std():.3f}")
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.hist(raw.flatten().numpy(), bins=80, density=True, alpha=0.6, label="latents as encoded")
ax.hist((raw * vae.config.scaling_factor).flatten().numpy(), bins=80, density=True, alpha=0.6, label="scaled")
grid = torch.linspace(-4, 4, 200)
ax.plot(grid, torch.exp(-grid**2 / 2) / (2 * torch.pi) ** 0.5, "k--", lw=1, label="N(0, 1)")
ax.set(xlabel="latent value", ylabel="density", title="Latent values before and after the scale factor")
ax.legend()
plt.show()

# %% [markdown]
# ## 6. What is inside a latent? (the course text's Exercise 4)
#
# Encode a few shapes, print the latent's shape, and look at each of its four channels as an 8×8
# map. Step through the images and channels below and, for each channel, write down what it
# seems to carry: the shape's outline? its colour? the background's colour? brightness? The line
# above the maps measures how each channel correlates with the image's brightness, its red, green
# and blue channels and its edges, each averaged down to the 8×8 grid.

# %%
explore = make_shapes(12, seed=5).images
print(f"images {tuple(explore.shape)} -> latents {tuple(encode(vae, explore).shape)}")
explorer = LatentExplorer(vae, explore)
explorer

# %% [markdown]
# The same correlations over many images at once, as a table:

# %%
corr = latent_channel_correlations(encode(vae, held_out.images), held_out.images)
features = list(corr)
table = torch.stack([corr[f] for f in features], dim=1)  # (4 channels, 5 features)
fig, ax = plt.subplots(figsize=(6.5, 3.2))
im = ax.imshow(table.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
ax.set(xticks=range(len(features)), xticklabels=features, yticks=range(table.shape[0]),
       yticklabels=[f"channel {c}" for c in range(table.shape[0])],
       title=f"Correlation of each latent channel with image features ({len(held_out.images)} shapes)")
for (i, j), v in zip(torch.cartesian_prod(torch.arange(table.shape[0]), torch.arange(len(features))).tolist(),
                     table.flatten().tolist()):
    ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=8)
fig.colorbar(im, ax=ax, label="Pearson correlation")
plt.show()

# %%
nb06.channel_question(corr)

# %% [markdown]
# Write your description of each channel here (double-click to edit):
#
# - channel 0: ...
# - channel 1: ...
# - channel 2: ...
# - channel 3: ...
#
# The course text describes Stable Diffusion's VAE as putting broad brightness in one channel,
# edges in another and colour in the rest. Nothing in the loss asks for such a split; a VAE
# finds its own, and the table above is how you find out which one yours found. Spatially, every
# channel is still a small picture: the latent keeps the image's layout, which is why a U-Net (or
# the transformer of notebook 07) can denoise it like an image.
#
# ## 7. Diffusion in latent space
#
# Nothing in the diffusion machinery changes. `shapes-latent` is the text-conditioned U-Net of
# notebook 05, trained with the same recipe, on the scaled latents of the same 20,000 shapes
# instead of their pixels; its input is 8×8×4. Sampling starts from latent noise, runs DDIM with
# guidance, and only the final latent goes through the decoder. Below, one sample's latent at a
# few points of the trajectory, each decoded to show what it would become.

# %%
latent_model = pretrained.load("shapes-latent", device=DEVICE)
pixel_model = pretrained.load("shapes-text", device=DEVICE)
W = latent_model.info["default_guidance_scale"]
print(latent_model)
print(pixel_model)

prompt = "a yellow triangle on a blue background"
traj_steps = config.by_mode(fast=10, cpu=25, full=50)
final = latent_model.sample(1, steps=traj_steps, prompts=prompt, generator=torch.Generator().manual_seed(3),
                           output="latents")
print(f"prompt {prompt!r}: latent {tuple(final.shape)} -> image {tuple(decode(vae, final).shape)}")

# %% [markdown]
# `sample` hides the loop. Here it is written out with the package's DDIM sampler, keeping every
# intermediate latent: the same loop as notebook 04, on 8×8×4 instead of 16×16×1.

# %%
sampler = DDIMSampler(latent_model.schedule, clip_sample=False)
sampler.set_timesteps(traj_steps)
states, masks = latent_model.text_encoder.token_states([prompt])  # (1, L, 64), (1, L)
null_states, null_masks = latent_model.text_encoder.token_states([""])
guided = ClassifierFreeGuidance(latent_model.denoiser, W, null_context=null_states.to(DEVICE),
                                null_mask=null_masks.to(DEVICE))
zt = torch.randn((1, *vae.latent_shape), generator=torch.Generator().manual_seed(3)).to(DEVICE)
path = []
with torch.no_grad():
    for t in sampler.timesteps:
        eps = guided(zt, t.to(DEVICE), encoder_hidden_states=states.to(DEVICE), encoder_attention_mask=masks.to(DEVICE))
        step = sampler.step(eps, int(t), zt)
        path.append((int(t), step.pred_original_sample.cpu()))
        zt = step.prev_sample
print(f"the loop's final latent equals sample()'s: max difference {(zt.cpu() - final).abs().max():.1e}")

checkpoints = sorted({0, traj_steps // 4, traj_steps // 2, 3 * traj_steps // 4, traj_steps - 1})
show = [path[i] for i in checkpoints]
fig, axes = plt.subplots(2, len(show), figsize=(2.1 * len(show), 4.4))
for col, (t, x0_hat) in zip(axes.T, show):
    col[0].imshow(x0_hat[0, :3].permute(1, 2, 0).clamp(-2, 2).numpy() / 4 + 0.5)
    col[0].set_title(f"t = {t}: latent\n(channels 0-2 as RGB)", fontsize=8)
    col[1].imshow(((decode(vae, x0_hat)[0].permute(1, 2, 0) + 1) / 2).numpy())
    col[1].set_title("its prediction, decoded", fontsize=8)
    for ax in col:
        ax.axis("off")
fig.suptitle(f"{prompt!r}: the predicted clean latent along DDIM-{traj_steps}, and what it decodes to", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Is it as good as the pixel model?
#
# Same captions, same seed, same sampler and guidance scale, for both models; the shapes judge
# reads every sample.

# %%
captions = all_captions()
prompts = config.by_mode(fast=captions[::5], cpu=captions, full=captions * 4)
n_steps = config.by_mode(fast=10, cpu=25, full=50)
results = {}
for name, model in (("pixels (shapes-text)", pixel_model), ("latents (shapes-latent)", latent_model)):
    samples = model.sample(len(prompts), steps=n_steps, prompts=prompts, guidance_scale=W,
                           generator=torch.Generator().manual_seed(0))
    results[name] = {"samples": samples, "adherence": metrics.prompt_adherence(samples, prompts)}
    print(f"{name:24s} " + ", ".join(f"{k} {v:.0%}" for k, v in results[name]["adherence"].items()))

fig, axes = plt.subplots(2, 1, figsize=(11, 3.6))
for ax, (name, r) in zip(axes, results.items()):
    show_images(r["samples"][:12], nrow=12, ax=ax, title=f"{name}: colour and shape right {r['adherence']['object']:.0%}")
fig.suptitle(f"The same {min(12, len(prompts))} prompts and seeds, w = {W:g}, DDIM-{n_steps}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 8. What it costs: pixel against latent
#
# The course text's argument is about cost: fewer numbers per step means cheaper steps. Here it
# is measured for the two models above, at their default guidance (two network passes per step)
# and 25 steps: the operations each step takes (counted exactly, the same on any machine), and
# the seconds it takes on this machine (medians of repeated calls). The latent model pays for
# one decode per image at the end.

# %%
nb06.time_question()

# %%
pair = {"pixels (shapes-text)": pixel_model, "latents (shapes-latent)": latent_model}
cost = {}
print(f"{'':24s} {'batch':>5} {'GFLOP/step':>11} {'ms/step':>8} {'decode ms':>9} {'GFLOP/image':>12} "
      f"{'ms/image':>9} {'decode %':>9}")
for batch in (1, config.by_mode(fast=16, cpu=64, full=256)):
    for name, model in pair.items():
        c = cost[name, batch] = sampling_cost(model, batch=batch, steps=25, repeats=config.by_mode(fast=3, cpu=5, full=10))
        print(f"{name:24s} {batch:>5} {c['step_flops'] / 1e9:>11.2f} {1e3 * c['step_s']:>8.1f} {1e3 * c['decode_s']:>9.1f} "
              f"{c['image_flops'] / 1e9:>12.2f} {1e3 * c['image_s']:>9.2f} {100 * c['decode_share']:>8.1f}%")
    px, lt = cost["pixels (shapes-text)", batch], cost["latents (shapes-latent)", batch]
    print(f"{'':24s} batch {batch}: latent needs {px['image_flops'] / lt['image_flops']:.1f}x fewer operations and "
          f"{px['image_s'] / lt['image_s']:.1f}x less time per image on {DEVICE.type}\n")

# %% [markdown]
# The two U-Nets have about the same number of parameters (1.2M and 1.3M), yet the latent one
# works on an 8×8 grid instead of 32×32: 16 times fewer positions for every convolution. The
# counted operations per image fall by nearly that much (the latent U-Net spends some of it back
# on attention at every level). Time follows operations only when the batch is large enough to
# keep the processor busy: for one image at a time, a CPU spends much of each call on fixed costs
# (dozens of small layers, each launched separately) that do not shrink with the image, so the
# gain in seconds is smaller. At Stable Diffusion's size (64 times fewer positions than pixels) the
# same arithmetic, together with fewer steps (notebook 09), gives the course text's estimate of a
# 100-200x faster sampler.
#
# ## 9. Decoding in half precision
#
# The course text's failure table lists "VAE grid artifacts" from decoding in fp16 and prescribes
# decoding in fp32. The reason is range: float16 cannot represent magnitudes above 65,504, and
# SDXL's VAE decoder has layers whose activations go past that, so fp16 decoding overflows to
# infinity there. Its diffusers config sets `force_upcast=True`, so the pipeline decodes in float32;
# SD 1.5's VAE stays within range and decodes in float16.
# Here we decode the same latents in fp32, bf16 and fp16 and record the largest activation inside
# the decoder.

# %%
n_half = config.by_mode(fast=16, cpu=64, full=64)  # fast mode: a CPU emulates both half types, slowly
latents = encode(vae, held_out.images[:n_half])
ref = decode(vae, latents)
for dtype in (torch.bfloat16, torch.float16):
    try:
        low = decode(vae, latents, dtype=dtype)
        print(f"{str(dtype):15s} largest pixel difference from fp32: {(low - ref).abs().max():.4f} "
              f"(mean {(low - ref).abs().mean():.5f}) on the [-1, 1] scale")
    except RuntimeError as exc:  # some CPU builds lack fp16 convolutions
        print(f"{dtype}: not supported on this device ({exc})")

peaks = {}
hooks = [m.register_forward_hook(lambda mod, i, out, n=n: peaks.__setitem__(n, float(out.abs().max())))
         for n, m in vae.decoder.named_children()]
with torch.no_grad():
    vae.decode(latents.to(DEVICE) / vae.config.scaling_factor)
for h in hooks:
    h.remove()
print(f"largest activation in any decoder layer: {max(peaks.values()):.1f} (float16's limit: "
      f"{torch.finfo(torch.float16).max:,.0f})")
print(f"a value past the limit in float16: {torch.tensor([70000.0]).half().item()}")

# %% [markdown]
# Our small decoder stays far inside the float16 range, so here half precision only adds rounding
# error (float16 stores 10 bits of mantissa, bfloat16 7: 11 and 8 with the implicit leading one).
# A large decoder whose activations cross 65,504 turns them into `inf`, then `nan` after the next
# normalisation, and the image shows
# black patches or tiling artifacts. The fix in the table, decoding in fp32, costs little: the
# decoder runs once per image, the denoiser once per step.
#
# ## 10. Stable Diffusion's VAE (online only)
#
# The same interface wraps diffusers' `AutoencoderKL`, so everything above runs on Stable
# Diffusion's VAE when you have internet access (Colab, say). It downloads about 330 MB:
#
# ```python
# from course_utils.models.vae import DiffusersVAE
# sd_vae = DiffusersVAE.from_pretrained("stabilityai/sd-vae-ft-mse", sample_size=512)
# sd_vae.latent_shape, sd_vae.config.scaling_factor   # (4, 64, 64), 0.18215
# # images: (B, 3, 512, 512) in [-1, 1], e.g. a photo of your own
# latents = encode(sd_vae, images)                   # (B, 4, 64, 64), scaled
# LatentExplorer(sd_vae, images)                     # the course text's Exercise 4, on SD's VAE
# ```
#
# ## Summary
#
# - Images are redundant: neighbouring pixels agree, and a small fraction of the 3,072 pixel
#   directions holds almost all the variation of our shapes. An autoencoder exploits that to store each image in 12 times
#   fewer numbers (Stable Diffusion: 48 times).
# - The VAE's encoder outputs a Gaussian; the reparameterisation trick makes sampling from it
#   differentiable, and a small KL term keeps latents from drifting far or growing without bound
#   (not to unit variance: that is the scale factor's job).
# - Latents are multiplied by a scale factor, 1 / their standard deviation, so the diffusion
#   model sees unit-variance data as its schedule assumes.
# - Each latent channel is a small spatial map; what each carries is for the VAE to decide and for
#   you to measure.
# - Diffusion runs unchanged on latents; one decode at the end turns the result into pixels. At
#   equal parameters the latent model needed far fewer operations per image, at similar quality.
# - Decode in fp32 when a decoder's activations approach float16's range.
#
# ## What comes next
#
# Notebook [07 · Diffusion transformers](07_dit.ipynb) replaces the U-Net with a transformer
# over patches, the architecture that Stable Diffusion 3 and FLUX run on latents like these.
