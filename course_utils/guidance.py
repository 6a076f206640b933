"""Classifier-free guidance: one conditional model, two predictions, extrapolated.

    eps = eps_uncond + w * (eps_cond - eps_uncond)

``w`` is diffusers' ``guidance_scale``: ``w = 0`` is the unconditional model, ``w = 1`` the plain
conditional one, ``w > 1`` pushes past it, away from "any image" and towards "this condition"
(Ho & Salimans, 2022, eq. 6, whose ``w`` is ours minus one). The same network gives both
predictions because it was trained with the condition dropped some of the time (a null class
label, or the empty prompt).
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_GUIDANCE_SCALE = 50.0  # far past any useful value; larger ones only produce saturated noise


def check_guidance_scale(guidance_scale) -> float:
    """A finite number in [0, MAX_GUIDANCE_SCALE]; anything else is refused with the accepted range."""
    try:
        if isinstance(guidance_scale, (str, bytes, bool)):
            raise TypeError
        w = float(guidance_scale)
    except (TypeError, ValueError):
        raise TypeError(f"guidance_scale must be a number in [0, {MAX_GUIDANCE_SCALE:g}], "
                        f"got {type(guidance_scale).__name__}.") from None
    if not math.isfinite(w) or not 0.0 <= w <= MAX_GUIDANCE_SCALE:
        raise ValueError(f"guidance_scale must lie in [0, {MAX_GUIDANCE_SCALE:g}] (0: unconditional, 1: conditional, "
                         f"3-7: typical), got {guidance_scale}.")
    return w


def guide(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """The guided prediction ``eps_uncond + w (eps_cond - eps_uncond)``; all ``(B, C, H, W)``."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


class ClassifierFreeGuidance(nn.Module):
    """Wrap a conditional denoiser so that it returns the guided prediction, with its own signature.

    Called like the model, ``cfg(x_t, t, class_labels=..., encoder_hidden_states=...,
    encoder_attention_mask=...)``; it runs the conditional and the unconditional pass as one
    batch of ``2B`` and combines them. The unconditional pass uses the null class label
    (``model.config.num_classes``) or ``null_context`` (the encoding of the empty prompt,
    ``(1, L, D)`` or ``(B, L, D)``, with ``null_mask``).

    Args:
        model: a class- or text-conditional U-Net.
        guidance_scale: ``w`` in [0, 50].
        null_context, null_mask: the unconditional text input, for a text-conditional model.
    """

    def __init__(self, model: nn.Module, guidance_scale: float, null_context: torch.Tensor | None = None,
                 null_mask: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.guidance_scale = check_guidance_scale(guidance_scale)
        self.null_context = null_context
        self.null_mask = null_mask

    @property
    def config(self):
        return self.model.config

    def _null_labels(self, class_labels: torch.Tensor) -> torch.Tensor:
        n = getattr(self.model.config, "num_classes", None)
        if n is None:
            raise ValueError("class_labels were given but the model is not class-conditional (num_classes=None).")
        return torch.full_like(torch.as_tensor(class_labels), n)

    def _null_text(self, context: torch.Tensor, mask: torch.Tensor | None):
        if self.null_context is None:
            raise ValueError("a text-conditional model needs null_context (the encoding of the empty prompt).")
        b = context.shape[0]
        null = self.null_context.to(context.device, context.dtype).expand(b, *self.null_context.shape[1:])
        if null.shape != context.shape:
            raise ValueError(f"null_context must match the prompt encoding's (L, D) = {tuple(context.shape[1:])}, "
                             f"got {tuple(self.null_context.shape[1:])}.")
        null_mask = None
        if mask is not None:
            if self.null_mask is None:
                raise ValueError("encoder_attention_mask was given but null_mask was not.")
            null_mask = self.null_mask.to(mask.device).expand(b, *self.null_mask.shape[1:])
        return null, null_mask

    def _unconditional(self, cond: dict) -> dict:
        """The null condition's keyword arguments for the model, for the given condition's."""
        null = {}
        if cond["class_labels"] is not None:
            null["class_labels"] = self._null_labels(cond["class_labels"])  # (B,)
        if cond["encoder_hidden_states"] is not None:
            context, null_mask = self._null_text(cond["encoder_hidden_states"], cond["encoder_attention_mask"])
            null["encoder_hidden_states"] = context  # (B, L, D)
            if null_mask is not None:
                null["encoder_attention_mask"] = null_mask  # (B, L)
        return null

    def forward(self, x: torch.Tensor, t, class_labels=None, encoder_hidden_states=None,
                encoder_attention_mask=None) -> torch.Tensor:
        if class_labels is None and encoder_hidden_states is None:
            raise ValueError("classifier-free guidance needs a condition: class_labels or encoder_hidden_states.")
        if class_labels is not None:
            class_labels = torch.as_tensor(class_labels, device=x.device)
        cond = {"class_labels": class_labels, "encoder_hidden_states": encoder_hidden_states,
                "encoder_attention_mask": encoder_attention_mask}
        w = self.guidance_scale
        if w == 1.0:  # exactly the conditional model: skip the unconditional pass
            return self.model(x, t, **cond)
        uncond = self._unconditional(cond)
        if w == 0.0:  # exactly the unconditional model: skip the conditional pass
            return self.model(x, t, **uncond)
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        t2 = torch.cat([t.expand(b), t.expand(b)]) if t.ndim <= 1 else t
        both = {k: torch.cat([cond[k], v]) for k, v in uncond.items()}  # each (2B, ...): conditional first
        out = self.model(torch.cat([x, x]), t2, **both)  # (2B, C, H, W)
        eps_cond, eps_uncond = out[:b], out[b:]
        return guide(eps_uncond, eps_cond, w)
