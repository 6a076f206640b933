"""Checkers for notebook 07, diffusion transformers (DiT).

Exercises: cutting an image into patch tokens (``patchify``), adaLN's ``modulate``, and the
adaLN-Zero block's forward pass; plus questions on how the patch size sets the attention cost and
on why the gates start at zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...models.dit import DiTBlock, modulate, patchify
from .core import CheckResult, ask_choice, check_cases

# --- Exercise 1: patchify -----------------------------------------------------------------------


def _patch_slips(x: torch.Tensor, p: int) -> list[tuple[torch.Tensor, str]]:
    """What the usual mistakes return for ``x (B, C, H, W)`` and patch size ``p``."""
    b, c, h, w = x.shape
    n, d = (h // p) * (w // p), p * p * c
    blocks = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, rows, p, cols, p)
    return [
        (blocks.permute(0, 2, 4, 1, 3, 5).reshape(b, n, d),
         "Each patch is flattened with the channel LAST, in (row in patch, column in patch, channel) order; "
         "yours puts the channel first (F.unfold does that too). Permute to (B, rows, cols, p, p, C)."),
        (blocks.permute(0, 4, 2, 3, 5, 1).reshape(b, n, d),
         "The patches go column by column; they must go row by row: token i * (W/p) + j is the patch in "
         "row i, column j, the order in which you read a page."),
        (blocks.permute(0, 2, 4, 5, 3, 1).reshape(b, n, d),
         "Inside each patch, rows and columns are swapped: flatten a patch row by row, like the image."),
        (x.reshape(b, n, d),
         "A plain reshape cuts the image into runs of consecutive pixels, not square patches. Split H into "
         "(H/p, p) and W into (W/p, p), permute, then flatten."),
    ]


def _patch_cases():
    g = torch.Generator().manual_seed(7)
    cases = []
    for shape, p in (((2, 3, 4, 4), 2), ((1, 2, 6, 6), 3), ((2, 1, 8, 8), 4), ((1, 2, 4, 8), 2)):
        x = torch.randn(shape, generator=g)
        cases.append(((x.clone(), p), patchify(x, p), _patch_slips(x, p)))
    return cases


def check_patchify(fn: Callable) -> CheckResult:
    """``fn(x, p)``: ``(B, C, H, W)`` -> ``(B, (H/p)(W/p), p*p*C)`` tokens, as ``models.dit.patchify``."""
    return check_cases("Exercise 1 (patchify)", fn, _patch_cases(), atol=0, rtol=0,
                       hint="Tokens (B, N, p*p*C): patches row by row, each flattened as (row, column, channel).")


# --- Exercise 2: modulate -----------------------------------------------------------------------

_BROADCAST_HINT = ("shift and scale hold one vector per example, shape (B, D), while x is (B, N, D): give them a "
                   "token axis, shift[:, None], so that every token of an example gets the same shift and scale.")


def _broadcast_hint(fn: Callable) -> Callable:
    """``fn`` with a shape error explained: the per-example vectors need a token axis."""

    def wrapped(*args):
        try:
            return fn(*args)
        except RuntimeError as err:
            if "must match the size" in str(err) or "cannot be broadcast" in str(err):
                raise RuntimeError(f"{err}. {_BROADCAST_HINT}") from err
            raise  # NotImplementedError (a RuntimeError) included: it means "not attempted"

    return wrapped


def _modulate_cases():
    g = torch.Generator().manual_seed(3)
    cases = []
    for b, n, d in ((2, 5, 8), (3, 4, 6)):  # B != N, so a missing token axis cannot broadcast by luck
        x, shift, scale = (torch.randn(shape, generator=g) for shape in ((b, n, d), (b, d), (b, d)))
        slips = [(x * scale[:, None] + shift[:, None],
                  "Scale by (1 + scale), not by scale: the network regresses the change from 1, so a zero "
                  "output leaves x as it is."),
                 (x * (1 + shift[:, None]) + scale[:, None], "shift and scale are swapped: x * (1 + scale) + shift."),
                 ((x + shift[:, None]) * (1 + scale[:, None]), "Scale first, then shift: x * (1 + scale) + shift."),
                 (x * (1 + scale[:, None]), "Add the shift too.")]
        cases.append(((x.clone(), shift.clone(), scale.clone()), modulate(x, shift, scale), slips))
    return cases


def check_modulate(fn: Callable) -> CheckResult:
    """``fn(x, shift, scale)``: ``x (B, N, D)``, ``shift, scale (B, D)`` -> ``x * (1 + scale) + shift``."""
    return check_cases("Exercise 2 (modulate)", _broadcast_hint(fn), _modulate_cases(), atol=1e-6, rtol=1e-6,
                       hint="x * (1 + scale) + shift, with one shift and scale per example for all its tokens.")


# --- Exercise 3: the adaLN-Zero block -------------------------------------------------------------


def trained_looking_block(dim: int = 16, heads: int = 2, seed: int = 0) -> DiTBlock:
    """A ``DiTBlock`` whose zero-initialised modulation has random weights, as after some training
    (a fresh block is the identity, which would hide almost every mistake)."""
    torch.manual_seed(seed)
    block = DiTBlock(dim, heads)
    nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.3)
    nn.init.normal_(block.adaLN_modulation[-1].bias, std=0.3)
    return block.eval()


def _block_slips(block: DiTBlock, x: torch.Tensor, c: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    sh1, sc1, g1, sh2, sc2, g2 = (v[:, None] for v in block.adaLN_modulation(c).chunk(6, dim=1))  # 6 x (B, 1, D)
    attn, mlp, n1, n2 = block.attn, block.mlp, block.norm1, block.norm2

    def two_steps(f1, f2):
        h = f1(x)
        return f2(h)

    return [
        (two_steps(lambda h: h + attn(n1(h) * (1 + sc1) + sh1), lambda h: h + mlp(n2(h) * (1 + sc2) + sh2)),
         "Multiply each sub-layer's output by its gate before adding it to x: x + gate * attn(...). The gates "
         "are what make a fresh block the identity."),
        (two_steps(lambda h: g1 * (h + attn(n1(h) * (1 + sc1) + sh1)),
                   lambda h: g2 * (h + mlp(n2(h) * (1 + sc2) + sh2))),
         "The gate scales only the sub-layer's output; the residual x passes through untouched: "
         "x + gate * attn(...)."),
        (two_steps(lambda h: h + g1 * attn(n1(h) * sc1 + sh1), lambda h: h + g2 * mlp(n2(h) * sc2 + sh2)),
         "modulate uses (1 + scale), not scale."),
        (two_steps(lambda h: h + g1 * attn(n1(h) * (1 + sh1) + sc1), lambda h: h + g2 * mlp(n2(h) * (1 + sh2) + sc2)),
         "The six vectors come out as shift, scale, gate (attention), then shift, scale, gate (MLP): "
         "you swapped shift and scale."),
        (two_steps(lambda h: h + g1 * attn(n1(h) * (1 + sc1) + sh1), lambda h: h + g1 * mlp(n2(h) * (1 + sc1) + sh1)),
         "Each sub-layer has its own shift, scale and gate: the first three vectors are the attention's, "
         "the last three the MLP's."),
        (two_steps(lambda h: h + g1 * attn(h * (1 + sc1) + sh1), lambda h: h + g2 * mlp(h * (1 + sc2) + sh2)),
         "Normalise first (block.norm1, block.norm2), then modulate the normalised tokens."),
        (x + g1 * attn(n1(x) * (1 + sc1) + sh1) + g2 * mlp(n2(x) * (1 + sc2) + sh2),
         "The MLP reads the output of the attention step, not the block's input: update x, then run the MLP on it."),
    ]


def _block_cases():
    cases = []
    for seed, (b, n) in ((0, (2, 5)), (1, (3, 4))):
        block = trained_looking_block(seed=seed)
        g = torch.Generator().manual_seed(10 + seed)
        x, c = torch.randn(b, n, 16, generator=g), torch.randn(b, 16, generator=g)
        with torch.no_grad():
            cases.append(((block, x.clone(), c.clone()), block(x, c), _block_slips(block, x, c)))
    return cases


def check_adaln_zero_block(fn: Callable) -> CheckResult:
    """``fn(block, x, c)`` must compute ``DiTBlock.forward``: ``x (B, N, D)``, ``c (B, D)`` -> ``(B, N, D)``."""

    def no_grad(*args):
        with torch.no_grad():
            return fn(*args)

    return check_cases("Exercise 3 (the adaLN-Zero block)", _broadcast_hint(no_grad), _block_cases(),
                       atol=1e-5, rtol=1e-5,
                       hint="shift1, scale1, gate1, shift2, scale2, gate2 = block.adaLN_modulation(c).chunk(6, dim=1); "
                            "x = x + gate1 * attn(modulate(norm1(x), shift1, scale1)), then the same with the MLP "
                            "(each (B, D) vector with a token axis added).")


# --- Questions ------------------------------------------------------------------------------------

PATCH_OPTIONS = [
    "4x the tokens, 16x the attention cost",
    "2x the tokens, 4x the attention cost",
    "4x the tokens, 4x the attention cost",
    "the same number of tokens, each 4x smaller, so the same cost",
]


def patch_question():
    return ask_choice(
        "Question A (halving the patch size)",
        "A DiT on 16x16 images goes from 4x4 patches to 2x2 patches. What happens to the number of tokens "
        "N and to the cost of self-attention (every token compared with every token)?",
        PATCH_OPTIONS, PATCH_OPTIONS[0],
        explanation="N = (16/p)^2: halving p doubles the patches along each side, so N goes from 16 to 64. "
                    "Attention compares all N^2 pairs: 256 -> 4,096, sixteen times the work for the same image.",
        hints={PATCH_OPTIONS[1]: "The patch shrinks in height AND in width: count the patches along each side.",
               PATCH_OPTIONS[2]: "Attention compares every token with every other one: its cost grows as N^2.",
               PATCH_OPTIONS[3]: "The number of tokens is (16/p)^2; each token is one patch."})


ZERO_OPTIONS = [
    "each block starts as the identity; its contribution grows from zero as it learns",
    "zero gates block every gradient, so the blocks never change and only the final layer trains",
    "it makes the model smaller: zero weights need no memory",
    "it removes the timestep and the label from the network until the end of training",
]


def zero_init_question():
    return ask_choice(
        "Question B (why the gates start at zero)",
        "DiT initialises the layer that regresses shift, scale and gate to zero. Why does that help?",
        ZERO_OPTIONS, ZERO_OPTIONS[0],
        explanation="With gate = 0 each block returns its input exactly, so at step 0 the whole stack is "
                    "the identity and the signal reaches the output undistorted. The gates still receive "
                    "gradient (a gate's gradient is the sub-layer's output, which is not zero), so they "
                    "open within a few steps, as the notebook measured.",
        hints={ZERO_OPTIONS[1]: "Look at the table above: after two steps the gates have gradient, and after "
                                "three, every layer does.",
               ZERO_OPTIONS[2]: "The weights exist and take memory whatever their value; they are only "
                                "initialised at zero.",
               ZERO_OPTIONS[3]: "Only at initialisation: the modulation layer learns from the first steps, "
                                "and the conditioning flows through it from then on."})


__all__ = ["PATCH_OPTIONS", "ZERO_OPTIONS", "check_adaln_zero_block", "check_modulate", "check_patchify",
           "patch_question", "trained_looking_block", "zero_init_question"]
