"""Attention over feature maps: self-attention, and cross-attention to text tokens.

Both use ``scaled_dot_product_attention`` (fused kernels on GPU) unless the attention weights
are asked for (``store_attention = True``), in which case they are computed explicitly and kept
in ``.last_attention`` for plotting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)  # (B, heads, N, C/heads)


def attend(q, k, v, num_heads: int, mask=None, keep: bool = False):
    """Multi-head attention ``softmax(q k^T / sqrt(d)) v``; returns ``(out, weights or None)``.

    q: ``(B, N, C)``; k, v: ``(B, L, C)``; mask: ``(B, L)`` bool, True where a key may be attended.
    """
    q, k, v = _heads(q, num_heads), _heads(k, num_heads), _heads(v, num_heads)  # (B, h, N|L, C/h)
    attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L)
    if not keep:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, C/h)
        weights = None
    else:
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, h, N, L)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        weights = scores.softmax(-1)
        out = weights @ v  # (B, h, N, C/h)
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d), weights  # (B, N, C)


class SelfAttention2d(nn.Module):
    """Pre-norm multi-head self-attention over the ``H*W`` positions, with a residual."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)  # starts as the identity map
        nn.init.zeros_(self.proj.bias)
        self.store_attention = False
        self.last_attention = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)  # 3 x (B, HW, C)
        out, self.last_attention = attend(q, k, v, self.num_heads, keep=self.store_attention)  # (B, HW, C)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)


class CrossAttention2d(nn.Module):
    """Image positions (queries) attend to text tokens (keys, values), with a residual.

    ``context``: ``(B, L, context_dim)`` token embeddings; ``mask``: ``(B, L)``, True for real
    tokens. With ``store_attention``, ``.last_attention`` is ``(B, heads, H*W, L)``.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int, groups: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.store_attention = False
        self.last_attention = None

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        k, v = self.kv(context).chunk(2, dim=-1)  # 2 x (B, L, C)
        out, self.last_attention = attend(q, k, v, self.num_heads, mask=mask, keep=self.store_attention)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)
