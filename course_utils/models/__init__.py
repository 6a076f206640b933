"""Networks written from scratch: one architecture per file, each with a frozen config and presets."""

from .._validation import check_choice
from .embeddings import timestep_embedding
from .diffusers_unet import DiffusersUNet, diffusers_unet_like
from .dit import DIT_PRESETS, DiT, DiTConfig, get_dit_config
from .unet import UNET_PRESETS, UNet, UNetConfig, get_unet_config, trace_shapes



def build_denoiser(arch: str):
    """A fresh ``UNet`` or ``DiT`` from a preset name in ``UNET_PRESETS`` or ``DIT_PRESETS``."""
    check_choice("denoiser preset", arch, sorted(UNET_PRESETS) + sorted(DIT_PRESETS))
    return DiT(arch) if arch in DIT_PRESETS else UNet(arch)


def architecture_of(net) -> str:
    """``"unet"`` or ``"dit"``: what a checkpoint records so ``denoiser_from_dict`` can rebuild it."""
    return "dit" if isinstance(net, DiT) else "unet"


def denoiser_from_dict(architecture: str, config: dict):
    """Rebuild a denoiser from a checkpoint's ``architecture`` and ``model_config``."""
    check_choice("architecture", architecture, ("unet", "dit"))
    return DiT(DiTConfig.from_dict(config)) if architecture == "dit" else UNet(UNetConfig.from_dict(config))


__all__ = ["DIT_PRESETS", "architecture_of", "build_denoiser", "denoiser_from_dict", "DiT", "DiTConfig", "UNET_PRESETS", "DiffusersUNet", "UNet", "UNetConfig", "diffusers_unet_like",
           "get_dit_config", "get_unet_config", "timestep_embedding", "trace_shapes"]
