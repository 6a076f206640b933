"""Training a text-conditioned U-Net with a frozen text encoder, the way Stable Diffusion does.

The text encoder (our tiny CLIP's) is frozen, so each caption's token states never change
during training: they are computed once, kept in a table, and looked up by caption index. The
last row of the table is the empty prompt, which is what caption dropout swaps in, so the one
network learns both ``eps(x_t, t, text)`` and ``eps(x_t, t, "")`` for classifier-free guidance.
At sampling time nothing is looked up: any prompt the tokenizer accepts is encoded and passed
as ``encoder_hidden_states`` (see ``pipeline.DiffusionModel.sample(prompts=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .unet import UNet


@dataclass(frozen=True)
class CaptionTable:
    """What ``train`` reads from ``model.config``: ``num_classes`` captions, index ``num_classes`` = empty prompt."""

    num_classes: int


class CaptionConditionedUNet(nn.Module):
    """``model(x_t, t, class_labels=caption_index)`` -> ``unet(x_t, t, encoder_hidden_states=table[index])``.

    Args:
        unet: a U-Net with ``context_dim`` set.
        states: ``(K + 1, L, D)`` token states of K captions and, last, of the empty prompt.
        masks: ``(K + 1, L)`` their attention masks.
    """

    def __init__(self, unet: UNet, states: torch.Tensor, masks: torch.Tensor):
        super().__init__()
        if unet.config.context_dim is None or states.shape[-1] != unet.config.context_dim:
            raise ValueError(f"the U-Net's context_dim ({unet.config.context_dim}) must equal the text states' "
                             f"width ({states.shape[-1]}).")
        if states.ndim != 3 or masks.shape != states.shape[:2]:
            raise ValueError(f"states must be (K+1, L, D) and masks (K+1, L); got {tuple(states.shape)} and "
                             f"{tuple(masks.shape)}.")
        self.unet = unet
        self.register_buffer("states", states.detach().clone())
        self.register_buffer("masks", masks.detach().bool().clone())
        self.config = CaptionTable(num_classes=states.shape[0] - 1)

    def forward(self, x: torch.Tensor, t, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if class_labels is None:
            class_labels = torch.full((x.shape[0],), self.config.num_classes, device=x.device, dtype=torch.long)
        return self.unet(x, t, encoder_hidden_states=self.states[class_labels],  # (B, L, D)
                         encoder_attention_mask=self.masks[class_labels])  # (B, L)


@torch.no_grad()
def caption_table(clip, captions: list[str]) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique captions, each caption's index into them, and the table (states, masks) with the empty prompt last."""
    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    states, masks = clip.token_states(unique + [""])  # (K + 1, L, D), (K + 1, L)
    return unique, torch.tensor([index[c] for c in captions]), states.cpu(), masks.cpu()
