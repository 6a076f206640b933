"""Training and scoring the digit classifier (the network: ``models.digit_classifier``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.digit_classifier import FEATURE_DIM, DigitClassifier
from ..training.fit import fit

__all__ = ["FEATURE_DIM", "DigitClassifier", "accuracy", "train_digit_classifier"]

def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random shift of up to one pixel (one shift for the whole batch, a new one each batch), so the
    classifier does not rely on exact placement."""
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

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        return F.cross_entropy(model(_augment(images[idx], g)), labels[idx], label_smoothing=0.05)

    fit(model, batch_loss, opt, steps, scheduler=sched)
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (model(images).argmax(1) == labels).float().mean().item()
