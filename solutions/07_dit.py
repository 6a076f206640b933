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
# # 07 · Diffusion transformers (DiT)
#
# Every denoiser so far has been a U-Net: convolutions that shrink the image, then grow it back.
# Until 2022 that was the only architecture anyone used for diffusion. Then Peebles and Xie (2023)
# replaced it with a plain transformer, the **Diffusion Transformer (DiT)**: cut the image (or the
# latent, as in [notebook 06](06_latent_diffusion.ipynb)) into patches, treat each patch as a token, and run a stack of
# transformer blocks over the sequence. Their argument was scaling: transformers get better in a
# predictable way as they grow, and a larger DiT gave a better FID at every step of their size
# ladder (DiT-S, -B, -L, -XL). Stable Diffusion 3 and FLUX are built on descendants of it.
#
# What you will do:
#
# 1. Cut a digit into patch tokens, and see how the patch size sets the length of the sequence
#    and the cost of attention.
# 2. Learn **adaLN-Zero**, the way the timestep and the label steer every block, then **build a
#    DiT of your own**: unpatchify, the adaLN-Zero block and the final layer. The checker trains it
#    and puts its loss next to the package's; then check live that a fresh block is exactly the
#    identity.
# 3. Train two DiT sizes with the course's training loop and plot loss and quality against the
#    number of parameters: the scaling claim in miniature.
# 4. Put the larger DiT next to the U-Net of notebook 05, which has about as many parameters:
#    time per step, loss, adherence and FID on the same seeds.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | training | samples per model | time |
# |---|---|---|---|
# | `fast` | the build's check: a small DiT trained 200 steps, twice (your pieces, the package's); 3 steps of each recipe, then the shipped checkpoints and their recorded loss curves | 50 (5 per digit), DDIM-10 | under a minute |
# | `cpu` | the small DiT's whole recipe (section 3); the base DiT loaded, made by the same recipe | 898 (the digits-FID count), DPM-Solver++-10 | about 10 minutes on a laptop, most of it training the small DiT |
# | `full` | both DiT recipes | 898, DDIM-50 | not yet measured on a GPU |
#
# Three coding exercises and two questions, each with an automatic checker. The third exercise is a
# **build**: you write the pieces of a DiT, and its checker grades them one by one and then by how
# well a DiT made of them learns.

# %%
import statistics
import time
from dataclasses import replace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import config, metrics, pretrained
from course_utils.data import load_digits
from course_utils.course.exercises import nb07, use_build
from course_utils.models import DIT_PRESETS, DiT, UNet
from course_utils.models.dit import Attention, DiTBlock, FinalLayer, modulate, patchify, sequence_length, unpatchify
from course_utils.pipeline import DiffusionModel
from course_utils.recipes import get_recipe
from course_utils.schedules import get_schedule
from course_utils.training import simple_loss, train
from course_utils.viz import show_images
from course_utils.course.widgets import PatchExplorer

MODE, DEVICE = config.get_mode(), config.get_device()
print(config.describe())

# %% [markdown]
# ## 1. From an image to a sequence of tokens
#
# A transformer reads a sequence of vectors. DiT makes one from an image in three moves:
#
# 1. **Patchify**: cut the $H \times W$ image into $p \times p$ squares and flatten each into a
#    vector of $p \cdot p \cdot C$ numbers, one **token** per patch. There are
#    $N = (H/p)(W/p)$ of them, read row by row like a page.
# 2. **Embed**: one linear map sends every token to the model width $D$.
# 3. **Position**: add a fixed sine-cosine code of the patch's row and column, since attention
#    by itself does not know where a token came from.
#
# In Stable Diffusion 3 the DiT reads a VAE latent, as in
# [06 · Latent diffusion](06_latent_diffusion.ipynb), and the patches are $2 \times 2$ squares of it.
# Our digits are $16 \times 16$, already as small as a latent, so our DiTs patchify the pixels
# directly, also with $p = 2$: 64 tokens of 4 numbers.

# %%
images, labels = load_digits()
digit = images[labels == 4][:1]  # (1, 1, 16, 16)
for p in (2, 4):
    tokens = patchify(digit, p)  # (1, N, p*p*C)
    print(f"p = {p}: tokens {tuple(tokens.shape)} = (batch, N = (16/{p})^2 = {sequence_length(16, p)}, "
          f"p*p*C = {p * p})")
assert torch.equal(unpatchify(patchify(digit, 2), 2, channels=1, side=16), digit)  # nothing lost

p = 4
patches = patchify(digit, p)[0].reshape(-1, 1, p, p)  # (16, 1, 4, 4): token i as a little image
fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.4))
show_images(digit, ax=left, title="a digit, 16x16 pixels")
show_images(patches, nrow=16 // p, ax=right, title=f"its {len(patches)} tokens of {p}x{p} pixels,\nrow by row")
plt.show()

# %% [markdown]
# ### Exercise 1: patchify
#
# Write `my_patchify(x, p)`: `x` is a `(B, C, H, W)` batch with $H$ and $W$ divisible by $p$; return
# `(B, N, p*p*C)` tokens with $N = (H/p)(W/p)$. Two orders matter, because the final layer of the DiT
# undoes them when it turns tokens back into an image:
#
# - the **patches** go row by row: token $i \cdot W/p + j$ is the patch in row $i$, column $j$;
# - **inside** a patch the numbers go row, then column, then channel (channel last).
#
# Hint: `reshape` to `(B, C, H/p, p, W/p, p)`, then `permute` the axes into the order the tokens need,
# then `reshape` again.

# %%
def my_patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    # BEGIN SOLUTION
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, H/p, p, W/p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, H/p, W/p, p, p, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)  # (B, N, p*p*C)
    # END SOLUTION


nb07.check_patchify(my_patchify)

# %% [markdown]
# The embedding of step 2 is a linear map applied to every token. The package writes it as a
# convolution with kernel size and stride both $p$, which computes the same numbers without
# building the token tensor first. A check, on the small DiT:

# %%
dit = DiT("dit-digits-s")
conv = dit.x_embedder  # Conv2d(1, 64, kernel_size=2, stride=2)
weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # (D, p*p*C), in patchify's order
as_linear = F.linear(patchify(digit, 2), weight, conv.bias)  # (1, 64, D)
as_conv = conv(digit).flatten(2).transpose(1, 2)  # (1, 64, D)
print(f"{conv}: |conv - linear on patchify| <= {(as_conv - as_linear).abs().max():.1e}")
print(f"position embedding: {tuple(dit.pos_embed.shape)}, one fixed D-vector per token")

# %% [markdown]
# ### The patch size sets the price
#
# Self-attention compares every token with every other token: $N^2$ pairs in every head of every
# block. The patch size therefore decides the cost. Smaller patches mean a longer sequence and a
# finer view of the image; the DiT paper found that shrinking the patch, at almost the same number
# of parameters, improved FID, and paid for it in compute. Move the slider: the patch grid on the
# digit, the sequence the transformer would read, and the count. (The widget needs a live kernel;
# on a static page you see its first state, $p = 2$.)

# %%
PatchExplorer(digit[0], patch_size=2)

# %%
nb07.patch_question()

# %% [markdown]
# ## 2. adaLN-Zero: how the timestep and the label steer every block
#
# The network must know the noise level $t$ and, for a class-conditional model, the label $y$. As
# in the U-Net of notebook 05, both become one vector $c$ of width $D$: a timestep embedding plus a
# learned label embedding (with an extra row for the null label that guidance needs).
#
# The U-Net adds $c$ to its feature maps. DiT uses it to set the **normalisation** of every block:
# **adaptive layer norm (adaLN)**. Each block's LayerNorm has no learned scale and shift of its
# own; instead a small linear layer regresses them from $c$, per example. For the two sub-layers of
# a block (attention, then an MLP) it regresses six vectors of width $D$:
#
# $$(\beta_1, \gamma_1, \alpha_1, \beta_2, \gamma_2, \alpha_2) = W\,\mathrm{SiLU}(c) + b,$$
#
# a **shift** $\beta$, a **scale** $\gamma$ and a **gate** $\alpha$ for each, and the block computes
#
# $$x \leftarrow x + \alpha_1 \odot \mathrm{Attn}\big(\mathrm{LN}(x)\,(1 + \gamma_1) + \beta_1\big), \qquad
#   x \leftarrow x + \alpha_2 \odot \mathrm{MLP}\big(\mathrm{LN}(x)\,(1 + \gamma_2) + \beta_2\big).$$
#
# The scale enters as $1 + \gamma$ so that $\gamma = 0$ means "leave it as it is". The **Zero**:
# $W$ and $b$ start at zero, so at initialisation every shift, scale and gate is 0. With
# $\alpha = 0$ each sub-layer's output is multiplied by zero and the block returns its input
# exactly. (The final layer, which maps tokens back to patches, is zero-initialised too, so a fresh
# DiT predicts $\hat\epsilon = 0$, like the U-Net.) Of the variants Peebles and Xie tried
# (in-context tokens, cross-attention, adaLN with and without the zero), adaLN-Zero gave the best
# FID, at the lowest compute of the four (a tie with plain adaLN).
#
# ### Exercise 2: modulate
#
# Write `my_modulate(x, shift, scale)`: `x` holds tokens `(B, N, D)`, `shift` and `scale` one vector
# per example `(B, D)`; every token of an example gets its example's shift and scale.

# %%
def my_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    return x * (1 + scale[:, None]) + shift[:, None]  # (B, N, D); [:, None] adds the token axis
    # END SOLUTION


nb07.check_modulate(my_modulate)

# %% [markdown]
# ### Exercise 3 (build): a DiT of your own
#
# You now have every idea a DiT needs. Build the three pieces that Exercises 1 and 2 leave out, and
# the checker will put them together with your `my_patchify` (so do Exercise 1 first) into a DiT and
# train it.
#
# **1. `my_unpatchify(tokens, p, channels, side)`**: `(B, N, p*p*C)` tokens -> `(B, C, side, side)`
# images, the exact inverse of `my_patchify`, in the same two orders: token $i \cdot (W/p) + j$ is
# the patch in row $i$, column $j$ (the order the position code assumes), and inside a token the
# numbers go (row, column, channel). Hint: `reshape` to `(B, H/p, W/p, p, p, C)`, `permute` to
# `(B, C, H/p, p, W/p, p)`, `reshape` to `(B, C, H, W)`.
#
# **2. `MyDiTBlock(hidden_size, num_heads, mlp_ratio)`**, an `nn.Module` whose `forward(x, c)` maps
# tokens `x (B, N, D)` and the conditioning `c (B, D)` to `(B, N, D)` by the two updates of the
# adaLN-Zero equations above. The attention and the MLP are given. Add:
#
# - `self.norm1`, `self.norm2`: LayerNorms **without** a learned scale and shift of their own
#   (`nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)`): $\gamma$ and $\beta$ take their place;
# - `self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))`, the $W\,\mathrm{SiLU}(c) + b$
#   that gives $(\beta_1, \gamma_1, \alpha_1, \beta_2, \gamma_2, \alpha_2)$, in that order
#   (`.chunk(6, dim=1)`), with its Linear's weight and bias set to zero (`nn.init.zeros_`).
#
# In `forward`, use `modulate` (the package's, which Exercise 2 checked yours against).
#
# **3. `MyFinalLayer(hidden_size, patch_size, out_channels)`**, the head: `forward(x, c)` maps tokens
# `(B, N, D)` to one patch per token, `(B, N, p*p*C_out)`, by a last adaLN with a shift and a scale
# but no gate:
#
# $$(\beta, \gamma) = W\,\mathrm{SiLU}(c) + b, \qquad \mathrm{patch} = W_o\big(\mathrm{LN}(x)\,(1 + \gamma) + \beta\big) + b_o,$$
#
# with `self.norm_final` (no affine, `eps=1e-6`), `self.adaLN_modulation = nn.Sequential(nn.SiLU(),
# nn.Linear(D, 2 * D))` and `self.linear = nn.Linear(D, p * p * C_out)`, both Linears zero-initialised
# so that a fresh DiT predicts $\hat\epsilon = 0$.
#
# Keep these names: the checker loads the package's weights into your modules to compare them with
# the package's `DiTBlock` and `FinalLayer`. Then it builds a small DiT: the package's patch
# embedding (a Linear on your tokens), position code and timestep embedding, your blocks, your head
# and your `my_unpatchify`, and trains it with `training.train`, the loop of every notebook. Here is
# what it grades:

# %%
nb07.build_dit()


# %%
def my_unpatchify(tokens: torch.Tensor, p: int, channels: int, side: int) -> torch.Tensor:
    """``(B, N, p*p*C)`` tokens -> ``(B, C, side, side)`` images: the inverse of ``my_patchify``."""
    # BEGIN SOLUTION
    b, g = tokens.shape[0], side // p
    x = tokens.reshape(b, g, g, p, p, channels)  # (B, H/p, W/p, p, p, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, H/p, p, W/p, p)
    return x.reshape(b, channels, side, side)  # (B, C, H, W)
    # END SOLUTION


# %%
class MyDiTBlock(nn.Module):
    """adaLN-Zero block: tokens ``x (B, N, D)`` and conditioning ``c (B, D)`` -> ``(B, N, D)``."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = Attention(hidden_size, num_heads)  # multi-head self-attention, (B, N, D) -> (B, N, D)
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_hidden, hidden_size))  # (B, N, D) -> (B, N, D)
        # BEGIN SOLUTION
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        nn.init.zeros_(self.adaLN_modulation[-1].weight)  # adaLN-Zero: every shift, scale and gate starts at 0
        nn.init.zeros_(self.adaLN_modulation[-1].bias)
        # END SOLUTION

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (B, D)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))  # (B, N, D)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)
        # END SOLUTION


# %%
class MyFinalLayer(nn.Module):
    """The head: tokens ``x (B, N, D)`` and ``c (B, D)`` -> one patch per token, ``(B, N, p*p*C_out)``."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        # BEGIN SOLUTION
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        for layer in (self.linear, self.adaLN_modulation[-1]):  # a fresh DiT predicts 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # END SOLUTION

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 x (B, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, p*p*C_out)
        # END SOLUTION


# %%
build_result = nb07.check_dit_build(my_patchify, my_unpatchify, MyDiTBlock, MyFinalLayer)
build_result

# %% [markdown]
# The two DiTs of the outcome line, yours and the one built from the package's pieces, start from
# the same seed and see the same batches, so when your pieces compute what the package's do, their
# losses come out the same. From here on this section builds its DiT from your pieces once they
# pass, and from the package's until then:

# %%
pieces = use_build(build_result, (my_patchify, my_unpatchify, MyDiTBlock, MyFinalLayer),
                   (patchify, unpatchify, DiTBlock, FinalLayer), "patchify, unpatchify, DiT block and final layer")

# %% [markdown]
# ### The identity at initialisation, tested
#
# A fresh small DiT (`dit-digits-s`, assembled from the pieces chosen above, as the checker did):
# feed its first block random tokens and a random conditioning vector. Then train the whole model for three steps on real digits and watch where the gradient arrives. At
# step 1 only the final layer's linear map can learn: everything before it is multiplied by its zero
# weights. At step 2 the gates can, since the output now depends on them, and so can the patch
# embedding, whose tokens reach the output through the identity blocks. From step 3 on, every layer
# does.

# %%
torch.manual_seed(0)
dit = nb07.AssembledDiT("dit-digits-s", *pieces)  # the package's embeddings around the chosen pieces
block = dit.blocks[0]
x, c = torch.randn(8, 64, 64), torch.randn(8, 64) * 5  # tokens (B, N, D), conditioning (B, D)
with torch.no_grad():
    fresh_is_identity = torch.equal(block(x, c), x)
print(f"fresh block returns its input exactly: {fresh_is_identity}")

D = dit.config.hidden_size
parts = {  # name -> the gradients that belong to it
    "final linear": lambda m: [m.final_layer.linear.weight.grad],
    "gates": lambda m: [b.adaLN_modulation[-1].weight.grad.view(6, D, D)[[2, 5]] for b in m.blocks],
    "shifts and scales": lambda m: [b.adaLN_modulation[-1].weight.grad.view(6, D, D)[[0, 1, 3, 4]] for b in m.blocks],
    "attention and MLP": lambda m: [q.grad for b in m.blocks for q in (*b.attn.parameters(), *b.mlp.parameters())],
    "patch embedding": lambda m: [m.x_embedder.weight.grad],
}
schedule = get_schedule("cosine")
alphas_cumprod = schedule.alphas_cumprod.float()
opt = torch.optim.AdamW(dit.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
print(f"{'step':>4}  " + "  ".join(f"{name:>17}" for name in parts))
for step in range(1, 4):
    idx = torch.randint(0, len(images), (16,), generator=g)  # a batch of 16 digits
    t = torch.randint(0, schedule.num_timesteps, (16,), generator=g)
    noise = torch.randn(16, 1, 16, 16, generator=g)
    opt.zero_grad()
    simple_loss(dit, images[idx], t, noise, alphas_cumprod, class_labels=labels[idx]).backward()
    norms = {name: sum(float(gr.norm()) for gr in get(dit)) for name, get in parts.items()}
    print(f"{step:>4}  " + "  ".join(f"{v:>17.2e}" for v in norms.values()) + "   (gradient norm)")
    opt.step()
with torch.no_grad():
    moved = (block(x, c) - x).abs().max()
print(f"after 3 steps the block changes its input by up to {moved:.2e}")
assert fresh_is_identity and moved > 0, "adaLN-Zero: a fresh block must be the identity, and training must move it"

# %% [markdown]
# Zero gates do not freeze the network: a gate's gradient is the output of its sub-layer, which is
# not zero, so the gates open after one step and the rest of the block follows. What the zeros buy
# is a calm start: the untrained stack passes its input through undistorted, and each block's
# contribution grows from nothing as it learns.

# %%
nb07.zero_init_question()

# %% [markdown]
# ## 3. Two sizes, one training loop
#
# The package has two class-conditional DiTs for the digits. Both use $2 \times 2$ patches (64
# tokens) and differ in width and depth:

# %%
SIZES = ("dit-digits-s", "dit-digits-b")
print(f"{'preset':14s} {'width D':>8} {'blocks':>7} {'heads':>6} {'tokens':>7} {'parameters':>11}")
for name in SIZES:
    cfg = DIT_PRESETS[name]
    print(f"{name:14s} {cfg.hidden_size:>8} {cfg.depth:>7} {cfg.num_heads:>6} {cfg.num_patches:>7} "
          f"{DiT(name).num_parameters():>11,}")

# %% [markdown]
# Both are trained by the same recipe with the training loop every notebook uses, `training.train`:
# the same data, the cosine schedule, 10% label dropout for guidance. In `fast` mode we run 3
# steps of each to prove the loop works on these DiTs, then load the shipped checkpoints, which were
# made by exactly these recipes, and read the loss curves they recorded. In `full` mode you run both
# recipes here. In `cpu` mode you run the small one's (about 8 minutes on a laptop) and load the base
# one, whose 4,000 steps take about 15 minutes more: add it to `TRAINED` to train it too. (Shortening
# the recipe is no way out here: with a cosine decay, which serves notebook 04's U-Net well, 1,300 steps
# left the base DiT drawing the digit asked for in a third of its samples at $w = 3$, and 3,000 steps
# the small one in two thirds, where 4,000 steps at a constant rate reach 99%. A DiT learns to use its
# label later than a U-Net does.)

# %%
TRAINED = config.by_mode(fast=SIZES, cpu=("dit-digits-s",), full=SIZES)  # the recipes run in this notebook
SHIPPED = config.by_mode(fast=SIZES, cpu=("dit-digits-b",), full=())  # the checkpoints loaded instead
runs, recipes = {}, {name: get_recipe(name) for name in SIZES}
for name in TRAINED:
    recipe = recipes[name]
    tc = recipe.train
    print(f"{name}: {tc.steps} steps of batch {tc.batch_size}, lr {tc.lr:g}, EMA decay {tc.ema_decay}, "
          f"label dropout {tc.label_dropout:.0%}")
    run_config = config.by_mode(fast=replace(tc, steps=3, batch_size=16, warmup_steps=1, log_every=1),
                                cpu=tc, full=tc)
    run_config = replace(run_config, cuda_graph=DEVICE.type == "cuda")  # on a GPU: each step one CUDA graph
    runs[name] = train(DiT(recipe.arch), images, get_schedule(recipe.schedule), run_config, labels=labels,
                       device=DEVICE, checkpoint_path=None if MODE == "fast" else f"runs/07_{name}.safetensors")
    r = runs[name]
    print(f"  {r.step} steps, loss {r.losses[0][1]:.4f} -> {r.losses[-1][1]:.4f}, {r.images_per_s:.0f} images/s, "
          f"{r.wall_time_s:.1f} s")

# %%
models, curves = {}, {}
for name in SIZES:
    if name in SHIPPED:
        models[name] = pretrained.load(name, device=DEVICE)
        curves[name] = pretrained.load_tensors(name)[1]["losses"]
        card = pretrained.info(name)["card"]
        print(f"loaded {models[name]}: {card['steps']} steps in {card['wall_time_s'] / 60:.1f} min on {card['device']}")
    else:
        models[name] = DiffusionModel(runs[name].ema_model, get_schedule(recipes[name].schedule),
                                      info={"name": f"my {name}", "conditioning": "class",
                                            "default_guidance_scale": recipes[name].default_guidance_scale})
        curves[name] = runs[name].losses
        print(f"using the {name} trained above")

# %% [markdown]
# ### Measuring quality
#
# Two numbers from notebook 05's toolkit, on samples drawn at the default guidance scale $w = 3$
# with the same seed, so every model starts from the same noise:
#
# - **adherence**: the fraction of samples the course's digit classifier reads as the digit asked
#   for;
# - **digits-FID** and **KID**: how far the classifier's features of the samples lie from those of
#   real digits (lower is better). FID grows as the sample count shrinks, so FIDs are comparable
#   only at equal counts: within the table below, yes; with the 898-sample FIDs on the model cards,
#   only in `cpu` and `full` mode. **KID** (kernel inception distance) compares the same two feature
#   sets through a polynomial kernel instead of two fitted Gaussians; its estimate is unbiased, so
#   real digits score about 0 at any count and it is the safer number at small counts (notebook 10
#   measures both against the sample count).
#
# The U-Net of notebook 05, `digits-class`, is measured the same way; section 4 needs it. In `cpu`
# mode the samples come from DPM-Solver++ at 10 steps (notebook 09), which takes about 40% of DDIM-25's
# time; its FIDs read somewhat higher than DDIM's would, for every model alike.

# %%
N_SAMPLES = config.by_mode(fast=50, cpu=metrics.NUM_SAMPLES, full=metrics.NUM_SAMPLES)
SAMPLER, SAMPLE_STEPS = config.by_mode(fast=("ddim", 10), cpu=("dpmsolver++", 10), full=("ddim", 50))
SAMPLER_NAME = {"ddim": "DDIM", "dpmsolver++": "DPM-Solver++"}[SAMPLER] + f"-{SAMPLE_STEPS}"  # for the printouts
W = 3.0
wanted = torch.arange(N_SAMPLES) % 10  # (N,): 0, 1, ..., 9, 0, 1, ...
models["digits-class"] = pretrained.load("digits-class", device=DEVICE)
curves["digits-class"] = pretrained.load_tensors("digits-class")[1]["losses"]


def measure(model: DiffusionModel) -> dict:
    """Samples at guidance scale W from seed 0's noise, and their adherence, FID and KID."""
    start = time.perf_counter()
    x = model.sample(N_SAMPLES, steps=SAMPLE_STEPS, sampler=SAMPLER, labels=wanted, guidance_scale=W,
                     generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    return {"samples": x, "seconds": seconds, "adherence": metrics.class_adherence(x, wanted),
            "kid": metrics.digits_kid(x)[0], "fid": metrics.digits_fid(x, require_n=N_SAMPLES == metrics.NUM_SAMPLES)}


quality = {name: measure(model) for name, model in models.items()}
params = {name: model.denoiser.num_parameters() for name, model in models.items()}
final_loss = {name: sum(v for _, v in curve[-5:]) / len(curve[-5:]) for name, curve in curves.items()}
print(f"{N_SAMPLES} samples per model (digit i % 10 for sample i), w = {W:g}, {SAMPLER_NAME}, seed 0")
print(f"{'model':14s} {'parameters':>11} {'final loss':>11} {'adherence':>10} {'KID':>8} {'FID':>7} {'sampling':>9}")
for name, q in quality.items():
    print(f"{name:14s} {params[name]:>11,} {final_loss[name]:>11.4f} {q['adherence']:>10.1%} {q['kid']:>8.4f} "
          f"{q['fid']:>7.2f} {q['seconds']:>8.1f}s")
print(f"{'real digits':14s} {'':>11} {'':>11} {'':>10} {metrics.floor()['kid']:>8.4f} {metrics.floor()['fid']:>7.2f}"
      "   (half B vs half A at 898: the floor)")
print("final loss: the mean of the last five logged values of the training curve (the last 250 steps)")
assert all(q["adherence"] > 0.5 for q in quality.values()), "a model draws the digit asked for only by chance"

# %% [markdown]
# The shipped checkpoints' model cards hold a larger measurement, made when they were trained:
# FID and KID of 898 samples drawn **without** a label (the count the FID floor uses), and
# adherence on 300.

# %%
for name in models:
    card = pretrained.info(name)["card"]
    spread = card["metric"]["class_distribution"]  # (10,) the fraction of each digit among the unguided samples
    top = max(range(10), key=spread.__getitem__)
    print(f"{name:14s} FID {card['metric']['digits_fid']:.2f}, KID {card['metric']['digits_kid']:.4f} "
          f"({card['metric']['n']} unguided, {card['metric']['sampler']}); adherence at w = 3 "
          f"{card['adherence']['accuracy']['w=3']:.1%} ({card['adherence']['n']}); most frequent unguided digit: "
          f"{top}, {spread[top]:.0%} of samples (even: 10%)")

# %% [markdown]
# ### Loss and quality against size
#
# The DiT paper's central figure plots FID against model size and compute for DiT-S to DiT-XL. Here
# is our two-point version: the training curves, and the final loss and the quality of each size
# against its parameter count (log scale, as in the paper).

# %%
card_fid = {name: pretrained.info(name)["card"]["metric"]["digits_fid"] for name in SIZES}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name in SIZES:
    steps_, losses_ = zip(*curves[name])
    axes[0].plot(steps_, losses_, label=f"{name} ({params[name] / 1e6:.2f}M){', shipped run' * (name in SHIPPED)}")
axes[0].set(xlabel="training step", ylabel="loss (mean over 50 steps)", yscale="log", title="training loss")
axes[0].legend()
xs = [params[n] for n in SIZES]
axes[1].plot(xs, [final_loss[n] for n in SIZES], "o-")
axes[1].set(xlabel="parameters", ylabel="final training loss", title="final loss against size")
axes[2].plot(xs, [quality[n]["fid"] for n in SIZES], "o-", label=f"measured here, N = {N_SAMPLES}, w = {W:g}")
axes[2].plot(xs, [card_fid[n] for n in SIZES], "s--", label="shipped models' cards, N = 898, unguided")
axes[2].axhline(metrics.floor()["fid"], color="0.4", ls=":", label="real digits (floor, N = 898)")
axes[2].set(xlabel="parameters", ylabel="digits-FID (lower is better)", title="sample quality against size")
axes[2].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
for ax in axes[1:]:
    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.set_xticks(xs, [f"{n.removeprefix('dit-digits-').upper()}\n{x / 1e6:.2f}M" for n, x in zip(SIZES, xs)])
    ax.minorticks_off()
fig.suptitle("Two DiT sizes, one recipe, one seed")
fig.tight_layout()
plt.show()

# %%
trends = {
    f"the larger DiT ends at a lower training loss: {final_loss['dit-digits-s']:.4f} -> "
    f"{final_loss['dit-digits-b']:.4f}": final_loss["dit-digits-b"] < final_loss["dit-digits-s"],
    f"and at a lower digits-FID (N = {N_SAMPLES}): {quality['dit-digits-s']['fid']:.2f} -> "
    f"{quality['dit-digits-b']['fid']:.2f}": quality["dit-digits-b"]["fid"] < quality["dit-digits-s"]["fid"],
    f"and at a lower KID: {quality['dit-digits-s']['kid']:.4f} -> {quality['dit-digits-b']['kid']:.4f}":
        quality["dit-digits-b"]["kid"] < quality["dit-digits-s"]["kid"],
}
for claim, holds in trends.items():
    print(("✅ " if holds else "❌ ") + claim)
assert sum(trends.values()) >= 2, "the larger DiT should beat the smaller one on most measures; see the lines above"

# %% [markdown]
# With the shipped checkpoints all three lines hold: the larger DiT's loss curve runs below the
# small one's from the first few hundred steps to the end, and its samples score better on both
# distances. The model cards, with 898 unguided samples each, agree, and show something the guided
# samples hide: without a label, the DiTs draw some digits far more often than others, which costs
# them FID. The small DiT also follows its label a little less reliably (the adherence column).
#
# **How much this shows.** Two tiny models, 1,797 training images, one seed, one recipe, and in
# `fast` mode fifty samples per model. A line through two points always looks like a law. The
# paper's claim rests on four sizes times three patch sizes on ImageNet, hundreds of thousands of
# steps each; ours can agree with it or not, but it cannot confirm it. Read the plot as a trend on
# this data, not as a scaling law. To test it properly you would add sizes, repeat every run with
# several seeds and show the spread, and train long enough that the small model has stopped
# improving.
#
# ## 4. DiT against U-Net at the same size
#
# `dit-digits-b` was sized to match the U-Net `digits-class` of notebook 05: about a million
# parameters each, the same data, schedule, label dropout and guidance. How do they compare in
# speed? Below, the seconds per training step (batch 64: forward, backward and AdamW update) and
# per forward pass (batch 64, no gradient), measured on this machine as the median of a few
# repeats. These are timings of fresh networks of the same shapes; the numbers vary from run to run
# on a shared machine, so read the ratios more than the digits.

# %%
def median_seconds(fn, repeats: int) -> float:
    """The median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_timers(net: torch.nn.Module, batch: int = 64):
    """Two closures: one training step, and one forward pass without gradient, on a fixed batch."""
    net = net.to(DEVICE)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x0, y = images[:batch].to(DEVICE), labels[:batch].to(DEVICE)
    t = torch.randint(0, schedule.num_timesteps, (batch,), generator=g).to(DEVICE)
    noise = torch.randn(x0.shape, generator=g).to(DEVICE)
    a_bar = alphas_cumprod.to(DEVICE)

    def train_step():
        opt.zero_grad()
        simple_loss(net, x0, t, noise, a_bar, class_labels=y).backward()
        opt.step()

    def forward():
        with torch.no_grad():
            net(x0, t, class_labels=y)

    return train_step, forward


REPEATS = config.by_mode(fast=2, cpu=10, full=20)
NETS = {"dit-digits-s": lambda: DiT("dit-digits-s"), "dit-digits-b": lambda: DiT("dit-digits-b"),
        "digits-class": lambda: UNet("digits-class")}
timing = {}
for name, make in NETS.items():
    train_step, forward = step_timers(make())
    timing[name] = {"train": median_seconds(train_step, REPEATS), "forward": median_seconds(forward, REPEATS)}
print(f"on {DEVICE} ({torch.get_num_threads()} threads), median of {REPEATS}, batch 64:")
print(f"{'model':14s} {'parameters':>11} {'train step':>11} {'forward':>9}")
for name, tm in timing.items():
    print(f"{name:14s} {params[name]:>11,} {tm['train'] * 1e3:>9.0f}ms {tm['forward'] * 1e3:>7.0f}ms")
ratio = timing["dit-digits-b"]["train"] / timing["digits-class"]["train"]
print(f"dit-digits-b takes {ratio:.2f}x the U-Net's time per training step here")

# %% [markdown]
# Now the whole comparison: size, how each was trained, and what it draws, with the quality numbers
# of section 3 (the same seeds for all three). The recipes differ (printed first), so compare the
# number of steps and the training time too; the last column divides one by the other.

# %%
for name in models:
    tc = get_recipe(name).train
    print(f"recipe {name}: {tc.steps} steps of batch {tc.batch_size}, lr {tc.lr:g}, EMA decay {tc.ema_decay}")
print(f"{'model':14s} {'parameters':>11} {'final loss':>11} {'adherence':>10} {'KID':>8} {'FID':>7} {'steps':>6} "
      f"{'train time':>11} {'per step':>9}")
for name in models:
    if name not in runs or MODE == "fast":  # loaded: the recorded run from its card
        card = pretrained.info(name)["card"]
        steps_done, wall = card["steps"], card["wall_time_s"]
    else:
        steps_done, wall = runs[name].step, runs[name].wall_time_s
    q = quality[name]
    print(f"{name:14s} {params[name]:>11,} {final_loss[name]:>11.4f} {q['adherence']:>10.1%} {q['kid']:>8.4f} "
          f"{q['fid']:>7.2f} {steps_done:>6} {wall / 60:>8.1f}min {wall / steps_done * 1e3:>7.0f}ms")
print(f"adherence, KID and FID: {N_SAMPLES} samples at w = {W:g}, {SAMPLER_NAME}, seed 0; "
      "train time: the whole recorded training run (the shipped one for " + ", ".join((*SHIPPED, "digits-class")) + ")")

# %%
cols = 6
fig, axes = plt.subplots(1, len(quality), figsize=(3.6 * len(quality), 6.4), layout="constrained")
for ax, (name, q) in zip(axes, quality.items()):
    order = torch.argsort(wanted[:10 * cols], stable=True)  # the first six of each digit, one row per digit
    show_images(q["samples"][order], nrow=cols, ax=ax,
                title=f"{name} ({params[name] / 1e6:.2f}M)\nadherence {q['adherence']:.0%}, FID {q['fid']:.2f}")
axes[0].set_yticks([8 + 17 * i for i in range(10)], [str(i) for i in range(10)])
axes[0].set_ylabel("digit asked for")
fig.suptitle(f"The same starting noise in every panel (w = {W:g}, {SAMPLER_NAME})")
plt.show()

# %% [markdown]
# **What the numbers say.** At about the same number of parameters, the DiT does not beat the U-Net
# on these digits: the U-Net reaches a lower loss and lower FID and KID, with fewer training steps,
# and its unguided samples are better balanced (the cards). The time per step is of the same order
# for both (the timing table; on a shared machine it moves from run to run).
#
# This does not contradict the DiT paper, whose claim is about how quality grows with size and
# compute, at a scale far beyond ours. A U-Net's convolutions build in two facts about images:
# nearby pixels belong together, and a pattern means the same wherever it appears. With 1,797 images
# of $16 \times 16$ pixels, that prior is worth a great deal. A transformer has to learn it from the
# data, and in exchange it has a uniform structure that keeps improving as it grows, which is what
# the size ladder of the paper showed and what Stable Diffusion 3 and FLUX rely on. Our experiment
# tests neither regime well: it is one small data set, two sizes, one seed.
#
# ## Summary
#
# - A DiT turns an image into a sequence: $p \times p$ patches, each flattened (row, column, channel)
#   and mapped linearly to a token, plus a fixed 2D sine-cosine position code. There are
#   $N = (H/p)^2$ tokens, and attention costs grow as $N^2$: halving the patch gives 4x the tokens
#   and 16x the attention work.
# - The timestep and label embedding $c$ steers each block through adaLN: a linear layer regresses a
#   shift, a scale and a gate per sub-layer, $x + \alpha \odot f(\mathrm{LN}(x)(1 + \gamma) + \beta)$.
# - adaLN-Zero initialises that layer at zero, so every block starts as the identity; we checked it
#   bit for bit, and saw the gradient open the gates within two steps.
# - You built a DiT's own pieces (unpatchify, the adaLN-Zero block, the final layer) and trained a
#   small DiT of them with the course's loop, next to the same DiT made of the package's pieces.
# - The same training loop trains a DiT and a U-Net: only the network changes.
# - On our digits the larger DiT and the U-Net of the same size are compared above, with the caveat
#   that two small models on 1,797 images and one seed show a trend, not a scaling law.
#
# ## What comes next
#
# The DiT changed the network; the next notebook changes the training objective. Notebook
# [08 · Flow matching](08_flow_matching.ipynb) replaces the noise schedule with a
# straight line between noise and data and teaches the network a velocity, the recipe that
# Stable Diffusion 3 and FLUX pair with their DiTs.
