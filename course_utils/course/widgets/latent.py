"""``LatentExplorer``: images and their VAE latents, one channel at a time (notebook 06)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..._validation import check_images
from ...latent import decode, encode, latent_channel_correlations
from .base import Explorer


class LatentExplorer(Explorer):
    """Step through images and their VAE latents one channel at a time (the course text's
    Exercise 4): the image, its reconstruction, every latent channel, and how the chosen channel
    correlates with the image's brightness and colour channels (each pooled to the latent grid).

    Args:
        vae: an autoencoder from ``course_utils.models.vae`` (e.g. ``pretrained.load("shapes-vae")``).
        images: ``(N, 3, H, W)`` images in [-1, 1].
    """

    def __init__(self, vae, images: torch.Tensor):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a tensor of (N, 3, H, W) RGB images in [-1, 1], got {type(images).__name__}.")
        images = images.float()
        if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ValueError(f"images must be a non-empty (N, 3, H, W) RGB batch, got {tuple(images.shape)}.")
        self.images = check_images(images, what="(N, 3, H, W) RGB images")
        self.latents = encode(vae, images, scaled=False)  # (N, C, h, w), posterior means
        self.reconstructions = decode(vae, self.latents, scaled=False)  # (N, 3, H, W)
        self.index = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                                       continuous_update=False)
        self.channel = widgets.Dropdown(options=list(range(self.latents.shape[1])), value=0, description="channel")
        self.info = widgets.HTML()
        self.out = widgets.Output()
        for w in (self.index, self.channel):
            w.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.index, self.channel]), self.info, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Recompute the chosen channel's map and its correlations, then redraw."""
        i, c = int(self.index.value), int(self.channel.value)
        self.current = self.latents[i, c]  # (h, w)
        self.stats = {k: float(v[c]) for k, v in latent_channel_correlations(self.latents[i:i + 1],
                                                                             self.images[i:i + 1]).items()}
        self.info.value = f"channel {c} of image {i}, correlation with: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in self.stats.items())
        self._draw(i, c)

    def _draw(self, i: int, c: int) -> None:
        self.out.clear_output(wait=True)
        with self.out:
            k = self.latents.shape[1]
            fig, axes = plt.subplots(1, 2 + k, figsize=(2.1 * (2 + k), 2.5))
            for ax, img, title in ((axes[0], self.images[i], "image"), (axes[1], self.reconstructions[i], "decoded")):
                ax.imshow(((img.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_title(title, fontsize=9)
            lim = float(self.latents[i].abs().max())
            for j in range(k):
                axes[2 + j].imshow(self.latents[i, j].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
                axes[2 + j].set_title(f"channel {j}" + (" (chosen)" if j == c else ""), fontsize=9,
                                      fontweight="bold" if j == c else "normal")
            for ax in axes:
                ax.axis("off")
            fig.suptitle(f"image {i}: its latent's {k} channels, {tuple(self.latents.shape[2:])} each "
                         "(red > 0 > blue, one colour scale)", fontsize=9)
            fig.tight_layout()
            plt.show()
