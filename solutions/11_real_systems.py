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
# # 11 · From our parts to Stable Diffusion
#
# Ten notebooks built every part of a text-to-image model at toy size: a forward process, a U-Net,
# samplers, guidance, a VAE, a transformer denoiser, flow matching, distillation. Stable Diffusion
# 1.5, SDXL, DiT and SD3 are the same parts, larger. This notebook makes that concrete:
#
# 1. **The real architectures, measured without their weights.** Their published configs ship with
#    the course; each model is built on PyTorch's *meta* device, which records shapes and nothing else,
#    so an 859-million-parameter U-Net costs no memory and no download. We count parameters per block,
#    trace the shapes of one generation, and count the FLOPs of every call.
# 2. **Our models on the same scale**, and the course text's production figures recomputed from the
#    counts: weight memory, the cost of 50 against 20 steps, why latents and not pixels.
# 3. **Our pieces inside diffusers.** The course's samplers become the `scheduler` of diffusers'
#    `StableDiffusionPipeline` and give the same images as diffusers' own; you write Stable
#    Diffusion's sampling loop yourself and it draws the pipeline's image.
# 4. **The course text's exercises on a real pipeline**: the guidance sweep scored with CLIP, the VAE's
#    latents channel by channel and its scale factor recomputed, sampling speed, img2img and inpainting.
#
# **Offline and online.** Parts 1-3 need nothing from the internet. Part 4 runs on a real Stable
# Diffusion 1.5 when you set `DOWNLOAD = True` below, with internet (Colab has it; about 2 GB of
# weights). Without it, the same cells run on a *tiny random* pipeline built from the same classes:
# the code path, shapes and timings are real, and the images are noise, because the weights are random.
#
# **How long it takes.** The work depends on `COURSE_MODE` (printed below):
#
# | mode | sampling on the pipeline | time |
# |---|---|---|
# | `fast` | 8 steps, small sweeps | about half a minute |
# | `cpu` | 25 steps, the full sweeps | under a minute on a laptop |
# | `full` | 25 steps; with `DOWNLOAD = True`, Stable Diffusion 1.5 and SD-Turbo | not yet measured on a GPU (plus a download of about 5 GB) |
#
# One build (Stable Diffusion's sampling loop), three coding exercises and one question, each with an
# automatic checker.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from course_utils import config, pretrained, profiling, real_models
from course_utils.course.exercises import nb11, use_build
from course_utils.data.shapes import make_shapes
from course_utils.models.clip import CLIPScorer
from course_utils.real_models import measure, online
from course_utils.real_models.pipelines import encode_prompt, img2img, inpaint, text_to_image
from course_utils.real_models.tiny import tiny_sd_pipeline
from course_utils.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, EulerSampler
from course_utils.viz import show_images

from transformers.utils import logging as transformers_logging  # noqa: E402

transformers_logging.set_verbosity_error()  # transformers' notices about optional packages this notebook does not use
MODE, DEVICE = config.get_mode(), config.get_device()
STEPS = config.by_mode(fast=8, cpu=25, full=25)
print(config.describe())

# %% [markdown]
# ## 1. The real architectures, without their weights
#
# `real_models.anatomy(name)` builds every component of a model from its published config on the
# meta device, runs one generation through them on meta tensors, and counts. FLOPs are what PyTorch's
# `FlopCounterMode` counts: two per multiply-add, in convolutions and matrix products, attention
# included (normalisation and activations are left out; they are a few percent). The denoiser is
# counted for one call at batch 1 at the model's native size, the VAE for one decode, a text encoder
# for one prompt.

# %%
t0 = time.perf_counter()
parts = {name: real_models.anatomy(name) for name in real_models.NAMES}
print(f"4 models built and counted on the meta device in {time.perf_counter() - t0:.1f} s")

rows = ["| model | component | class | parameters | weights in fp16 | GFLOPs per call |", "|---|---|---|---:|---:|---:|"]
for name, model in parts.items():
    for component, entry in model.items():
        rows.append(f"| {name} | {component} | {entry['class']} | {entry['params']:,} | "
                    f"{entry['memory']['fp16'] / 1e9:.2f} GB | {entry['flops'] / 1e9:,.1f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# SD 1.5's U-Net has 859,520,964 parameters, its VAE 83,653,863 and its text encoder 123,060,480:
# the totals on the model card, counted here from the classes themselves. SDXL's U-Net triples to
# 2.57 billion and adds a second, larger text encoder; SD3 swaps the U-Net for a transformer and adds
# T5, a 4.8-billion-parameter text encoder larger than everything else together. (DiT-XL/2 counts
# 750 million here, not the paper's 675 million: diffusers' implementation keeps a copy of the
# timestep and class embedders in each of its 28 blocks.)
#
# Where do the U-Net's parameters live? Per top-level block:

# %%
unet = parts["sd15"]["unet"]
names = list(unet["blocks"]) + [b for b in unet["flops_by_block"] if b not in unet["blocks"]]
path = ([b for b in names if b in ("conv_in", "time_embedding") or b.startswith("down")] + ["mid_block"]  # the data's
        + [b for b in names if b.startswith("up")] + [b for b in names if b in ("conv_norm_out", "conv_out")])  # path
fig, axes = plt.subplots(1, 2, figsize=(13, 3.4))
for ax, values, unit, title in ((axes[0], unet["blocks"], 1e6, "parameters (millions)"),
                                (axes[1], unet["flops_by_block"], 1e9, "GFLOPs of one call at 512x512")):
    ax.bar(range(len(path)), [values.get(b, 0) / unit for b in path], color="tab:blue")
    ax.set_xticks(range(len(path)), path, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel=title, title=f"SD 1.5's U-Net: {title.split(' (')[0].split(' of')[0]} per block")
    ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
plt.show()
top = ("down_blocks.0", "up_blocks.3")  # the 64x64 level, in and out
print(f"the 64x64 level ({' and '.join(top)}): {sum(unet['blocks'][b] for b in top) / unet['params']:.0%} of the "
      f"parameters, {sum(unet['flops_by_block'][b] for b in top) / unet['flops']:.0%} of the FLOPs")
print("one SD 1.5 generation at 512x512, with classifier-free guidance:")
for component, stage, shape in real_models.generation_shapes("sd15"):
    print(f"  {component:13s} {stage:40s} {shape}")

# %% [markdown]
# The parameters sit in the deep, wide blocks (1,280 channels at 16×16 and 8×8); the cost sits where
# the feature maps are large: the 64×64 level holds a few percent of the parameters and over a third
# of the FLOPs, since every weight there is applied at 4,096 positions (and its attention compares all
# 4,096 with each other). The shapes are notebook 06's latent diffusion at full size: a 512×512×3
# image is a 64×64×4 latent, the prompt is 77 token vectors of 768 numbers that every cross-attention
# layer reads, and guidance doubles the batch of every denoiser call (notebook 05).
#
# **Exercise 1.** A text encoder is notebook 05's transformer at scale. Write
# `my_clip_text_params(vocab_size, positions, hidden, layers, intermediate)`: the parameters of a CLIP
# text encoder. It has a token embedding (`vocab_size` × `hidden`) and a position embedding
# (`positions` × `hidden`); then `layers` identical layers, each with two LayerNorms (a weight and a bias
# of `hidden` each), self-attention (four `hidden` → `hidden` linear maps, query, key, value and
# output, each with a bias) and an MLP (`hidden` → `intermediate` → `hidden`, both with biases); and one
# final LayerNorm. It is checked against the class itself on three configs, SD 1.5's among them.

# %%
def my_clip_text_params(vocab_size, positions, hidden, layers, intermediate):
    # BEGIN SOLUTION
    attention = 4 * (hidden * hidden + hidden)
    mlp = hidden * intermediate + intermediate + intermediate * hidden + hidden
    norms = 2 * 2 * hidden
    return vocab_size * hidden + positions * hidden + layers * (attention + mlp + norms) + 2 * hidden
    # END SOLUTION


nb11.check_clip_params(my_clip_text_params)

# %% [markdown]
# **Exercise 2.** The VAE's encoder halves the image between its levels. Write
# `my_latent_shape(height, width, vae_config)` returning the latent's `(channels, height, width)` for one
# image, from the VAE's config (a dict with `block_out_channels`, one entry per level, and
# `latent_channels`). It is checked against the real encoders run on meta tensors, SDXL's at 1024×1024
# and SD3's among them.

# %%
print("SD3's VAE config:", {k: v for k, v in real_models.load_config("sd3-medium", "vae").items()
                            if k in ("block_out_channels", "latent_channels", "scaling_factor", "shift_factor")})


def my_latent_shape(height, width, vae_config):
    # BEGIN SOLUTION
    factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
    return (vae_config["latent_channels"], height // factor, width // factor)
    # END SOLUTION


nb11.check_latent_shape(my_latent_shape)

# %% [markdown]
# ## 2. Our models on the same scale
#
# The course's own models, counted the same way (`real_models.flops_of` on one denoiser call):

# %%
ours = {"digits-ddpm (04)": "digits-ddpm", "shapes-text (05)": "shapes-text", "shapes-latent (06)": "shapes-latent",
        "dit-digits-b (07)": "dit-digits-b"}
scale = []
for label, name in ours.items():
    model = pretrained.load(name, device="cpu")
    cfg = model.denoiser.config
    scale.append((label, sum(p.numel() for p in model.denoiser.parameters()),
                  real_models.flops_of(profiling.network_call(model, 1)), cfg.in_channels * cfg.sample_size**2))
for name in real_models.NAMES:
    den = parts[name][real_models.denoiser(name)]
    latent = next(shape for stage, shape in den["shapes"] if "input" in stage)
    scale.append((name, den["params"], den["flops"], int(np.prod(latent[1:]))))

fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
labels = [s[0] for s in scale]
colors = ["tab:green"] * len(ours) + ["tab:purple"] * len(real_models.NAMES)
for ax, k, title, unit in zip(axes, (1, 2, 3), ("Denoiser size", "Cost of one denoiser call (batch 1)",
                                                 "What the denoiser sees"),
                              ("parameters", "FLOPs", "numbers per image")):
    ax.bar(range(len(scale)), [s[k] for s in scale], color=colors)
    ax.set_yscale("log")
    ax.set_xticks(range(len(scale)), labels, rotation=45, ha="right", fontsize=8)
    ax.set(title=title, ylabel=unit + " (log scale)")
    ax.grid(axis="y", alpha=0.3)
axes[0].legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:green"), plt.Rectangle((0, 0), 1, 1, color="tab:purple")],
               labels=["this course", "real systems"], loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()
for label, p, f, n in scale:
    print(f"{label:20s} {p:>14,} parameters {f / 1e9:>10,.2f} GFLOPs per call {n:>8,} numbers in")

# %% [markdown]
# Our denoisers have about a million parameters; SD 1.5's has 770 times as many and SDXL's 2,300
# times. In compute per call the gap is wider still (SD 1.5's U-Net is about 6,500 times digits-ddpm's),
# because the real models also see more numbers: 16,384 latent numbers for SD 1.5, against our 256
# digit pixels. What stays the same is the design: the same blocks, the same cross-attention, the
# same sampling loop, as section 3 proves by running ours inside theirs.
#
# ### The production figures, recomputed
#
# The course text quotes about 12 GB for SD 1.5 in fp32 and about 6 GB in fp16 on an A10G. The weights
# alone:

# %%
sd15 = parts["sd15"]
weights = {p: sum(e["memory"][p] for e in sd15.values()) for p in ("fp32", "fp16")}
print(f"SD 1.5's weights (U-Net + VAE + text encoder, {sum(e['params'] for e in sd15.values()):,} parameters): "
      f"{weights['fp32'] / 2**30:.2f} GiB in fp32, {weights['fp16'] / 2**30:.2f} GiB in fp16")

# %% [markdown]
# The weights are about a third of the quoted figures, and halve with fp16 as the quotes do. The rest is
# the activations of the largest call (the VAE decoder at 512×512 holds 128-channel feature maps of
# 512×512 positions), the CUDA context and PyTorch's allocator cache, which is why memory-efficient
# attention and tiled VAE decoding are the first fixes for out-of-memory errors.
#
# **Exercise 3.** Write `my_generation_flops(parts, steps, guidance)`: the FLOPs of generating one image
# with a model whose `anatomy` is `parts`. Every text encoder (the components whose name starts with
# `"text_encoder"`) encodes the prompt, and with guidance also the negative prompt; the denoiser
# (`"unet"` or `"transformer"`) runs `steps` times, on a batch of 2 with guidance; the VAE (`"vae"`)
# decodes once. Each entry's `"flops"` is one call at batch 1.

# %%
def my_generation_flops(parts, steps, guidance):
    # BEGIN SOLUTION
    total = 0
    for component, entry in parts.items():
        if component.startswith("text_encoder"):
            total += entry["flops"] * (2 if guidance else 1)
        elif component in ("unet", "transformer"):
            total += entry["flops"] * steps * (2 if guidance else 1)
        elif component == "vae":
            total += entry["flops"]
    return total
    # END SOLUTION


flops_result = nb11.check_generation_flops(my_generation_flops, {n: parts[n] for n in ("sd15", "sdxl", "sd3-medium")})
flops_result

# %%
generation_flops = use_build(flops_result, my_generation_flops, nb11.generation_flops, "generation FLOPs")
for name in ("sd15", "sdxl"):
    f50, f20 = generation_flops(parts[name], 50, True), generation_flops(parts[name], 20, True)
    vae_share = parts[name]["vae"]["flops"] / f20
    text_share = sum(e["flops"] * 2 for c, e in parts[name].items() if c.startswith("text_encoder")) / f20
    print(f"{name}: {f50 / 1e12:,.1f} TFLOPs at 50 guided steps, {f20 / 1e12:,.1f} at 20: {f50 / f20:.2f}x; "
          f"at 20 steps the VAE decode is {vae_share:.1%} of the work and the text encoding {text_share:.2%}")

# %% [markdown]
# Steps dominate: 50 steps cost about 2.4 times 20, close to the ratio of the steps (2.5), because
# the U-Net is nearly all of the work. The course text's latency order (steps, then resolution,
# precision, VAE decode, text encode last) is visible in the counts: the VAE decode is under a tenth
# of the FLOPs at 20 steps (more of the *time*: its 512×512 convolutions move a lot of memory, which is
# why the text measures 10-20%), and the text encoders well under one percent.
#
# ### Why latents: the same U-Net on pixels
#
# Latent diffusion's argument (course text, question 4) is that a 512×512×3 image has 48 times the
# numbers of a 64×64×4 latent. Here is the U-Net's cost if it denoised 512×512 positions instead of
# 64×64 (its first and last convolutions would take 3 channels instead of 4; a rounding error):

# %%
unet_meta = real_models.build("sd15", "unet")
text = torch.empty(1, 77, 768, device="meta")
step = torch.tensor(500, device="meta")
latent_flops = real_models.flops_of(unet_meta, torch.empty(1, 4, 64, 64, device="meta"), step, encoder_hidden_states=text)
pixel_flops = real_models.flops_of(unet_meta, torch.empty(1, 4, 512, 512, device="meta"), step, encoder_hidden_states=text)
pixel_ratio = pixel_flops / latent_flops
print(f"one U-Net call: {latent_flops / 1e12:.2f} TFLOPs on 64x64 latents, {pixel_flops / 1e12:,.0f} TFLOPs on "
      f"512x512 pixels: {pixel_ratio:,.0f}x, for 64x the positions")

# %%
nb11.ask_pixel_ratio(pixel_ratio)

# %% [markdown]
# ## 3. Our pieces inside diffusers
#
# A diffusers pipeline calls its scheduler through a few names: `set_timesteps(n, device=...)`,
# `.timesteps`, `init_noise_sigma`, `scale_model_input`, `step(..., return_dict=False)`, `order`, and
# reads its settings from `.config`. The course's samplers have all of them, and read diffusers'
# configs with `from_config`, so swapping one in is one line, as with diffusers' own:
#
# ```python
# pipe.scheduler = DDIMSampler.from_config(pipe.scheduler.config)
# ```
#
# The pipeline below is a real `diffusers.StableDiffusionPipeline`. Unless you download the real one,
# it is a tiny random one: the same classes (U-Net, VAE, CLIP text encoder and tokenizer) at a few
# thousand times smaller, weights drawn at random, so its images are noise. Its scheduler's config is
# SD 1.5's. Set `DOWNLOAD = True` (with internet) for the real Stable Diffusion 1.5.

# %%
DOWNLOAD = False  # True: fetch Stable Diffusion 1.5 (about 2 GB) and SD-Turbo (about 2.6 GB) from the Hugging Face hub
real = DOWNLOAD
if real:
    dtype = torch.float16 if DEVICE.type == "cuda" else torch.float32
    pipe = online.load_sd_pipeline(download=True, dtype=dtype, device=DEVICE)
    few_step = online.load_few_step_pipeline(download=True, dtype=dtype, device=DEVICE)
else:
    print(online.describe_download(online.SD15_REPO, torch.float16))
    print("DOWNLOAD = False: using a tiny random pipeline of the same classes instead (its images are noise).")
    pipe, few_step = tiny_sd_pipeline(seed=0), None
sd = online.components_of(pipe)
PROMPTS = ["a red circle on a white background", "a blue square on a yellow background"]
cond = encode_prompt(sd["tokenizer"], sd["text_encoder"], PROMPTS)
uncond = encode_prompt(sd["tokenizer"], sd["text_encoder"], [""] * len(PROMPTS))
side = sd["unet"].config.sample_size
print(f"prompt embeddings {tuple(cond.shape)}; latents ({sd['unet'].config.in_channels}, {side}, {side}); "
      f"images ({3}, {side * pipe.vae_scale_factor}, {side * pipe.vae_scale_factor})")

# %%
pairs = {"DDIM": (DDIMSampler, "DDIMScheduler"), "DDPM": (DDPMSampler, "DDPMScheduler"),
         "DPM-Solver++": (DPMSolverSampler, "DPMSolverMultistepScheduler"), "Euler": (EulerSampler, "EulerDiscreteScheduler")}
original = pipe.scheduler
import diffusers  # noqa: E402  (only for diffusers' own schedulers, to compare against)

gaps, shown = {}, []
for label, (ours_cls, theirs_name) in pairs.items():
    images = {}
    for who, scheduler in (("ours", ours_cls.from_config(original.config)),
                           ("diffusers'", getattr(diffusers, theirs_name).from_config(original.config))):
        pipe.scheduler = scheduler
        images[who] = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS,
                           guidance_scale=7.5, generator=torch.Generator().manual_seed(0), output_type="pt").images
    gaps[label] = float((images["ours"] - images["diffusers'"]).abs().max())
    shown += [images["ours"][0], images["diffusers'"][0]]
pipe.scheduler = original
for label, gap in gaps.items():
    print(f"{label:13s} our sampler in StableDiffusionPipeline vs diffusers' scheduler: largest pixel difference {gap:.1e}")
show_images(torch.stack(shown).cpu() * 2 - 1, nrow=8,
            title="ours | diffusers', for DDIM, DDPM, DPM-Solver++, Euler" + ("" if real else " (random weights: noise)"))
plt.show()

# %% [markdown]
# Same seed, same image, to float32 rounding: the course's samplers are drop-in schedulers. (DDPM is
# stochastic; it matches because both draw their noise from the generator the pipeline is given, in
# the same order.)
#
# ### Build: Stable Diffusion's sampling loop
#
# Between encoding the prompt and decoding the latents, `StableDiffusionPipeline.__call__` runs one loop,
# the loop of notebooks 03 and 05 with a text condition. Write it:
# `my_sd_loop(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale)` gets latents
# already scaled by `sampler.init_noise_sigma` and a sampler whose `set_timesteps` has been called. For
# each `t` in `sampler.timesteps`:
#
# 1. put the latents in twice (`torch.cat([latents] * 2)`) and let the sampler scale them
#    (`sampler.scale_model_input(x, t)`: the identity for DDIM, not for Euler);
# 2. one U-Net call on that batch of 2B, with the negative prompt's embeddings for the first half and the
#    prompt's for the second: `unet(x, t, encoder_hidden_states=embeds).sample`;
# 3. split the prediction (`.chunk(2)`) and guide: $\hat\epsilon = \epsilon_{uncond} + w(\epsilon_{text} - \epsilon_{uncond})$;
# 4. `latents = sampler.step(eps, t, latents).prev_sample`.
#
# Return the final latents. The notebook then uses your loop for everything that follows.

# %%
nb11.SD_LOOP_BUILD

# %%
def my_sd_loop(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale):
    # BEGIN SOLUTION
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
    for t in sampler.timesteps:
        x = sampler.scale_model_input(torch.cat([latents] * 2), t)
        eps_uncond, eps_text = unet(x, t, encoder_hidden_states=embeds).sample.chunk(2)
        eps = eps_uncond + guidance_scale * (eps_text - eps_uncond)
        latents = sampler.step(eps, t, latents).prev_sample
    return latents
    # END SOLUTION


loop_result = nb11.check_sd_loop(my_sd_loop)
loop_result

# %%
sd_loop = use_build(loop_result, my_sd_loop, nb11.sd_loop, "Stable Diffusion loop")

# %% [markdown]
# ## 4. The course text's exercises on a real pipeline
#
# ### The guidance sweep (text, exercise 3)
#
# The same prompt and seed at $w \in \{1, 3, 7, 12, 20\}$, scored with CLIP (notebook 01's score: the
# cosine between the image's and the prompt's CLIP embeddings, times 100). Online, the scorer is a real
# CLIP (`openai/clip-vit-base-patch32`, about 600 MB); offline it is the course's tiny CLIP from notebook
# 01, trained on shapes, which makes no sense of noise: the numbers then only show the code path.

# %%
SCALES = config.by_mode(fast=(1.0, 7.0, 20.0), cpu=(1.0, 3.0, 7.0, 12.0, 20.0), full=(1.0, 3.0, 7.0, 12.0, 20.0))
scorer = CLIPScorer.from_pretrained() if real else CLIPScorer(pretrained.load("tiny-clip", device="cpu"))
sweep, scores = {}, {}
for w in SCALES:
    sampler = DPMSolverSampler.from_config(original.config)
    sweep[w] = nb11.generate(sd_loop, sd, cond[:1], uncond[:1], sampler, STEPS, w, seed=0)
    scores[w] = float(measure.clip_scores(scorer, sweep[w].cpu(), PROMPTS[0]))
fig, axes = plt.subplots(1, len(SCALES), figsize=(2.6 * len(SCALES), 2.9))
for ax, w in zip(axes, SCALES):
    ax.imshow(sweep[w][0].permute(1, 2, 0).float().cpu().numpy())
    ax.set(title=f"w = {w:g}\nCLIP score {scores[w]:.1f}", xticks=[], yticks=[])
loop_name = "the package's loop" if sd_loop is nb11.sd_loop else "your loop"
fig.suptitle(f"'{PROMPTS[0]}', DPM-Solver++ {STEPS} steps, {loop_name}" + ("" if real else " (random weights)"))
fig.tight_layout(rect=(0, 0, 1, 0.92))
plt.show()

# %% [markdown]
# With the real model, $w = 1$ gives a loosely related picture, $w$ around 7 the prompt, and $w = 20$
# over-saturated colours and hard edges: notebook 05's sweep on a large model. The CLIP score usually
# rises to around $w = 7$ and then flattens; the course text's caution applies (CLIP rewards what CLIP
# likes, so a high score is not a good image).
#
# ### The VAE's latents (text, exercise 4)
#
# Encode images, look at the four latent channels, and recompute the VAE's scale factor: Stable
# Diffusion multiplies latents by 0.18215 so that they have unit variance, the value Rombach et al.
# measured as 1 / std of the encoder's latents on their first training batch
# (`measure.vae_scaling_factor`; their code takes a *draw* of the encoder's posterior, notebook 06 took its
# *mean*). Online this runs on SD 1.5's VAE and the images the pipeline just drew. Offline, a random
# VAE's latents mean nothing, so it runs on notebook 06's own VAE (`shapes-vae`) and real shapes images.

# %%
if real:
    vae, vae_name = sd["vae"], "SD 1.5's VAE"
    images = torch.cat([v for v in sweep.values()]).to(DEVICE, vae.dtype) * 2 - 1  # [-1, 1]
else:
    vae, vae_name = pretrained.load("shapes-vae", device="cpu"), "the course's shapes-vae (notebook 06)"
    images = make_shapes(64, seed=0).images
drawn = measure.vae_scaling_factor(vae, images, generator=torch.Generator().manual_seed(0))
means = measure.vae_scaling_factor(vae, images, sample=False)
print(f"{vae_name}, {len(images)} images: 1 / std of posterior draws {drawn:.4f}, of posterior means {means:.4f} "
      f"(its config: {vae.config.scaling_factor:.5f})")
with torch.no_grad():
    out = vae.encode(images[:1])
    latent = (out.latent_dist if hasattr(out, "latent_dist") else out).mode()[0].float().cpu()  # (C, h, w)
fig, axes = plt.subplots(1, latent.shape[0] + 1, figsize=(2.6 * (latent.shape[0] + 1), 2.8))
axes[0].imshow((images[0].float().cpu().permute(1, 2, 0).numpy() + 1) / 2)
axes[0].set(title="image", xticks=[], yticks=[])
for c, ax in enumerate(axes[1:]):
    im = ax.imshow(latent[c].numpy(), cmap="RdBu_r")
    ax.set(title=f"latent channel {c}\n{tuple(latent.shape[1:])}", xticks=[], yticks=[])
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# For SD 1.5's VAE both readings land near 0.18 (not exactly: it depends on the images, and 0.18215 came
# from one batch of LAION): its posterior is so narrow that a draw and the mean hardly differ.
# `shapes-vae`'s posterior is wider (a smaller KL weight), so the draws' spread lowers the factor; its
# config holds the means' reading, which notebook 06 used. Its channels read, roughly, as a brightness map and colour
# opponents (one channel lights up for warm colours, another for cool), each an 8×-downsampled sketch
# of the image: the latent is still an image, which is why latent interpolation and inpainting in latent
# space work (course text, gap 3).
#
# ### Speed (text, exercise 5)
#
# The same generation timed with DDIM at 4, 20 and 50 steps, DPM-Solver++ at 20, and, online, SD-Turbo
# at 1 and 4 steps (a distilled model, notebook 09's student at scale; it samples without guidance).
# Offline the tiny pipeline's times are fractions of a second and say nothing about a real model; the
# ratios between step counts still hold, since the U-Net dominates.

# %%
settings = {"DDIM 4": (DDIMSampler, 4), "DDIM 20": (DDIMSampler, 20), "DDIM 50": (DDIMSampler, 50),
            "DPM-Solver++ 20": (DPMSolverSampler, 20)}
if MODE == "fast":
    settings = {k: v for k, v in settings.items() if k != "DDIM 50"}
timings, speed_images = {}, {}
for label, (cls, steps) in settings.items():
    sampler = cls.from_config(original.config)
    run = lambda: text_to_image(sd["unet"], sd["vae"], cond[:1], uncond[:1], sampler, steps, 7.5,  # noqa: E731
                                generator=torch.Generator().manual_seed(0))
    timings[label] = profiling.time_call(run, repeats=1 if real else 3, device=DEVICE)
    speed_images[label] = run()
if few_step is not None:
    turbo = online.components_of(few_step)
    t_cond = encode_prompt(turbo["tokenizer"], turbo["text_encoder"], PROMPTS[:1])
    for steps in (1, 4):
        sampler = EulerSampler.from_config(turbo["scheduler"].config)
        run = lambda: text_to_image(turbo["unet"], turbo["vae"], t_cond, None, sampler, steps, 1.0)  # noqa: E731
        timings[f"SD-Turbo {steps}"] = profiling.time_call(run, repeats=1, device=DEVICE)
        speed_images[f"SD-Turbo {steps}"] = run()
fig, axes = plt.subplots(1, len(timings) + 1, figsize=(2.6 * (len(timings) + 1), 2.9),
                         gridspec_kw={"width_ratios": [2.5] + [1] * len(timings)})
axes[0].barh(list(timings), [1000 * s for s in timings.values()], color="tab:blue")
axes[0].set(xlabel="milliseconds per image", title="Latency" + ("" if real else " (tiny random pipeline)"))
axes[0].invert_yaxis()
for ax, (label, image) in zip(axes[1:], speed_images.items()):
    ax.imshow(image[0].permute(1, 2, 0).float().cpu().numpy())
    ax.set(title=label, xticks=[], yticks=[])
fig.tight_layout()
plt.show()
for label, s in timings.items():
    print(f"{label:16s} {1000 * s:9.1f} ms")

# %% [markdown]
# On a real model the latency grows with the steps almost one for one (the U-Net is the cost, as
# section 2 counted), and quality holds from 50 down to about 20 DDIM steps (DPM-Solver++ holds at 20
# where DDIM starts to blur) before it falls apart at 4; SD-Turbo makes a usable image in one step.
# That is the course text's production table, measured on whatever machine runs this cell.
#
# ### img2img and inpainting
#
# **img2img** is "start the reverse process from a partly noised image": encode the image, noise its
# latents to the timestep where the last `strength` of the steps begin (`sampler.add_noise`, the
# forward process of notebook 02), and run the same loop from there. **Inpainting** with an ordinary
# U-Net (RePaint's idea) runs the loop from noise but, after every step, puts back the known part of
# the image, noised to the current level; only the masked region is generated. Both below run the
# package's `img2img` and `inpaint`, which give the images diffusers' `StableDiffusionImg2ImgPipeline`
# and `StableDiffusionInpaintPipeline` give (the tests check it).

# %%
start = speed_images["DDIM 20"]  # (1, 3, H, W) in [0, 1]: an image this pipeline drew above
side = start.shape[-1]
mask = torch.zeros(1, 1, side, side)
mask[..., side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 1.0  # repaint the centre
edits = {"the start": start}
for strength in (0.3, 0.7):
    edits[f"img2img, strength {strength}"] = img2img(
        sd["unet"], sd["vae"], start, cond[1:2], uncond[1:2], DDIMSampler.from_config(original.config), strength,
        STEPS, 7.5, generator=torch.Generator().manual_seed(1))
edits["inpaint the centre"] = inpaint(sd["unet"], sd["vae"], start, mask, cond[1:2], uncond[1:2],
                                      DDIMSampler.from_config(original.config), STEPS, 7.5,
                                      generator=torch.Generator().manual_seed(1))
fig, axes = plt.subplots(1, len(edits), figsize=(3 * len(edits), 3.2))
for ax, (label, image) in zip(axes, edits.items()):
    ax.imshow(image[0].permute(1, 2, 0).float().cpu().numpy())
    ax.set(title=label, xticks=[], yticks=[])
fig.suptitle(f"edits towards '{PROMPTS[1]}'" + ("" if real else " (random weights)"))
fig.tight_layout(rect=(0, 0, 1, 0.92))
plt.show()
outside = (edits["inpaint the centre"] - start).abs()[..., :side // 8, :].max()
print(f"inpainting: largest change in the top rows, outside the mask: {float(outside):.3f} "
      f"(the VAE's round trip; the mask's inside is new)")

# %% [markdown]
# A low strength keeps the composition and changes details; a high one keeps little more than the
# colours; at strength 1, img2img is text-to-image. Inpainting keeps the outside (up to the VAE's own
# round trip, which is not exact) and generates the inside to fit it.
#
# ## 5. The bridge: each toy part and where it lives in the real systems
#
# | this course | Stable Diffusion 1.5 | SDXL | DiT-XL/2 | SD3 |
# |---|---|---|---|---|
# | forward process, schedules (02) | scaled-linear betas, 1,000 steps, epsilon | the same | linear betas | rectified flow (08), logit-normal times |
# | reverse step, samplers (03, 09) | PNDM / DDIM / DPM-Solver++ | Euler, DPM-Solver++ | DDPM 250 steps | flow Euler, shift 3 |
# | U-Net with cross-attention (04, 05) | 860M-parameter U-Net | 2.6B U-Net, attention only at low resolution | (none) | (none) |
# | transformer denoiser, adaLN (07) | (none) | (none) | 28 DiT blocks, adaLN-Zero | MM-DiT, joint text-image attention |
# | text conditioning, CFG (05) | CLIP ViT-L/14, w = 7.5 | CLIP-L + OpenCLIP bigG | class labels | CLIP-L, CLIP-G, T5-XXL |
# | latent space, VAE (06) | 4 channels, factor 8, scale 0.18215 | the same, scale 0.13025 | SD's VAE | 16 channels, scale 1.5305 |
# | distillation (09) | LCM, LCM-LoRA | SDXL-Turbo, Lightning | (none) | SD3-Turbo, Flash |
# | evaluation (10) | FID, CLIP score | the same, human preference | FID-50K | human preference |
#
# The foundation-gap audit at the end of the course text asks whether you can say how diffusion makes
# an image, what the latent space is, how text steers it and what speed costs. Each row above is one
# notebook you have run, and this notebook ran our parts inside the real pipeline.
