"""A Diffusion Transformer (DiT) written from scratch (Peebles & Xie 2023, "Scalable Diffusion Models
with Transformers"; after facebookresearch/DiT ``models.py``).

The image is cut into ``p x p`` patches; each patch becomes one token (a linear map, here a conv with
kernel = stride = p), a fixed 2D sine-cosine position embedding is added, and ``depth`` transformer
blocks process the sequence. The timestep (and class) embedding ``c`` enters every block through
adaLN-Zero: ``c`` regresses a shift, a scale and a gate for each sub-layer, zero-initialised so every
block starts as the identity (Sec. 3.2). A final layer maps each token back to a ``p x p`` patch.

Shapes below: B batch, C channels, H = W = sample_size, p patch size, N = (H / p)**2 tokens,
D = hidden_size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_positive_int
from .embeddings import add_class_embedding, broadcast_timesteps, timestep_embedding

FREQUENCY_DIM = 256  # sinusoidal timestep features before the MLP, as DiT's TimestepEmbedder


def sequence_length(sample_size: int, patch_size: int) -> int:
    """The number of tokens, ``(sample_size / patch_size)**2``: halving p quadruples the sequence."""
    sample_size, patch_size = check_positive_int("sample_size", sample_size), check_positive_int("patch_size", patch_size)
    if sample_size % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide sample_size {sample_size}; accepted: "
                         f"{[p for p in range(1, sample_size + 1) if sample_size % p == 0]}.")
    return (sample_size // patch_size) ** 2


@dataclass(frozen=True)
class DiTConfig:
    """Everything that defines a DiT's shape. Frozen: build a new one to change it."""

    sample_size: int = 16
    in_channels: int = 1
    out_channels: int | None = None  # None: same as in_channels
    patch_size: int = 2
    hidden_size: int = 128
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int | None = None  # class conditioning; label index num_classes is the "null" label

    def __post_init__(self):
        for name in ("sample_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads"):
            check_positive_int(name, getattr(self, name))
        for name in ("out_channels", "num_classes"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        sequence_length(self.sample_size, self.patch_size)
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size must be divisible by 4 (the 2D sine-cosine position embedding), "
                             f"got {self.hidden_size}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads {self.num_heads} must divide hidden_size {self.hidden_size}; accepted: "
                             f"{[h for h in range(1, self.hidden_size + 1) if self.hidden_size % h == 0]}.")
        if not self.mlp_ratio > 0 or int(self.hidden_size * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must be > 0 (at least one MLP unit per block), got {self.mlp_ratio}.")

    @property
    def num_patches(self) -> int:
        """N, the sequence length."""
        return sequence_length(self.sample_size, self.patch_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DiTConfig":
        return cls(**d)


DIT_PRESETS: dict[str, DiTConfig] = {
    # ~0.33M parameters, class-conditional 16x16 digits: 64 tokens of 2x2 patches.
    "dit-digits-s": DiTConfig(hidden_size=64, depth=4, num_heads=4, num_classes=10),
    # ~1.05M: about the size (and the training step time on a CPU) of the 1.11M "digits-class" U-Net.
    "dit-digits-b": DiTConfig(hidden_size=96, depth=6, num_heads=4, num_classes=10),
    # ~1.86M, unconditional, on 8x8x4 VAE latents ("shapes-vae"): 64 tokens of 1x1 patches.
    "dit-latent-s": DiTConfig(sample_size=8, in_channels=4, patch_size=1, hidden_size=128, depth=6, num_heads=4),
}


def get_dit_config(name: str, **overrides) -> DiTConfig:
    """A named preset, optionally with fields overridden (e.g. ``patch_size=4``)."""
    check_choice("DiT preset", name, DIT_PRESETS)
    cfg = DIT_PRESETS[name]
    return DiTConfig.from_dict(cfg.to_dict() | overrides) if overrides else cfg


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, N, p*p*C)`` tokens. Patches run row-major (token ``i * W/p + j`` is the
    patch at row i, column j); each is flattened in ``(p, p, C)`` order (row in patch, column, channel),
    the order of DiT's ``unpatchify``. Inverse: ``unpatchify``."""
    p = check_positive_int("p", p)
    if x.ndim != 4 or x.shape[2] % p or x.shape[3] % p:
        raise ValueError(f"x must have shape (B, C, H, W) with H and W divisible by p = {p}, got {tuple(x.shape)}.")
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, h, p, w, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)  # (B, N, p*p*C)


def unpatchify(tokens: torch.Tensor, p: int, channels: int, side: int) -> torch.Tensor:
    """``(B, N, p*p*C)`` tokens -> ``(B, C, side, side)`` images; the inverse of ``patchify``."""
    p, channels, side = (check_positive_int(n, v) for n, v in (("p", p), ("channels", channels), ("side", side)))
    n = sequence_length(side, p)
    if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (n, p * p * channels):
        raise ValueError(f"tokens must have shape (B, N, p*p*C) = (B, {n}, {p * p * channels}) for a {side}x{side} "
                         f"image, p = {p}, C = {channels}; got {tuple(tokens.shape)}.")
    g = side // p
    x = tokens.reshape(tokens.shape[0], g, g, p, p, channels)  # (B, h, w, p, p, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(tokens.shape[0], channels, side, side)  # (B, C, H, W)


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int) -> torch.Tensor:
    """DiT's fixed position embedding: ``(grid_size**2, embed_dim)`` float32, tokens row-major.

    Token (row i, column j) gets ``[sin(j w), cos(j w), sin(i w), cos(i w)]`` with the ``D/4``
    frequencies ``w_k = 10000 ** (-k / (D/4))``: the first half encodes the column, the second the
    row (DiT's and MAE's ``meshgrid(grid_w, grid_h)`` order). Computed in float64. Equals diffusers'
    ``get_2d_sincos_pos_embed(embed_dim, grid_size, base_size=grid_size)`` (positions 0..g-1, as in
    DiT and diffusers' own DiT); diffusers' default ``base_size=16`` rescales positions by 16 / g.
    """
    embed_dim, grid_size = check_positive_int("embed_dim", embed_dim), check_positive_int("grid_size", grid_size)
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 (sin and cos of rows and columns), got {embed_dim}.")
    quarter = embed_dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    pos = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")  # (g, g) each
    halves = []
    for coord in (cols, rows):
        angles = coord.reshape(-1, 1) * omega  # (g*g, D/4)
        halves += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(halves, dim=1).float()  # (g*g, D)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x * (1 + scale) + shift`` per example; ``x (B, N, D)``, shift and scale ``(B, D)``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head self-attention over tokens (one qkv Linear, then an output projection)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B, N, 3, heads, D/heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, D/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class DiTBlock(nn.Module):
    """adaLN-Zero block: ``x + gate * attn(modulate(norm(x)))``, then the same with an MLP.
    The modulation is zero-initialised, so all gates are 0 and the block is the identity at first."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_hidden, hidden_size))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        nn.init.zeros_(self.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.adaLN_modulation[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``x (B, N, D)``, ``c (B, D)`` -> ``(B, N, D)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (B, D)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))  # (B, N, D)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)


class FinalLayer(nn.Module):
    """LayerNorm, adaLN shift and scale, then a Linear to one ``p x p x C_out`` patch per token.
    Zero-initialised, so the model predicts 0 at first (like the U-Net's ``conv_out``)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        for layer in (self.linear, self.adaLN_modulation[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 x (B, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, p*p*C_out)


class DiT(nn.Module):
    """``eps_theta(x_t, t)`` as a transformer over patches; a drop-in for ``UNet`` (same call, same
    ``config.in_channels / sample_size / num_classes``, ``num_parameters()``).

    Args:
        config: a ``DiTConfig`` or the name of a preset in ``DIT_PRESETS``.
    """

    def __init__(self, config: DiTConfig | str = "dit-digits-b"):
        super().__init__()
        cfg = get_dit_config(config) if isinstance(config, str) else config
        self.config = cfg
        d, p = cfg.hidden_size, cfg.patch_size
        self.x_embedder = nn.Conv2d(cfg.in_channels, d, kernel_size=p, stride=p)  # = Linear on patchify(x)
        self.t_embedder = nn.Sequential(nn.Linear(FREQUENCY_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.class_embedding = nn.Embedding(cfg.num_classes + 1, d) if cfg.num_classes else None
        grid = cfg.sample_size // p
        self.register_buffer("pos_embed", get_2d_sincos_pos_embed(d, grid)[None], persistent=False)  # (1, N, D)
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(d, p, cfg.out_channels or cfg.in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's ``initialize_weights``: xavier-uniform Linears with zero bias, the patch conv as a
        Linear, N(0, 0.02) for the timestep MLP and label table; the adaLN-Zero layers stay 0."""
        zero = [blk.adaLN_modulation[-1] for blk in self.blocks]
        zero += [self.final_layer.linear, self.final_layer.adaLN_modulation[-1]]
        for m in self.modules():
            if isinstance(m, nn.Linear) and not any(m is z for z in zero):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.weight
        nn.init.xavier_uniform_(w.data.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        nn.init.normal_(self.t_embedder[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder[2].weight, std=0.02)
        if self.class_embedding is not None:
            nn.init.normal_(self.class_embedding.weight, std=0.02)

    def _embedding(self, t, x, class_labels) -> torch.Tensor:
        emb = self.t_embedder(timestep_embedding(broadcast_timesteps(t, x), FREQUENCY_DIM))  # (B, D)
        return add_class_embedding(emb, self.class_embedding, self.config.num_classes, class_labels, "DiT")

    def forward(self, x: torch.Tensor, t, class_labels=None, encoder_hidden_states=None,
                encoder_attention_mask=None) -> torch.Tensor:
        """Args: ``x (B, C, H, W)``; ``t`` int or ``(B,)``; ``class_labels (B,)``. The text arguments
        exist only so callers written for ``UNet`` work; a DiT here takes no text (they must be None)."""
        cfg = self.config
        s = cfg.sample_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.in_channels, s, s):
            raise ValueError(f"x must have shape (B, {cfg.in_channels}, {s}, {s}) (in_channels, sample_size); "
                             f"got {tuple(x.shape)}.")
        if encoder_hidden_states is not None or encoder_attention_mask is not None:
            raise ValueError("this DiT has no text conditioning: encoder_hidden_states must be None.")
        c = self._embedding(t, x, class_labels)  # (B, D)
        h = self.x_embedder(x).flatten(2).transpose(1, 2)  # (B, N, D), patches row-major
        h = h + self.pos_embed  # (B, N, D)
        for block in self.blocks:
            h = block(h, c)  # (B, N, D)
        h = self.final_layer(h, c)  # (B, N, p*p*C_out)
        return unpatchify(h, cfg.patch_size, cfg.out_channels or cfg.in_channels, s)  # (B, C_out, H, W)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

