"""One generation of a real model, run on the meta device: the shape of every tensor it hands on.

Each pipeline below follows its diffusers pipeline (``StableDiffusionPipeline`` and the others) from
the prompt's tokens to the decoded image, for one image with classifier-free guidance: the denoiser
sees a batch of 2, the unconditional half and the conditional half. On meta tensors there are no
values, so the unconditional half (an empty prompt, DiT's null class) is the conditional half
repeated: the same shapes. One denoiser call stands for the whole sampling loop (every step has the
same shapes). The shapes are read off the modules' outputs, not written down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GUIDANCE_SCALE = 7.5  # any number: on meta tensors only the shapes are computed
CLIP_TOKENS = 77  # CLIP's context length
T5_TOKENS = 256  # SD3's default max_sequence_length for T5


class Record(list):
    """The ordered stages: ``(component, stage, shape)`` triples."""

    def add(self, component: str, stage: str, tensor: torch.Tensor) -> torch.Tensor:
        self.append((component, stage, tuple(tensor.shape)))
        return tensor


def _tokens(n: int) -> torch.Tensor:
    return torch.zeros(1, n, dtype=torch.long, device="meta")


def _noise(net, latent_hw: tuple[int, int]) -> torch.Tensor:
    return torch.empty(1, net.config.in_channels, *latent_hw, device="meta")


def _timestep() -> torch.Tensor:
    return torch.full((1,), 500.0, device="meta")


def _cfg_batch(value):
    """The denoiser's argument for the batch of 2 (tensors doubled, dicts of tensors too)."""
    if isinstance(value, torch.Tensor):
        return torch.cat([value, value])
    if isinstance(value, dict):
        return {k: _cfg_batch(v) for k, v in value.items()}
    return value


def _flat(kwargs: dict, prefix: str = ""):
    for key, value in kwargs.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        elif isinstance(value, torch.Tensor) and key != "timestep":
            yield prefix + key, value


def _clip(rec: Record, component: str, encoder, pooled: bool = True):
    """CLIP's penultimate hidden states (SDXL and SD3 read those) and, with a projection, its pooled
    embedding."""
    tokens = rec.add(component, "prompt tokens", _tokens(CLIP_TOKENS))
    out = encoder(tokens, output_hidden_states=True)
    states = rec.add(component, "hidden states (penultimate layer)", out.hidden_states[-2])
    return tokens, states, (rec.add(component, "pooled text embedding", out.text_embeds) if pooled else None)


def _sd(m: dict, latent_hw, rec: Record):
    tokens = rec.add("text_encoder", "prompt tokens", _tokens(CLIP_TOKENS))
    text = rec.add("text_encoder", "text embeddings", m["text_encoder"](tokens).last_hidden_state)
    one = {"sample": _noise(m["unet"], latent_hw), "timestep": _timestep(), "encoder_hidden_states": text}
    return {"text_encoder": ((tokens,), {}), "unet": ((), one)}


def _sdxl(m: dict, latent_hw, rec: Record):
    tokens, states, _ = _clip(rec, "text_encoder", m["text_encoder"], pooled=False)
    tokens_2, states_2, pooled = _clip(rec, "text_encoder_2", m["text_encoder_2"])
    text = rec.add("text_encoder_2", "text embeddings", torch.cat([states, states_2], dim=-1))
    time_ids = rec.add("unet", "time ids (size and crop conditioning)", torch.empty(1, 6, device="meta"))
    one = {"sample": _noise(m["unet"], latent_hw), "timestep": _timestep(), "encoder_hidden_states": text,
           "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
    return {"text_encoder": ((tokens,), {"output_hidden_states": True}),
            "text_encoder_2": ((tokens_2,), {"output_hidden_states": True}), "unet": ((), one)}


def _dit(m: dict, latent_hw, rec: Record):
    label = rec.add("transformer", "class label", torch.zeros(1, dtype=torch.long, device="meta"))
    one = {"hidden_states": _noise(m["transformer"], latent_hw), "timestep": _timestep(), "class_labels": label}
    return {"transformer": ((), one)}


def _sd3(m: dict, latent_hw, rec: Record):
    tokens, states, pooled = _clip(rec, "text_encoder", m["text_encoder"])
    tokens_2, states_2, pooled_2 = _clip(rec, "text_encoder_2", m["text_encoder_2"])
    t5_tokens = rec.add("text_encoder_3", "prompt tokens", _tokens(T5_TOKENS))
    t5 = rec.add("text_encoder_3", "hidden states", m["text_encoder_3"](t5_tokens).last_hidden_state)
    clip = torch.cat([states, states_2], dim=-1)
    clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))  # CLIP's 768 + 1280 padded to T5's width
    text = rec.add("text_encoder_3", "text embeddings (CLIP tokens then T5 tokens)", torch.cat([clip, t5], dim=-2))
    pooled = rec.add("text_encoder_3", "pooled text embedding", torch.cat([pooled, pooled_2], dim=-1))
    one = {"hidden_states": _noise(m["transformer"], latent_hw), "timestep": _timestep(),
           "encoder_hidden_states": text, "pooled_projections": pooled}
    return {"text_encoder": ((tokens,), {"output_hidden_states": True}),
            "text_encoder_2": ((tokens_2,), {"output_hidden_states": True}),
            "text_encoder_3": ((t5_tokens,), {}), "transformer": ((), one)}


PIPELINES = {"StableDiffusionPipeline": _sd, "StableDiffusionXLPipeline": _sdxl, "DiTPipeline": _dit,
             "StableDiffusion3Pipeline": _sd3}


def _denoise(rec: Record, component: str, net, one: dict) -> None:
    """One guided denoiser call on the batch of 2, and the guided prediction (batch 1)."""
    rec.add(component, "latent noise", next(iter(one.values())))
    both = _cfg_batch(one)
    for key, value in _flat(both):
        rec.add(component, f"denoiser input: {key}", value)
    out = rec.add(component, "denoiser output", net(**both).sample)
    channels = next(iter(one.values())).shape[1]  # DiT also predicts its variance: the rest of the channels
    uncond, cond = out[:, :channels].chunk(2)
    rec.add(component, "guided prediction", uncond + GUIDANCE_SCALE * (cond - uncond))


def _decode(rec: Record, vae, latents: torch.Tensor) -> None:
    """Decode the sampled latents (the noise's shape: each sampler step keeps it) into the image."""
    cfg = vae.config
    latents = latents / cfg.scaling_factor + (getattr(cfg, "shift_factor", None) or 0.0)
    rec.add("vae", "decoded image", vae.decode(rec.add("vae", "latent to decode", latents)).sample)


def run(pipeline: str, modules: dict, latent_hw: tuple[int, int]):
    """Run one generation on meta modules (component -> module) with latents of ``latent_hw``.

    Returns ``(record, calls)``: the ``(component, stage, shape)`` triples in order, and for each
    text encoder and the denoiser the ``(args, kwargs)`` of one call at batch 1 (the FLOPs' call).
    """
    rec = Record()
    with torch.no_grad():
        calls = PIPELINES[pipeline](modules, latent_hw, rec)
        denoiser = next(c for c in ("unet", "transformer") if c in modules)
        one = calls[denoiser][1]
        _denoise(rec, denoiser, modules[denoiser], one)
        _decode(rec, modules["vae"], next(iter(one.values())))
    return rec, calls
