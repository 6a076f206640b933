"""Networks written from scratch: one architecture per file, each with a frozen config and presets."""

from .embeddings import timestep_embedding
from .unet import UNET_PRESETS, UNet, UNetConfig, get_unet_config

__all__ = ["UNET_PRESETS", "UNet", "UNetConfig", "get_unet_config", "timestep_embedding"]
