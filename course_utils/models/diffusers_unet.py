"""diffusers' ``UNet2DModel`` behind our call signature, for side-by-side comparisons.

``diffusers_unet_like("digits-small")`` builds a ``UNet2DModel`` with the same widths, depth and
attention placement as our preset (1,112,801 parameters for both), so the same training loop and
samplers run on either network.
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import UNetConfig, get_unet_config


class DiffusersUNet(nn.Module):
    """Wraps a ``diffusers.UNet2DModel``: ``model(x, t) -> tensor`` instead of ``.sample``."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t, class_labels=None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        return self.unet(x, t, class_labels=class_labels).sample

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def diffusers_unet_like(preset: str | UNetConfig = "digits-small") -> DiffusersUNet:
    """A ``UNet2DModel`` matching one of our presets (unconditional presets only)."""
    from diffusers import UNet2DModel

    cfg = get_unet_config(preset) if isinstance(preset, str) else preset
    if cfg.num_classes or cfg.context_dim:
        raise ValueError("diffusers_unet_like supports unconditional presets only.")
    levels = range(len(cfg.channel_mults))
    unet = UNet2DModel(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels or cfg.in_channels,
        block_out_channels=tuple(cfg.base_channels * m for m in cfg.channel_mults),
        layers_per_block=cfg.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in levels),
        up_block_types=tuple("AttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D" for i in reversed(levels)),
        norm_num_groups=cfg.groups,
        attention_head_dim=cfg.base_channels * cfg.channel_mults[-1] // cfg.num_heads,
    )
    return DiffusersUNet(unet)
