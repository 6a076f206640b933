"""``PatchExplorer``: an image cut into a DiT's patch tokens, and what a patch size costs (notebook 07)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..._validation import as_int, check_images
from ...models.dit import patchify, sequence_length
from ...viz import to_display
from .base import Explorer


class PatchExplorer(Explorer):
    """Pick a patch size; see an image cut into the patch tokens a DiT reads, and what it costs.

    For a square ``H x H`` image and patch size ``p`` (a divisor of ``H``): ``N = (H / p)**2``
    tokens of ``p * p * C`` numbers each, and self-attention compares ``N**2`` pairs of them.

    Args:
        image: one ``(C, H, H)`` (or ``(1, C, H, H)``) image in [-1, 1], C = 1 or 3.
        patch_size: the starting patch size.
    """

    def __init__(self, image: torch.Tensor, patch_size: int = 2):
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a tensor: one (C, H, H) image in [-1, 1], got {type(image).__name__}.")
        image = image.float()
        image = image[0] if image.ndim == 4 and len(image) == 1 else image
        if image.ndim != 3 or image.shape[0] not in (1, 3) or image.shape[1] != image.shape[2]:
            raise ValueError(f"image must be one square (C, H, H) image with C = 1 or 3, got {tuple(image.shape)}.")
        self.image = check_images(image[None], "image", what="one (C, H, H) image")[0]
        self.side = image.shape[1]
        self.sizes = [p for p in range(1, self.side + 1) if self.side % p == 0]
        patch_size = as_int("patch_size", patch_size, minimum=1)
        if patch_size not in self.sizes:
            raise ValueError(f"patch_size must divide the image side {self.side}; accepted: {self.sizes}.")
        self.slider = widgets.SelectionSlider(options=self.sizes, value=patch_size, description="patch size p",
                                              continuous_update=False, layout=widgets.Layout(width="420px"))
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.slider.observe(self.update, names="value")
        self.widget = widgets.VBox([self.slider, self.info, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Cut the image into patches of the chosen size, recount the cost, then redraw."""
        p = int(self.slider.value)
        self.patch_size = p
        self.tokens = patchify(self.image[None], p)[0]  # (N, p*p*C)
        self.num_tokens = sequence_length(self.side, p)
        self.token_dim = self.tokens.shape[1]
        self.attention_pairs = self.num_tokens ** 2
        rows = "".join(
            f"<tr style='font-weight:{'bold' if q == p else 'normal'}'><td>{q}</td>"
            f"<td>{sequence_length(self.side, q):,}</td><td>{q * q * self.image.shape[0]}</td>"
            f"<td>{sequence_length(self.side, q) ** 2:,}</td></tr>" for q in self.sizes)
        self.info.value = (f"p = {p}: N = ({self.side}/{p})² = <b>{self.num_tokens:,} tokens</b> of {p}×{p}×"
                           f"{self.image.shape[0]} = {self.token_dim} number{'s' if self.token_dim > 1 else ''}; self-attention compares "
                           f"N² = <b>{self.attention_pairs:,}</b> pairs per head and layer."
                           "<table><tr><th>p</th><th>tokens N</th><th>numbers per token</th><th>pairs N²</th></tr>"
                           f"{rows}</table>")
        self._draw()

    def _draw(self) -> None:
        p, n, side = self.patch_size, self.num_tokens, self.side
        self.out.clear_output(wait=True)
        with self.out:
            fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.3]})
            img = to_display(self.image)[0]
            left.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                        extent=(0, side, side, 0), interpolation="nearest")
            for k in range(0, side + 1, p):
                left.axhline(k, color="tab:orange", lw=1.2)
                left.axvline(k, color="tab:orange", lw=1.2)
            if n <= 64:  # number the patches in reading order, the order of the tokens
                for i in range(side // p):
                    for j in range(side // p):
                        left.text(j * p + p / 2, i * p + p / 2, str(i * (side // p) + j), color="tab:orange",
                                  ha="center", va="center", fontsize=max(6, 14 - n // 8))
            left.set(xlabel="pixel column", ylabel="pixel row", title=f"{side}x{side} image, {p}x{p} patches")
            seq = ((self.tokens.clamp(-1, 1) + 1) / 2).numpy()  # (N, p*p*C) in [0, 1]
            right.imshow(seq, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            right.set_xticks(range(0, self.token_dim, max(1, self.token_dim // 8)))
            right.set_yticks(range(0, n, max(1, n // 8)))
            right.set(xlabel=f"number within the token (p·p·C = {self.token_dim})", ylabel="token index",
                      title=f"the sequence: {n} token{'s' if n > 1 else ''} x {self.token_dim} "
                      f"number{'s' if self.token_dim > 1 else ''}")
            fig.suptitle(f"p = {p}: {n} tokens, attention over {self.attention_pairs:,} pairs")
            fig.tight_layout()
            plt.show()
