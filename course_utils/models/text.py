"""A tiny text encoder: words to token ids, token ids to one vector per token.

The shapes captions use 15 words, so a word-level tokenizer is exact and readable (real models
use sub-word BPE; the interface is the same: ids plus an attention mask). The encoder is the
text half of CLIP in miniature: token embeddings plus learned positions, a few pre-norm
transformer layers, a final LayerNorm. Its per-token states feed the U-Net's cross-attention as
``encoder_hidden_states``; its end-of-text state, projected, is CLIP's sentence embedding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..data.shapes import COLORS, SHAPES

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class Tokenizer:
    """Word-level tokenizer with a fixed vocabulary.

    ``encode(["a red circle on a blue background"])`` gives ``ids (B, L)`` (``<bos>`` words
    ``<eos>`` then ``<pad>``) and ``mask (B, L)`` (True on real tokens). The empty prompt ``""``
    encodes as ``<bos> <eos>``: the "no condition" input of classifier-free guidance.
    """

    def __init__(self, words: Iterable[str], max_length: int = 10):
        self.vocab = [PAD, BOS, EOS] + sorted(set(words) - {PAD, BOS, EOS})
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    @property
    def eos_id(self) -> int:
        return self.index[EOS]

    def words(self, prompt: str) -> list[str]:
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}.")
        return re.findall(r"[a-z]+", prompt.lower())

    def encode(self, prompts: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("encode needs at least one prompt.")
        rows = []
        for p in prompts:
            words = self.words(p)
            unknown = sorted({w for w in words if w not in self.index})
            if unknown:
                raise ValueError(f"unknown words {unknown} in {p!r}; this tokenizer knows "
                                 f"{[w for w in self.vocab if not w.startswith('<')]}.")
            if len(words) + 2 > self.max_length:
                raise ValueError(f"{p!r} has {len(words)} words; at most {self.max_length - 2} fit.")
            ids = [self.index[BOS]] + [self.index[w] for w in words] + [self.index[EOS]]
            rows.append(ids + [self.pad_id] * (self.max_length - len(ids)))
        ids = torch.tensor(rows, dtype=torch.long)  # (B, L)
        return ids, ids != self.pad_id

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [" ".join(self.vocab[i] for i in row.tolist() if self.vocab[i] not in (PAD, BOS, EOS)) for row in ids]


def shapes_tokenizer() -> Tokenizer:
    """The tokenizer of the shapes captions: 'a', 'on', 'background', the colours and the shapes."""
    return Tokenizer(["a", "on", "background", *COLORS, *SHAPES], max_length=10)


class TextEncoder(nn.Module):
    """``ids (B, L)`` and ``mask (B, L)`` -> ``(B, L, dim)`` token states (padding ignored).

    Args:
        vocab_size, max_length: from the tokenizer.
        dim, layers, heads: the transformer's width, depth and attention heads.
    """

    def __init__(self, vocab_size: int, max_length: int, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.max_length, self.dim = max_length, dim
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.position_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.ndim != 2 or ids.shape[1] != self.max_length or ids.is_floating_point():
            raise ValueError(f"ids must be a (B, {self.max_length}) integer tensor, got {tuple(ids.shape)}.")
        mask = ids != 0 if mask is None else mask.bool()  # (B, L), True on real tokens
        h = self.token_embedding(ids) + self.position_embedding  # (B, L, D)
        h = self.transformer(h, src_key_padding_mask=~mask)  # (B, L, D)
        return self.final_norm(h)  # (B, L, D)

    @staticmethod
    def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The state at each sequence's last real token (``<eos>``), as CLIP pools: ``(B, D)``."""
        last = mask.long().sum(1) - 1  # (B,)
        return states[torch.arange(states.shape[0], device=states.device), last]  # (B, D)
