"""The shapes judge: reads which shape, which colour and which background an image shows.

It scores prompt adherence of generated shapes images (does "a red circle on a blue
background" give a red circle on blue?) independently of any CLIP. A small CNN with four heads:
shape, colour, background, and ``picture``, which tells a shapes picture (1) from pixel noise (0).
Trained on ``make_shapes`` images with light noise and blur (generated images are rarely clean)
against several kinds of noise images, and validated on a held-out seed of real images and fresh
noise (its card in the manifest gives the accuracy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.shapes import COLORS, SHAPES, caption

HEADS = {"shape": len(SHAPES), "color": len(COLORS), "background": len(COLORS)}
NOISE, PICTURE = 0, 1  # the two answers of the "picture" head


class ShapesJudge(nn.Module):
    """``(B, 3, 32, 32)`` images in [-1, 1] -> logits ``{"shape": (B, 3), "color": (B, 6), "background": (B, 6),
    "picture": (B, 2)}``; ``picture`` is 1 for a shapes picture, 0 for noise."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),  # (B, w, 32, 32)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),  # (B, 2w, 16, 16)
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),  # (B, 4w, 4, 4)
            nn.Flatten(), nn.Linear(16 * 4 * w, 128), nn.SiLU(),  # (B, 128)
        )
        self.heads = nn.ModuleDict({k: nn.Linear(128, n) for k, n in {**HEADS, "picture": 2}.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"expected shapes images of shape (B, 3, 32, 32), got {tuple(x.shape)}.")
        h = self.body(x)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def read(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The judge's reading: ``(B,)`` integer labels per attribute (indices into SHAPES / COLORS),
        and ``picture``: 1 where it sees a shapes picture, 0 where it sees noise."""
        return {k: v.argmax(1) for k, v in self(x).items()}

    def captions(self, x: torch.Tensor) -> list[str]:
        """What the judge sees, as captions: ``"a red circle on a blue background"``, or ``"noise"``."""
        r = self.read(x)
        names = list(COLORS)
        return [caption(SHAPES[s], names[c], names[b]) if p == PICTURE else "noise"
                for s, c, b, p in zip(r["shape"].tolist(), r["color"].tolist(), r["background"].tolist(),
                                      r["picture"].tolist())]


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
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        logits = model(torch.cat([_degrade(data.images[idx], g), noise_images(n_noise, g)]))
        loss = F.cross_entropy(logits["picture"], is_picture)  # the attributes: on pictures only
        loss = loss + sum(F.cross_entropy(logits[k][:batch_size], targets[k][idx]) for k in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
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
