"""The anatomy of a real text-to-image model, measured on the meta device: what each component
holds, what it costs, and the shapes a generation passes through it.

``anatomy("sd15")`` builds every component from its published config (``real_models.registry``),
runs one generation on meta tensors (``real_models.generation``) and counts (``real_models.counting``):

- ``params`` and ``blocks``: parameters, in all and per top-level block (the UNet's ``down_blocks.0``
  ..., the VAE's encoder and decoder, a text encoder's embeddings, each layer and its final norm);
- ``flops`` (and ``flops_by_block``): one call at the model's native size, FLOPs as
  ``FlopCounterMode`` counts them (2 per multiply-add; convolutions and matrix multiplies, attention
  included; not normalisation or activations). The denoiser: one call at batch 1 (a guided sampling
  step makes one call at batch 2, so twice this); the VAE: one decode of one latent
  (``flops_encode``: one encode of one image); a text encoder: one prompt of 77 tokens (T5: 256);
- ``memory``: bytes of the weights in fp32 and fp16;
- ``shapes``: ``(stage, shape)`` in generation order, measured.

Native sizes: 512x512 for SD 1.5 (Rombach et al. 2022), 1024x1024 for SDXL (Podell et al. 2023) and
SD3 (Esser et al. 2024), 256x256 for DiT-XL/2 (Peebles & Xie 2023). Building and running on meta
takes a few seconds per model, so results are cached.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import torch

from .._validation import as_int, check_choice
from .counting import block_modules, block_params, count, memory, params
from .generation import run
from .registry import NAMES, TRANSFORMERS_CLASSES, built, components, load_config, model_info

# Wrappers opened so a text encoder's blocks are its embeddings, each layer and its final norm
# (transformers 5 dropped CLIPTextModel's ``text_model`` wrapper; CLIPTextModelWithProjection keeps it).
_TEXT_WRAPPERS = ("text_model", "text_model.encoder", "encoder")


def denoiser(name: str) -> str:
    """The denoiser's component name: ``"unet"`` or ``"transformer"``."""
    return "unet" if "unet" in components(name) else "transformer"


def vae_factor(name: str) -> int:
    """How many pixels one latent cell spans on a side (8 for all four models)."""
    return 2 ** (len(load_config(name, "vae")["block_out_channels"]) - 1)


def _denoiser_factor(name: str) -> int:
    cfg = load_config(name, denoiser(name))
    return 2 ** (len(cfg["block_out_channels"]) - 1) if "block_out_channels" in cfg else cfg["patch_size"]


def native_size(name: str) -> tuple[int, int]:
    """``(height, width)`` in pixels the model was trained at: the denoiser's latent size times the VAE's."""
    side = load_config(name, denoiser(name))["sample_size"] * vae_factor(name)
    return side, side


def check_resolution(name: str, height=None, width=None) -> tuple[int, int]:
    """``(height, width)``, the native size where ``None``; each a multiple of the VAE's factor times
    the denoiser's (its downsamplings, or its patch size), within SD3's positional-embedding grid."""
    cfg, f, d = load_config(name, denoiser(name)), vae_factor(name), _denoiser_factor(name)
    multiple = f * d
    largest = cfg.get("pos_embed_max_size") and cfg["pos_embed_max_size"] * cfg["patch_size"] * f
    sizes = []
    for arg, value, native in zip(("height", "width"), (height, width), native_size(name)):
        value = native if value is None else as_int(arg, value, minimum=1, what="a positive integer")
        if value % multiple:
            raise ValueError(f"{arg} must be a multiple of {multiple} pixels for {name} (the VAE's factor {f} times "
                             f"the {denoiser(name)}'s {d}), got {value}.")
        if largest and value > largest:
            raise ValueError(f"{arg} must be at most {largest} pixels for {name} (its positional embedding covers "
                             f"{cfg['pos_embed_max_size']} patches a side), got {value}.")
        sizes.append(value)
    return tuple(sizes)


def _component(name: str, component: str, module: torch.nn.Module, call: tuple, latent_hw, size) -> dict:
    """One component's entry; ``call`` is its ``(args, kwargs)`` at batch 1 (the VAE's are made here)."""
    cfg = load_config(name, component)
    blocks = block_modules(module, _TEXT_WRAPPERS if cfg["_class_name"] in TRANSFORMERS_CLASSES else ())
    entry = {"class": cfg["_class_name"], "params": params(module), "blocks": block_params(blocks)}
    if component == "vae":
        latent = torch.empty(1, module.config.latent_channels, *latent_hw, device="meta")
        entry["flops"], entry["flops_by_block"], _ = count(module.decode, (latent,), blocks=blocks)
        image = torch.empty(1, module.config.in_channels, *size, device="meta")
        entry["flops_encode"] = count(module.encode, (image,))[0]
    else:
        entry["flops"], entry["flops_by_block"], _ = count(module, *call, blocks=blocks)
    entry["memory"] = memory(entry["params"])
    entry["source"] = cfg.get("_source", model_info(name)["_source"])
    if "_note" in cfg:
        entry["note"] = cfg["_note"]
    return entry


@lru_cache(maxsize=16)
def _measure(name: str, height: int, width: int):
    """``(anatomy, generation record)`` of one model at one size: built, run and counted once."""
    modules = {c: built(name, c) for c in components(name)}
    f = vae_factor(name)
    latent_hw = (height // f, width // f)
    record, calls = run(model_info(name)["_class_name"], modules, latent_hw)
    out = {}
    for component, module in modules.items():
        out[component] = _component(name, component, module, calls.get(component), latent_hw, (height, width))
        out[component]["shapes"] = [(stage, shape) for c, stage, shape in record if c == component]
    return out, tuple(record)


def anatomy(name: str, height: int | None = None, width: int | None = None) -> dict:
    """Every component of model ``name`` (one of ``NAMES``) at ``height`` x ``width`` pixels (default:
    its native size): ``{component: {"class", "params", "blocks", "flops", "flops_by_block",
    "memory", "shapes", "source"}}`` (the VAE adds ``"flops_encode"``; ``"note"`` where the config
    has one), components in generation order. See the module docstring for what each counts.
    """
    name = check_choice("name", name, NAMES)
    return copy.deepcopy(_measure(name, *check_resolution(name, height, width))[0])


def generation_shapes(name: str, height: int | None = None, width: int | None = None) -> list[tuple]:
    """The ``(component, stage, shape)`` of one guided generation, in order: the prompt's tokens, the
    text embeddings, the latent noise, the denoiser's inputs and output (a batch of 2: classifier-free
    guidance), the guided prediction, the latent to decode and the decoded image."""
    name = check_choice("name", name, NAMES)
    return list(_measure(name, *check_resolution(name, height, width))[1])
