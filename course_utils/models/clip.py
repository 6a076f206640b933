"""A tiny CLIP for the shapes world, and one scoring interface for it and for a real CLIP.

CLIP (Radford et al., 2021) trains an image encoder and a text encoder so that an image and its
caption land close together on the unit sphere and mismatched pairs far apart (a symmetric
cross-entropy over the batch's similarity matrix). ``TinyCLIP`` does exactly that on the shapes
images and captions. Because many images in a batch share a caption, the targets spread evenly
over every matching caption instead of pretending duplicates are negatives.

``CLIPScorer`` is what notebook 01 optimises against: ``score(images, prompts)`` gives
``100 * cos(image, text)`` per pair, whether the model is our tiny CLIP or a Hugging Face
``CLIPModel`` (real weights in Colab; a small random one, built from a config, in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..training.fit import fit
from .text import TextEncoder, Tokenizer, shapes_tokenizer


class ImageEncoder(nn.Module):
    """``(B, 3, 32, 32)`` in [-1, 1] -> ``(B, dim)`` (not normalised)."""

    def __init__(self, dim: int = 64, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),  # (B, w, 32, 32)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),  # (B, 2w, 16, 16)
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),  # (B, 4w, 8, 8)
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),  # (B, 4w, 4, 4)
            nn.Flatten(), nn.Linear(64 * w, dim),  # (B, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"expected images of shape (B, 3, 32, 32) in [-1, 1], got {tuple(x.shape)}.")
        return self.body(x)


class TinyCLIP(nn.Module):
    """Image and text encoders into one ``embed_dim`` space, with a learned temperature.

    Args:
        tokenizer: defaults to the shapes tokenizer.
        embed_dim: size of the joint space; text_dim / text_layers: the text transformer.
    """

    def __init__(self, tokenizer: Tokenizer | None = None, embed_dim: int = 64, text_dim: int = 64,
                 text_layers: int = 2):
        super().__init__()
        self.tokenizer = tokenizer or shapes_tokenizer()
        self.image_encoder = ImageEncoder(embed_dim)
        self.text_encoder = TextEncoder(len(self.tokenizer), self.tokenizer.max_length, text_dim, text_layers)
        self.text_projection = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 32, 32)`` -> unit vectors ``(B, embed_dim)``."""
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.text_encoder(ids, mask)  # (B, L, text_dim)
        return F.normalize(self.text_projection(TextEncoder.pooled(states, mask)), dim=-1)  # (B, embed_dim)

    def encode_text(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Prompts -> unit vectors ``(B, embed_dim)``."""
        ids, mask = self.tokenizer.encode(prompts)
        device = self.logit_scale.device
        return self.encode_tokens(ids.to(device), mask.to(device))

    def token_states(self, prompts: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token text states ``(B, L, text_dim)`` and mask ``(B, L)``: a U-Net's cross-attention input."""
        ids, mask = self.tokenizer.encode(prompts)
        device = self.logit_scale.device
        ids, mask = ids.to(device), mask.to(device)
        return self.text_encoder(ids, mask), mask

    def forward(self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Similarity logits ``(B_images, B_texts)`` scaled by the learned temperature."""
        return self.logit_scale.exp().clamp(max=100) * self.encode_image(images) @ self.encode_tokens(ids, mask).T


def clip_loss(logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy; ``same (B, B)`` marks pairs that share a caption (all are positives)."""
    target = same.float() / same.float().sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target.T * F.log_softmax(logits.T, 1), 1).mean())


def train_tiny_clip(data, steps: int = 1500, batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> TinyCLIP:
    """Contrastive training on a ``ShapesDataset`` (images and captions); CPU: a few minutes."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TinyCLIP()
    ids, mask = model.tokenizer.encode(data.captions)
    caption_id = torch.unique(ids, dim=0, return_inverse=True)[1]  # (N,) same id = same caption
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        noisy = (data.images[idx] + 0.05 * torch.randn(data.images[idx].shape, generator=g)).clamp(-1, 1)
        return clip_loss(model(noisy, ids[idx], mask[idx]), caption_id[idx, None] == caption_id[None, idx])

    fit(model, batch_loss, opt, steps, scheduler=sched)
    return model.eval()


def all_captions() -> list[str]:
    """Every caption the shapes world has: 3 shapes x 6 colours x 5 other backgrounds = 90."""
    from ..data.shapes import COLORS, SHAPES, caption

    return [caption(s, c, b) for s in SHAPES for c in COLORS for b in COLORS if b != c]


@torch.no_grad()
def zero_shot_accuracy(model: TinyCLIP, data) -> float:
    """Fraction of images whose best-scoring caption, among all 90, is their own."""
    captions = all_captions()
    text = model.encode_text(captions)  # (90, E)
    best = (model.encode_image(data.images) @ text.T).argmax(1)  # (N,)
    truth = torch.tensor([captions.index(c) for c in data.captions])
    return float((best == truth).float().mean())


def _projected(features) -> torch.Tensor:
    """transformers < 5 returns the projected features; 5.x returns an output whose pooler_output holds them."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


class CLIPScorer:
    """``score(images, prompts)``: ``100 * cos(image, text)`` per pair, ``(B,)``, differentiable in images.

    Wraps our ``TinyCLIP``, or a Hugging Face ``CLIPModel`` plus its tokenizer (see
    ``from_pretrained``). Images are ``(B, 3, H, W)`` in [-1, 1]; for a real CLIP they are resized
    to its input size and normalised with its mean and std.
    """

    CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
    CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, model, tokenizer=None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.is_tiny = isinstance(model, TinyCLIP)
        if not self.is_tiny and tokenizer is None:
            raise ValueError("a Hugging Face CLIPModel needs its tokenizer: CLIPScorer(model, tokenizer).")

    @classmethod
    def from_pretrained(cls, name: str = "openai/clip-vit-base-patch32") -> "CLIPScorer":
        """A real CLIP from the Hugging Face hub (online only, e.g. in Colab; needs ``transformers``)."""
        from transformers import CLIPModel, CLIPTokenizer

        return cls(CLIPModel.from_pretrained(name), CLIPTokenizer.from_pretrained(name))

    def _image_features(self, images: torch.Tensor) -> torch.Tensor:
        if self.is_tiny:
            return self.model.encode_image(images)
        size = self.model.config.vision_config.image_size
        x = F.interpolate((images + 1) / 2, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.CLIP_STD, device=x.device).view(1, 3, 1, 1)
        return F.normalize(_projected(self.model.get_image_features(pixel_values=(x - mean) / std)), dim=-1)

    def _text_features(self, prompts: list[str], device) -> torch.Tensor:
        if self.is_tiny:
            return self.model.encode_text(prompts)
        tok = self.tokenizer(prompts, padding=True, return_tensors="pt")
        feats = self.model.get_text_features(input_ids=tok["input_ids"].to(device),
                                             attention_mask=tok["attention_mask"].to(device))
        return F.normalize(_projected(feats), dim=-1)

    def score(self, images: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W) in [-1, 1], got {tuple(images.shape)}.")
        prompts = [prompts] * images.shape[0] if isinstance(prompts, str) else list(prompts)
        if len(prompts) != images.shape[0]:
            raise ValueError(f"give one prompt or one per image: {len(prompts)} prompts for {images.shape[0]} images.")
        image = self._image_features(images)  # (B, E)
        text = self._text_features(prompts, images.device)  # (B, E)
        return 100 * (image * text).sum(-1)  # (B,)
