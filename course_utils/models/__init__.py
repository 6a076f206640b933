"""Networks written from scratch: one architecture per file, each with a frozen config and presets."""

from .embeddings import timestep_embedding
from .diffusers_unet import DiffusersUNet, diffusers_unet_like
from .unet import UNET_PRESETS, UNet, UNetConfig, get_unet_config, trace_shapes

__all__ = ["UNET_PRESETS", "DiffusersUNet", "UNet", "UNetConfig", "diffusers_unet_like", "get_unet_config", "timestep_embedding",
           "trace_shapes"]
