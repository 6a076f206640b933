"""Checkers for notebook 11, from the course's parts to Stable Diffusion.

The build, ``SD_LOOP_BUILD``: Stable Diffusion's sampling loop with classifier-free guidance, graded by
``check_sd_loop`` against the package's ``real_models.pipelines.denoise`` on small random components of
the real classes (DDIM, Euler, whose ``scale_model_input`` is not the identity, and DPM-Solver++, which
must see its steps in order), then on the outcome: the image diffusers' ``StableDiffusionPipeline`` draws.

Exercises: the parameter count of a CLIP text encoder from its config (against the class built on the
meta device), the latent shape a VAE config gives an image (against the real VAE's encoder run on meta
tensors), and the FLOPs of one whole generation from ``real_models.anatomy``; plus a question on why
denoising pixels costs more than 64 times denoising latents.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...real_models import build, load_config
from ...real_models.checks import output_shape
from ...real_models.pipelines import denoise
from ...real_models.tiny import SD15_SCHEDULER_CONFIG, tiny_sd_components, tiny_sd_pipeline
from ...samplers import DDIMSampler, DPMSolverSampler, EulerSampler
from .core import BuildExercise, CheckResult, Miss, ask_choice, call_learner, check_cases, expect_close, grade_build

# --- Build: Stable Diffusion's sampling loop -------------------------------------------------------

SD_LOOP_BUILD = BuildExercise(
    "Build (Stable Diffusion's sampling loop)",
    "write my_sd_loop(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale): for each of "
    "the sampler's timesteps, one U-Net call on the latents twice (negative prompt, then prompt), "
    "classifier-free guidance, one sampler step; return the final latents.",
    ("against the package's loop on small random components of the real classes, 4 steps at w = 7.5: with DDIM, "
     "with Euler (whose scale_model_input divides by sqrt(sigma^2 + 1)) and with DPM-Solver++ (which keeps state, "
     "so every step must be taken once, in order)",
     "the outcome: your latents, decoded, are the image diffusers' StableDiffusionPipeline draws with the same "
     "sampler and seed (within 1e-4)"),
)

LOOP_HINT = ("Per timestep t: x = torch.cat([latents] * 2); x = sampler.scale_model_input(x, t); "
             "eps = unet(x, t, encoder_hidden_states=torch.cat([negative_prompt_embeds, prompt_embeds])).sample; "
             "eps_uncond, eps_text = eps.chunk(2); eps = eps_uncond + w * (eps_text - eps_uncond); "
             "latents = sampler.step(eps, t, latents).prev_sample.")


def _tiny():
    parts = tiny_sd_components(seed=0)
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 77, 32, generator=g)
    negative = torch.randn(2, 77, 32, generator=g) * 0.1
    return parts, embeds, negative


def _loop_stage(fn: Callable, name: str, sampler_fn: Callable, hint: str):
    def stage():
        parts, embeds, negative = _tiny()
        runs = []
        for _ in range(2):  # the learner's loop and the package's, each on a fresh sampler
            sampler = sampler_fn()
            sampler.set_timesteps(4)
            latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * sampler.init_noise_sigma
            runs.append((sampler, latents))
        with torch.no_grad():
            got = call_learner(fn, parts["unet"], runs[0][1].clone(), runs[0][0], embeds, negative, 7.5)
            expected = denoise(parts["unet"], runs[1][1], runs[1][0].timesteps, runs[1][0], embeds, negative, 7.5)
        expect_close(got, expected, f"Your final latents with {name}", hint, atol=1e-4, rtol=1e-4)
        return None
    return stage


def _outcome_stage(fn: Callable):
    def stage():
        sampler = DDIMSampler.from_config(SD15_SCHEDULER_CONFIG)
        pipe = tiny_sd_pipeline(seed=0, scheduler=sampler)
        parts, embeds, negative = _tiny()
        theirs = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=6,
                      guidance_scale=7.5, generator=torch.Generator().manual_seed(3), output_type="pt").images
        sampler.set_timesteps(6)
        latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3)) * sampler.init_noise_sigma
        with torch.no_grad():
            got = call_learner(fn, parts["unet"], latents, sampler, embeds, negative, 7.5)
            if not isinstance(got, torch.Tensor):
                raise Miss(f"Return the final latents as a tensor, got {type(got).__name__}.")
            image = (parts["vae"].decode(got / parts["vae"].config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        expect_close(image, theirs, "The image your loop decodes to", LOOP_HINT, atol=1e-4, rtol=1e-4)
        return (f"your loop's image is diffusers' StableDiffusionPipeline's to within {float((image - theirs).abs().max()):.1e} "
                "(the largest pixel difference)")
    return stage


def check_sd_loop(fn: Callable) -> CheckResult:
    """Grade ``fn(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale) -> latents``."""
    euler_hint = ("DDIM passed but Euler did not: Euler's network input is x / sqrt(sigma^2 + 1), which "
                  "sampler.scale_model_input(x, t) applies; call it on the doubled latents before the U-Net.")
    dpm_hint = ("DDIM and Euler passed but DPM-Solver++ did not: it remembers the previous step's x0, so call "
                "sampler.step exactly once per timestep, in the order of sampler.timesteps.")
    return grade_build(
        SD_LOOP_BUILD,
        _loop_stage(fn, "DDIM", lambda: DDIMSampler.from_config(SD15_SCHEDULER_CONFIG), LOOP_HINT),
        _loop_stage(fn, "Euler", lambda: EulerSampler.from_config(SD15_SCHEDULER_CONFIG), euler_hint),
        _loop_stage(fn, "DPM-Solver++", lambda: DPMSolverSampler.from_config(SD15_SCHEDULER_CONFIG), dpm_hint),
        _outcome_stage(fn),
    )


def sd_loop(unet, latents, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale):
    """The package's version of the build (what the notebook uses until the learner's passes)."""
    return denoise(unet, latents, sampler.timesteps, sampler, prompt_embeds, negative_prompt_embeds, guidance_scale)


def generate(loop: Callable, parts: dict, prompt_embeds, negative_prompt_embeds, sampler, steps: int,
             guidance_scale: float, seed: int = 0):
    """Images ``(B, 3, H, W)`` in [0, 1] from ``loop`` (the build, or ``sd_loop``): the starting noise drawn
    from ``seed`` on the CPU as the pipeline draws it, the loop, the VAE decode (``text_to_image``'s steps)."""
    unet, vae = parts["unet"], parts["vae"]
    sampler.set_timesteps(steps)
    shape = output_shape(unet, vae, len(prompt_embeds), None, None)  # (B, 4, h, w)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(prompt_embeds)
    with torch.no_grad():
        out = loop(unet, noise * sampler.init_noise_sigma, sampler, prompt_embeds, negative_prompt_embeds,
                   guidance_scale)
        return (vae.decode(out / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)


# --- Exercise 1: a text encoder's parameters from its config ----------------------------------------

CLIP_CONFIGS = {  # (vocab_size, positions, hidden, layers, intermediate)
    "a tiny one": (1000, 77, 32, 2, 64),
    "SD 1.5's (CLIP ViT-L/14)": (49408, 77, 768, 12, 3072),
    "SDXL's second (OpenCLIP bigG)": (49408, 77, 1280, 32, 5120),
}


def clip_text_params(vocab_size, positions, hidden, layers, intermediate, biases=True, position=True,
                     layer_norms=True, final_norm=True) -> int:
    """A ``CLIPTextModel``'s parameters (the flags drop one kind: the slips the checker recognises)."""
    b = 1 if biases else 0
    attention = 4 * (hidden * hidden + b * hidden)  # q, k, v and out projections
    mlp = hidden * intermediate + b * intermediate + intermediate * hidden + b * hidden
    norms = 2 * 2 * hidden if layer_norms else 0  # two LayerNorms (weight and bias) per layer
    embeddings = vocab_size * hidden + (positions * hidden if position else 0)
    return embeddings + layers * (attention + mlp + norms) + (2 * hidden if final_norm else 0)


def _built_clip_params(vocab_size, positions, hidden, layers, intermediate) -> int:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=positions, hidden_size=hidden,
                            num_hidden_layers=layers, intermediate_size=intermediate,
                            num_attention_heads=max(1, hidden // 64), bos_token_id=0, eos_token_id=1, pad_token_id=1)
    with torch.device("meta"):
        return sum(p.numel() for p in CLIPTextModel(config).parameters())


def check_clip_params(fn: Callable) -> CheckResult:
    """``fn(vocab_size, positions, hidden, layers, intermediate) -> int``, against the class built on meta."""
    slips = [("biases", {"biases": False}, "Every Linear and LayerNorm has a bias vector too: count it."),
             ("positions", {"position": False}, "CLIP also learns one vector per position (77 of them)."),
             ("layer norms", {"layer_norms": False}, "Each layer has two LayerNorms, each with a weight and a bias."),
             ("final norm", {"final_norm": False}, "After the last layer comes one more LayerNorm (final_layer_norm).")]
    cases = []
    for args in CLIP_CONFIGS.values():
        cases.append((args, _built_clip_params(*args),
                      [(clip_text_params(*args, **drop), hint) for _, drop, hint in slips]))
    return check_cases("Exercise 1 (a text encoder's parameters)", fn, cases, atol=0, rtol=0,
                       hint="Count the token and position embeddings, then per layer: four hidden x hidden "
                            "projections with biases, two LayerNorms, the MLP (hidden -> intermediate -> hidden, "
                            "with biases); then the final LayerNorm.")


# --- Exercise 2: the latent shape of an image -------------------------------------------------------

LATENT_CASES = [("sd15", 512, 512), ("sd15", 768, 512), ("sdxl", 1024, 1024), ("sd3-medium", 1024, 1024)]


def measured_latent_shape(name: str, height: int, width: int) -> tuple[int, int, int]:
    """``(C, h, w)`` of the latent the model's VAE encoder gives one image, run on the meta device."""
    vae = build(name, "vae")
    with torch.no_grad():
        latent = vae.encode(torch.empty(1, 3, height, width, device="meta")).latent_dist.mean
    return tuple(latent.shape[1:])


def check_latent_shape(fn: Callable) -> CheckResult:
    """``fn(height, width, vae_config) -> (C, h, w)``, against the real VAE encoders run on meta tensors."""
    cases = []
    for name, h, w in LATENT_CASES:
        config = load_config(name, "vae")
        f = 2 ** (len(config["block_out_channels"]) - 1)
        slips = [((4, h // f, w // f), "Not every VAE has 4 channels: read latent_channels from the config (SD3's has 16)."),
                 ((config["latent_channels"], h // len(config["block_out_channels"]), w // len(config["block_out_channels"])),
                  "The encoder halves the image between levels: with k entries in block_out_channels it halves "
                  "k - 1 times, a factor of 2 ** (k - 1)."),
                 ((config["latent_channels"], w // f, h // f), "Height first, then width.")]
        cases.append(((h, w, config), measured_latent_shape(name, h, w), slips))
    return check_cases("Exercise 2 (the latent shape)", fn, cases, atol=0, rtol=0,
                       hint="Channels: vae_config['latent_channels']; each side divided by 2 ** (len(block_out_channels) "
                            "- 1).")


# --- Exercise 3: the FLOPs of one generation ---------------------------------------------------------

def generation_flops(parts: dict, steps: int, guidance: bool, text_passes: bool = True, vae: bool = True,
                     cfg_batch: bool = True) -> int:
    """FLOPs of one image: the text encoders (twice with guidance: prompt and negative prompt), ``steps``
    denoiser calls (each on a batch of 2 with guidance) and one VAE decode (the flags: the checker's slips)."""
    mult = 2 if guidance and cfg_batch else 1
    total = 0
    for component, entry in parts.items():
        if component.startswith("text_encoder") and text_passes:
            total += entry["flops"] * (2 if guidance else 1)
        elif component in ("unet", "transformer"):
            total += entry["flops"] * steps * mult
        elif component == "vae" and vae:
            total += entry["flops"]
    return total


def check_generation_flops(fn: Callable, anatomies: dict) -> CheckResult:
    """``fn(parts, steps, guidance) -> FLOPs`` on ``anatomies`` (``{name: anatomy(name)}``)."""
    cases = []
    for name, parts in anatomies.items():
        for steps, guidance in ((50, True), (20, True), (4, False)):
            slips = [(generation_flops(parts, steps, guidance, cfg_batch=False),
                      "With guidance every step runs the denoiser on a batch of 2 (prompt and negative prompt): "
                      "twice its batch-1 FLOPs."),
                     (generation_flops(parts, steps, guidance, vae=False), "The image still has to be decoded: add "
                      "one VAE decode (parts['vae']['flops'])."),
                     (generation_flops(parts, steps, guidance, text_passes=False),
                      "The prompt (and with guidance the negative prompt) goes through every text encoder once.")]
            cases.append(((parts, steps, guidance), generation_flops(parts, steps, guidance), slips))
    return check_cases("Exercise 3 (the FLOPs of one generation)", fn, cases, atol=0, rtol=1e-9,
                       hint="Sum: each text encoder's flops (x2 with guidance), the denoiser's flops x steps (x2 with "
                            "guidance), and the VAE's flops (one decode).")


# --- Question: pixels against latents ----------------------------------------------------------------

def ask_pixel_ratio(ratio: float):
    """Why one denoiser call on 512x512 pixels costs ``ratio`` (> 64) times one on 64x64 latents."""
    options = ["Attention compares every position with every other: its cost grows with their square",
               "Latents have 4 channels and pixels 3, so the convolutions cost more",
               "The VAE decoder runs at every step in pixel space",
               "Pixel space needs more sampling steps"]
    return ask_choice(
        "Question (pixels against latents)",
        f"The same U-Net costs {ratio:,.0f}x as much on 512x512 pixels as on 64x64 latents, although there are only "
        "64x as many positions. Why more than 64x?", options, options[0],
        explanation="Convolutions grow with the positions (64x); self-attention with their square. At 512x512 the "
                    "top level's attention alone compares 262,144 positions with each other, which is why pixel-space "
                    "models attend only at low resolution, and why latent diffusion made 512x512 affordable.",
        hints={options[1]: "The channels change only the first and last convolution: a rounding error.",
               options[2]: "Neither is counted here: the ratio is of one U-Net call.",
               options[3]: "This is one U-Net call; the number of steps is the same either way."})
