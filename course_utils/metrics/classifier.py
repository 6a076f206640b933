"""A small CNN that recognises 16x16 digits; its penultimate features drive digits-FID / KID."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 64


class DigitClassifier(nn.Module):
    """``(B, 1, 16, 16)`` digits in [-1, 1] -> ``(B, 10)`` logits; ``.features`` gives ``(B, 64)``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.SiLU(),  # (B, 32, 16, 16)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64), nn.SiLU(),  # (B, 64, 8, 8)
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.GroupNorm(8, 128), nn.SiLU(),  # (B, 128, 4, 4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 128)
            nn.Linear(128, FEATURE_DIM), nn.SiLU(),  # (B, 64)
        )
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 16, 16):
            raise ValueError(f"expected digits of shape (B, 1, 16, 16), got {tuple(x.shape)}.")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel, so the classifier does not rely on exact placement."""
    b = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=g).tolist()
    return padded[:, :, dy:dy + 16, dx:dx + 16].reshape(b, 1, 16, 16)


def train_digit_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 1500, batch_size: int = 128,
                           seed: int = 0) -> DigitClassifier:
    """Train on ``(N, 1, 16, 16)`` digits with AdamW and shift augmentation (CPU: about a minute)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        loss = F.cross_entropy(model(_augment(images[idx], g)), labels[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (model(images).argmax(1) == labels).float().mean().item()
