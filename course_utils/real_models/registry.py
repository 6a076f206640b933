"""The published configs of real text-to-image models, and the modules they build, without weights.

Each model is one JSON file in ``configs/``: its pipeline's ``_class_name`` (as in the model's
``model_index.json``), its source, and one config per component under ``"components"``, in the
order a generation uses them. The configs are the published ``config.json`` files of the model
repositories (diffusers and transformers keys), each with a ``"_class_name"`` naming the class it
builds:

- ``sd15``: Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5; Rombach et al. 2022).
- ``sdxl``: SDXL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0; Podell et al. 2023).
- ``dit-xl-2``: DiT-XL/2 at 256x256 (facebook/DiT-XL-2-256; Peebles & Xie 2023), class-conditional.
- ``sd3-medium``: Stable Diffusion 3 medium (stabilityai/stable-diffusion-3-medium-diffusers;
  Esser et al. 2024), with its three text encoders (CLIP-L, OpenCLIP bigG, T5-XXL's encoder).

``build`` makes a module on PyTorch's meta device: every tensor has a shape and a dtype but no
storage, so SDXL's 2.6 billion parameters cost no memory and no download, yet the module counts its
parameters and runs forward (shapes and FLOPs, ``real_models.anatomy``).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import torch

from .._validation import check_choice, check_size

NAMES = ("sd15", "sdxl", "dit-xl-2", "sd3-medium")
CONFIG_DIR = Path(__file__).with_name("configs")

DIFFUSERS_CLASSES = ("UNet2DConditionModel", "AutoencoderKL", "DiTTransformer2DModel", "SD3Transformer2DModel")
TRANSFORMERS_CLASSES = ("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel")


@lru_cache(maxsize=None)
def _model_file(name: str) -> dict:
    return json.loads((CONFIG_DIR / f"{name}.json").read_text())


def model_info(name: str) -> dict:
    """The model's JSON file: ``"_class_name"`` (its diffusers pipeline), ``"_source"``, ``"components"``."""
    return copy.deepcopy(_model_file(check_choice("name", name, NAMES)))


def components(name: str) -> tuple[str, ...]:
    """The model's components, in the order a generation uses them (text encoders, denoiser, VAE)."""
    return tuple(_model_file(check_choice("name", name, NAMES))["components"])


def _check(name: str, component: str) -> tuple[str, str]:
    name = check_choice("name", name, NAMES)
    return name, check_choice(f"{name} component", component, components(name))


def load_config(name: str, component: str) -> dict:
    """The published config of one component, as a fresh dict (``"_class_name"`` included).

    ``diffusers`` classes take it as it is (``UNet2DConditionModel.from_config(cfg)``: keys starting
    with ``_`` are ignored); ``transformers`` classes through their config class (``build`` does both).
    """
    name, component = _check(name, component)
    return copy.deepcopy(_model_file(name)["components"][component])


def module_class(class_name: str):
    """The diffusers or transformers class a config's ``"_class_name"`` names."""
    class_name = check_choice("_class_name", class_name, DIFFUSERS_CLASSES + TRANSFORMERS_CLASSES)
    if class_name in DIFFUSERS_CLASSES:
        import diffusers

        return getattr(diffusers, class_name)
    try:
        import transformers
    except ImportError as err:  # an optional dependency: the dev and online extras install it
        raise ImportError(f"{class_name} (a text encoder) needs the transformers package: "
                          "pip install 'transformers>=4.40'.") from err
    return getattr(transformers, class_name)


def _construct(class_name: str, cfg: dict) -> torch.nn.Module:
    """The module ``cfg`` describes, its weights freshly initialised on the current default device."""
    cls = module_class(class_name)
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    if class_name in DIFFUSERS_CLASSES:
        return cls.from_config(cfg)
    return cls(cls.config_class.from_dict(cfg))


@lru_cache(maxsize=None)
def built(name: str, component: str) -> torch.nn.Module:
    """The component on the meta device, built once and shared: read it, never change it (``build``
    gives a module of one's own)."""
    cfg = load_config(name, component)
    with torch.device("meta"), torch.no_grad():
        return _construct(cfg["_class_name"], cfg).eval()


def build(name: str, component: str, device: str | torch.device = "meta") -> torch.nn.Module:
    """One component of a real model, built from its published config, in eval mode.

    On ``device="meta"`` (the default) the module has every parameter's shape and dtype but no
    storage: no memory, no download, and it runs forward on meta tensors (shapes and FLOPs, not
    values). On a real device the weights are randomly initialised (the architecture, not the trained
    model): that needs their memory (SDXL's UNet: 10 GB in fp32), checked before building.
    """
    name, component = _check(name, component)
    device = torch.device(device)
    cfg = load_config(name, component)
    if device.type != "meta":
        n = sum(p.numel() for p in built(name, component).parameters())
        check_size(f"{name}'s {component} with random weights", 4 * n, "device='meta' needs no memory")
    with torch.device(device), torch.no_grad():
        return _construct(cfg["_class_name"], cfg).eval()
