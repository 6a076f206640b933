"""Training and scoring the shapes judge (the network and what its heads mean: ``models.shapes_judge``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.shapes_judge import HEADS, NOISE, PICTURE, ShapesJudge
from ..training.fit import fit

__all__ = ["HEADS", "NOISE", "PICTURE", "ShapesJudge", "judge_accuracy", "noise_images", "noise_rejection",
           "train_shapes_judge"]


def _degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Noise (std up to 0.15) and, for half the batch, a 3x3 blur: what imperfect samples look like."""
    b = x.shape[0]
    blur = torch.ones(3, 1, 3, 3) / 9
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), blur, groups=3)
    pick = (torch.rand(b, 1, 1, 1, generator=g) < 0.5).float()
    x = pick * blurred + (1 - pick) * x
    noise_std = 0.15 * torch.rand(b, 1, 1, 1, generator=g)
    return (x + noise_std * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def noise_images(n: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 3, 32, 32)`` images that are not pictures: a third each of uniform noise in [-1, 1] (where
    a pixel search starts), clipped Gaussian noise (std 0.3 to 1) and noise of amplitude 0.5 to 1
    around a random colour. All are far noisier than ``_degrade``'s worst (std 0.15)."""
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=g)
    uniform = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    gauss = (0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=g)) * torch.randn(n, 3, 32, 32, generator=g)
    tint = torch.rand(n, 3, 1, 1, generator=g) * 2 - 1
    tinted = tint + (0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=g)) * uniform.roll(1, 0)
    return torch.where(kind == 0, uniform, torch.where(kind == 1, gauss, tinted)).clamp(-1, 1)


def train_shapes_judge(data, steps: int = 1500, batch_size: int = 128, seed: int = 0) -> ShapesJudge:
    """Train on a ``ShapesDataset`` (images and its three label tensors); CPU: a few minutes."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ShapesJudge()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    targets = {"shape": data.shape, "color": data.color, "background": data.background}
    n_noise = batch_size // 4
    is_picture = torch.cat([torch.full((batch_size,), PICTURE), torch.full((n_noise,), NOISE)])  # (B + B/4,)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        logits = model(torch.cat([_degrade(data.images[idx], g), noise_images(n_noise, g)]))
        loss = F.cross_entropy(logits["picture"], is_picture)  # the attributes: on pictures only
        return loss + sum(F.cross_entropy(logits[k][:batch_size], targets[k][idx]) for k in HEADS)

    fit(model, batch_loss, opt, steps, scheduler=sched)
    return model.eval()


@torch.no_grad()
def judge_accuracy(model: ShapesJudge, data) -> dict[str, float]:
    """Per-attribute accuracy on a ``ShapesDataset`` (``picture``: the fraction called a picture, not
    noise), and ``"all"``: all four right at once."""
    r = model.read(data.images)
    hits = {"shape": r["shape"] == data.shape, "color": r["color"] == data.color,
            "background": r["background"] == data.background, "picture": r["picture"] == PICTURE}
    out = {k: float(v.float().mean()) for k, v in hits.items()}
    out["all"] = float(torch.stack(list(hits.values())).all(0).float().mean())
    return out


@torch.no_grad()
def noise_rejection(model: ShapesJudge, n: int = 2000, seed: int = 1) -> float:
    """The fraction of fresh ``noise_images`` (seed ``seed``) that the judge calls noise."""
    return float((model.read(noise_images(n, torch.Generator().manual_seed(seed)))["picture"] == NOISE).float().mean())
