"""A U-Net noise predictor written from scratch (after Ho et al. 2020 and Dhariwal & Nichol 2021).

Encoder: residual blocks at decreasing resolution (halved per level), each block's output kept
as a skip. Bottleneck: block, self-attention, block. Decoder: the mirror image, each block fed
``cat(h, skip)`` (the skip connections), upsampling between levels. Every residual block adds the
timestep embedding (sinusoidal, then an MLP), plus a class embedding when the model is
class-conditional. Self-attention sits at the levels named in ``attention_levels``; with
``context_dim`` set, cross-attention to text tokens sits there too.

Shapes below: B batch, C_i = base_channels * channel_mults[i], H_i = H / 2**i.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_levels
from .attention import CrossAttention2d, SelfAttention2d
from .embeddings import add_class_embedding, broadcast_timesteps, timestep_embedding


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net's shape. Frozen: build a new one to change it."""

    sample_size: int = 16
    in_channels: int = 1
    out_channels: int | None = None  # None: same as in_channels
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    num_heads: int = 4
    groups: int = 8
    dropout: float = 0.0
    num_classes: int | None = None  # class conditioning; label index num_classes is the "null" label
    context_dim: int | None = None  # cross-attention to (B, L, context_dim) text tokens
    skip_connections: bool = True  # False only for the ablation in notebook 04

    def __post_init__(self):
        check_levels(self.channel_mults, self.sample_size)
        levels = len(self.channel_mults)
        bad = [i for i in self.attention_levels if not 0 <= i < levels]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range: levels are 0..{levels - 1}.")
        for mult in self.channel_mults:
            ch = self.base_channels * mult
            if ch % self.groups or ch % self.num_heads:
                raise ValueError(f"channels {ch} must be divisible by groups ({self.groups}) and num_heads ({self.num_heads}).")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channel_mults", "attention_levels"):
            d[key] = tuple(d[key])
        return cls(**d)


UNET_PRESETS: dict[str, UNetConfig] = {
    # ~0.1M parameters: fast mode proves the loop in seconds.
    "digits-tiny": UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2),
    # ~1.6M: a laptop trains it in about ten minutes.
    "digits-small": UNetConfig(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)),
    # ~6M: the full model, for a GPU.
    "digits": UNetConfig(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(1, 2)),
    # class-conditional digits (label embedding + learned null label for classifier-free guidance).
    "digits-class": UNetConfig(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,), num_classes=10),
    # Text-conditioned RGB 32x32 shapes: self- and cross-attention (to 64-d text tokens) at 8x8.
    "shapes-text": UNetConfig(sample_size=32, in_channels=3, base_channels=32, channel_mults=(1, 2, 2),
                              attention_levels=(2,), context_dim=64),
    # Latent diffusion on shapes-vae's 8x8x4 latents, text-conditioned; 1.3M parameters, about as
    # many as "shapes-text" (1.2M) has in pixel space, with attention at every level (8, 4, 2).
    "shapes-latent": UNetConfig(sample_size=8, in_channels=4, base_channels=32, channel_mults=(1, 2, 2),
                                attention_levels=(0, 1, 2), context_dim=64),
    # RGB 32x32 shapes.
    "shapes-small": UNetConfig(sample_size=32, in_channels=3, base_channels=32, channel_mults=(1, 2, 2, 2),
                               attention_levels=(3,)),
}


def get_unet_config(name: str, **overrides) -> UNetConfig:
    """A named preset, optionally with fields overridden (e.g. ``skip_connections=False``)."""
    check_choice("U-Net preset", name, UNET_PRESETS)
    cfg = UNET_PRESETS[name]
    return UNetConfig.from_dict(cfg.to_dict() | overrides) if overrides else cfg


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, add the embedding, GroupNorm -> SiLU -> dropout -> conv, plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups if in_ch % groups == 0 else 1, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as its skip path
        nn.init.zeros_(self.conv2.bias)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # timestep (+ class) information, (B, out, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))  # (B, out, H, W)
        return self.shortcut(x) + h  # (B, out, H, W)


class Block(nn.Module):
    """A residual block, then self-attention and cross-attention where the level has them."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, cfg.groups, cfg.dropout)
        self.attn = SelfAttention2d(out_ch, cfg.num_heads, cfg.groups) if attention else None
        self.cross = (CrossAttention2d(out_ch, cfg.context_dim, cfg.num_heads, cfg.groups)
                      if attention and cfg.context_dim else None)

    def forward(self, x, emb, context=None, mask=None):
        x = self.res(x, emb)  # (B, out, H, W)
        if self.attn is not None:
            x = self.attn(x)  # (B, out, H, W)
        if self.cross is not None and context is not None:
            x = self.cross(x, context, mask)  # (B, out, H, W)
        return x


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class UNet(nn.Module):
    """``eps_theta(x_t, t)``: a noisy image and its timestep in, a same-shaped prediction out.

    Args:
        config: a ``UNetConfig`` or the name of a preset in ``UNET_PRESETS``.
    """

    def __init__(self, config: UNetConfig | str = "digits-small"):
        super().__init__()
        cfg = get_unet_config(config) if isinstance(config, str) else config
        self.config = cfg
        c0, emb_dim = cfg.base_channels, 4 * cfg.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embedding = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)

        chans = [c0 * m for m in cfg.channel_mults]
        skip_ch, ch = [c0], c0
        self.down = nn.ModuleList()
        for i, out_ch in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                self.down.append(Block(ch, out_ch, emb_dim, cfg, i in cfg.attention_levels))
                ch = out_ch
                skip_ch.append(ch)
            if i < len(chans) - 1:
                self.down.append(Downsample(ch))
                skip_ch.append(ch)

        self.mid = nn.ModuleList([Block(ch, ch, emb_dim, cfg, True), Block(ch, ch, emb_dim, cfg, False)])

        self.up = nn.ModuleList()
        for i, out_ch in reversed(list(enumerate(chans))):
            for _ in range(cfg.num_res_blocks + 1):
                extra = skip_ch.pop() if cfg.skip_connections else 0
                self.up.append(Block(ch + extra, out_ch, emb_dim, cfg, i in cfg.attention_levels))
                ch = out_ch
            if i > 0:
                self.up.append(Upsample(ch))

        self.norm_out = nn.GroupNorm(cfg.groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels or cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # predicts 0 at initialisation
        nn.init.zeros_(self.conv_out.bias)

    def _embedding(self, t, x, class_labels) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(broadcast_timesteps(t, x), self.config.base_channels))  # (B, D)
        return add_class_embedding(emb, self.class_embedding, self.config.num_classes, class_labels, "U-Net")

    def forward(self, x: torch.Tensor, t, class_labels=None, encoder_hidden_states=None,
                encoder_attention_mask=None) -> torch.Tensor:
        """Args: ``x (B, C, H, W)``; ``t`` int or ``(B,)``; ``class_labels (B,)``;
        ``encoder_hidden_states (B, L, context_dim)`` with ``encoder_attention_mask (B, L)``."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[-1] % 2 ** (len(cfg.channel_mults) - 1):
            raise ValueError(f"x must have shape (B, {cfg.in_channels}, H, W) with H, W divisible by "
                             f"{2 ** (len(cfg.channel_mults) - 1)}; got {tuple(x.shape)}.")
        ctx, mask = encoder_hidden_states, encoder_attention_mask
        emb = self._embedding(t, x, class_labels)  # (B, 4C0)
        h = self.conv_in(x)  # (B, C0, H, W)
        skips = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else layer(h, emb, ctx, mask)  # (B, C_i, H_i, W_i)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb, ctx, mask)  # (B, C_last, H_last, W_last)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)  # (B, C_i, 2 H_i, 2 W_i)
                continue
            skip = skips.pop()
            if cfg.skip_connections:
                h = torch.cat([h, skip], dim=1)  # (B, C_i + C_skip, H_i, W_i)
            h = layer(h, emb, ctx, mask)  # (B, C_i, H_i, W_i)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out, H, W)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def cross_attention_maps(self) -> list[torch.Tensor]:
        """The cross-attention weights of the last forward pass (set ``store_attention`` first)."""
        return [m.last_attention for m in self.modules() if isinstance(m, CrossAttention2d) and m.last_attention is not None]

    def store_attention(self, on: bool = True) -> None:
        """Keep attention weights on the next forward passes (slower; for plots)."""
        for m in self.modules():
            if isinstance(m, (SelfAttention2d, CrossAttention2d)):
                m.store_attention = on


@torch.no_grad()
def trace_shapes(model: UNet, x: torch.Tensor, t=0) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``x`` through ``model`` and list ``(stage, output shape)`` for every layer in order:
    ``conv_in``, the encoder (``down.i``), the bottleneck (``mid.i``), the decoder (``up.i``), ``out``."""
    records: list[tuple[str, tuple[int, ...]]] = []
    hooks = []
    named = [("conv_in", model.conv_in)] + [(f"down.{i} ({type(m).__name__})", m) for i, m in enumerate(model.down)]
    named += [(f"mid.{i}", m) for i, m in enumerate(model.mid)]
    named += [(f"up.{i} ({type(m).__name__})", m) for i, m in enumerate(model.up)] + [("out", model.conv_out)]
    for name, module in named:
        hooks.append(module.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, tuple(out.shape)))))
    try:
        model(x, t)
    finally:
        for h in hooks:
            h.remove()
    return records
