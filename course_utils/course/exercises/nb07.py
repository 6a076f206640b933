"""Checkers for notebook 07, diffusion transformers (DiT).

Exercises: cutting an image into patch tokens (``patchify``), adaLN's ``modulate``, and a build:
the learner's own unpatchify, adaLN-Zero block and final layer, graded piece by piece against the
package's and then as a tiny DiT (``AssembledDiT``) trained on the digits; plus questions on how
the patch size sets the attention cost and on why the gates start at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...data import load_digits
from ...models.dit import DiT, DiTBlock, DiTConfig, FinalLayer, modulate, patchify, unpatchify
from ...schedules import get_schedule
from ...training import TrainConfig, simple_loss, train
from .core import (BuildExercise, CheckResult, Miss, _diagnose, ask_choice, call_learner, check_cases, expect_close,
                   grade_build)

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


# --- Exercise 3 (build): a DiT of your own ------------------------------------------------------
#
# The learner writes my_unpatchify, MyDiTBlock and MyFinalLayer (with my_patchify of Exercise 1);
# AssembledDiT puts them into the package's DiT in place of its own, and the checker grades the
# pieces one by one against the package's, then trains the whole for a fixed number of steps.

TINY_DIT = DiTConfig(patch_size=4, hidden_size=32, depth=2, num_heads=4)  # unconditional: 16 tokens of 4x4 pixels
BUILD_STEPS = 200  # of batch 64: a few seconds on one CPU core
MAX_LOSS = 0.17  # held-out loss to reach: the package's pieces reach 0.140-0.143 (seeds 0-4), blocks that never
# train (a head that detaches its input) 0.26
MAX_RATIO = 1.15  # and at most 15% above the package's pieces on the same budget
_REFERENCE: dict[int, float] = {}  # steps -> the package's pieces' held-out loss, computed once per session


def build_dit(steps: int = BUILD_STEPS) -> BuildExercise:
    """What Exercise 3 grades, shown before the learner starts."""
    return BuildExercise(
        "Exercise 3 (build: a DiT of your own)",
        "my_unpatchify, MyDiTBlock (adaLN-Zero) and MyFinalLayer. With your my_patchify of Exercise 1 and the "
        "package's embeddings they make a DiT, which the checker trains on the digits.",
        ("patches: my_patchify equals the package's patchify, and my_unpatchify inverts it exactly (token "
         "i * W/p + j is the patch in row i, column j; each flattened (row, column, channel)), on random batches",
         "adaLN-Zero at initialisation: a fresh MyDiTBlock returns exactly its input for any conditioning c; its "
         "LayerNorms have no affine parameters; the last Linear of adaLN_modulation is all zeros",
         "the block's arithmetic: with the package's DiTBlock weights loaded (random modulation, as after "
         "training), it gives the package block's output to 1e-5",
         "it can learn: with its modulation made random, a fresh MyDiTBlock is no longer the identity, and a "
         "gradient reaches every parameter, the tokens x and the conditioning c",
         "the head: a fresh MyFinalLayer outputs zeros of shape (B, N, p*p*C); with the package's FinalLayer "
         "weights loaded it gives that layer's output to 1e-5",
         f"outcome: a DiT of your pieces ({TINY_DIT.hidden_size} wide, {TINY_DIT.depth} blocks, "
         f"{TINY_DIT.patch_size}x{TINY_DIT.patch_size} patches) trained {steps} steps of batch 64 with "
         f"training.train reaches a held-out loss below {MAX_LOSS} and at most {MAX_RATIO - 1:.0%} above the "
         "same DiT built from the package's pieces (both printed)"))


class AssembledDiT(DiT):
    """The package's ``DiT`` (patch, timestep and label embeddings, positions, initialisation) built
    around four pieces: ``patchify(x, p)``, ``unpatchify(tokens, p, channels, side)``, a block class
    called as ``block(hidden_size, num_heads, mlp_ratio)`` and a head called as
    ``final_layer(hidden_size, patch_size, out_channels)``. With the package's four it computes
    what ``DiT`` computes; the patch embedding is the conv's weight used as a Linear on tokens."""

    def __init__(self, config: DiTConfig | str, patchify_fn: Callable, unpatchify_fn: Callable, block: type,
                 final_layer: type):
        super().__init__(config)
        cfg, d = self.config, self.config.hidden_size
        self.blocks = nn.ModuleList(block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = final_layer(d, cfg.patch_size, cfg.out_channels or cfg.in_channels)
        self.patchify, self.unpatchify = patchify_fn, unpatchify_fn
        self._init_weights()  # DiT's initialisation, the new pieces included; their zero layers stay zero

    def forward(self, x: torch.Tensor, t, class_labels=None) -> torch.Tensor:
        """``x (B, C, H, W)``, ``t`` int or ``(B,)``, ``class_labels (B,)`` -> ``(B, C_out, H, W)``."""
        cfg = self.config
        p, d = cfg.patch_size, cfg.hidden_size
        c = self._embedding(t, x, class_labels)  # (B, D)
        weight = self.x_embedder.weight.permute(0, 2, 3, 1).reshape(d, -1)  # (D, p*p*C) in patchify's order
        h = F.linear(self.patchify(x, p), weight, self.x_embedder.bias) + self.pos_embed  # (B, N, D)
        for block in self.blocks:
            h = block(h, c)  # (B, N, D)
        h = self.final_layer(h, c)  # (B, N, p*p*C_out)
        return self.unpatchify(h, p, cfg.out_channels or cfg.in_channels, cfg.sample_size)  # (B, C_out, H, W)


def held_out_loss(model: nn.Module) -> float:
    """The simple loss on the held-out digits (``split="test"``), each at two fixed (t, noise) draws
    (seed 0). A model that predicts 0 scores 1."""
    x0 = load_digits(split="test")[0].repeat(2, 1, 1, 1)  # (2 * 360, 1, 16, 16)
    alphas_cumprod = get_schedule("cosine").alphas_cumprod.float()
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, len(alphas_cumprod), (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        return float(simple_loss(model, x0, t, noise, alphas_cumprod))


def assemble_tiny(pieces: Sequence, config: DiTConfig | str = TINY_DIT) -> AssembledDiT:
    """``AssembledDiT(config, *pieces)`` from seed 0, leaving torch's global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AssembledDiT(config, *pieces)


def train_tiny(model: nn.Module, steps: int = BUILD_STEPS):
    """``training.train`` on the training digits: ``steps`` of batch 64, lr 2e-3, seed 0, on the CPU."""
    run_config = TrainConfig(steps=steps, batch_size=64, lr=2e-3, warmup_steps=10, ema_decay=0.0,
                             log_every=max(steps // 20, 1), seed=0)
    return train(model, load_digits(split="train")[0], get_schedule("cosine"), run_config, device="cpu",
                 progress=False)


def reference_loss(steps: int = BUILD_STEPS) -> float:
    """The held-out loss of the tiny DiT built from the package's pieces after ``steps`` (cached)."""
    if steps not in _REFERENCE:
        model = assemble_tiny((patchify, unpatchify, DiTBlock, FinalLayer))
        _REFERENCE[steps] = held_out_loss(train_tiny(model, steps).model)
    return _REFERENCE[steps]


def _unpatch_slips(tokens: torch.Tensor, p: int, c: int, side: int) -> list[tuple[torch.Tensor, str]]:
    """What the usual mistakes in unpatchify return for the package's ``tokens (B, N, p*p*C)``."""
    b, g = len(tokens), side // p
    grid = tokens.reshape(b, g, g, p, p, c)  # (B, rows, cols, p, p, C)
    return [
        (grid.permute(0, 5, 2, 3, 1, 4).reshape(b, c, side, side),
         "Patch rows and columns are transposed: token i * (W/p) + j goes to row i, column j of the patch grid. "
         "The positional embeddings assume that order, so keep it."),
        (tokens.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, side, side),
         "Inside a token the channel comes LAST: read it as (p, p, C), not (C, p, p)."),
        (grid.permute(0, 5, 1, 4, 2, 3).reshape(b, c, side, side),
         "Inside each patch, rows and columns are swapped: a patch is flattened row by row."),
        (tokens.reshape(b, c, side, side),
         "A plain reshape does not undo patchify: reshape to (B, H/p, W/p, p, p, C), permute to "
         "(B, C, H/p, p, W/p, p), then reshape to (B, C, H, W)."),
    ]


def _stage_patches(patchify_fn: Callable, unpatchify_fn: Callable) -> str:
    g = torch.Generator().manual_seed(5)
    for shape, p in (((2, 3, 4, 4), 2), ((1, 2, 6, 6), 3), ((2, 2, 8, 8), 4), ((1, 1, 16, 16), 4)):
        x = torch.randn(shape, generator=g)
        tokens = call_learner(patchify_fn, x.clone(), p)
        expect_close(tokens, patchify(x, p), f"my_patchify(x, {p}) for x of shape {shape}",
                     _diagnose(tokens, _patch_slips(x, p)) or "Redo Exercise 1: its checker names the slip.",
                     atol=0, rtol=0)
        reference = patchify(x, p)
        back = call_learner(unpatchify_fn, reference.clone(), p, shape[1], shape[2])
        expect_close(back, x, f"my_unpatchify(patchify(x, {p}), {p}, {shape[1]}, {shape[2]})",
                     _diagnose(back, _unpatch_slips(reference, p, shape[1], shape[2]))
                     or "It must invert patchify exactly: (B, N, p*p*C) -> (B, C, side, side).", atol=0, rtol=0)
    return "patchify and unpatchify exact on 4 batches"


def _layer_norm_affine(module: nn.Module, what: str) -> None:
    affine = [name for name, m in module.named_modules() if isinstance(m, nn.LayerNorm) and m.elementwise_affine]
    if affine:
        raise Miss(f"{what}'s LayerNorm {', '.join(affine)} {'has' if len(affine) == 1 else 'have'} a scale and "
                   "shift of its own: build it with elementwise_affine=False (and eps=1e-6). In adaLN the scale "
                   "and shift come from c.")


def _modulation(module: nn.Module, what: str, dim: int, vectors: int) -> nn.Linear:
    """The last Linear of ``module.adaLN_modulation``, checked to map ``dim`` to ``vectors * dim``."""
    seq = getattr(module, "adaLN_modulation", None)
    last = seq[-1] if isinstance(seq, nn.Sequential) and len(seq) else None
    if not isinstance(last, nn.Linear) or (last.in_features, last.out_features) != (dim, vectors * dim):
        raise Miss(f"{what} needs self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, {vectors} * D)): "
                   "that name, so that the package's weights load into it, and that shape.")
    return last


def _load(mine: nn.Module, reference: nn.Module, what: str) -> None:
    try:
        mine.load_state_dict(reference.state_dict())
    except RuntimeError as err:
        raise Miss(f"The package's {type(reference).__name__} weights do not load into your {what}: keep the "
                   "given lines and the names attn, mlp, norm1, norm2 (norm_final, linear in the head) and "
                   f"adaLN_modulation. PyTorch says: {str(err).splitlines()[-1].strip()}") from err


def _expect_finite(got, shape: tuple, what: str, axes: str = "(B, N, D)") -> None:
    """``Miss`` unless ``got`` is a finite tensor of ``shape``."""
    if got is None:
        raise Miss(f"{what} is None: did you forget `return`?")
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(shape):
        raise Miss(f"{what} should be a tensor of shape {tuple(shape)} {axes}, got "
                   f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}.")
    if not torch.isfinite(got).all():
        raise Miss(f"{what} contains NaN or inf.")


def _stage_block_init(block: type) -> str:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = call_learner(block, 16, 2)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(3, 5, 16, generator=g)
        _layer_norm_affine(fresh, "MyDiTBlock")
        zero = _modulation(fresh, "MyDiTBlock", 16, 6)
        if zero.weight.any() or (zero.bias is not None and zero.bias.any()):
            raise Miss("adaLN-Zero: the last Linear of adaLN_modulation must start at zero, weight and bias "
                       "(nn.init.zeros_), so that every gate is 0 and a fresh block is the identity.")
        for c in (torch.randn(3, 16, generator=g), torch.zeros(3, 16), 100 * torch.randn(3, 16, generator=g)):
            with torch.no_grad():
                out = call_learner(_broadcast_hint(fresh), x.clone(), c)
            _expect_finite(out, x.shape, "A fresh MyDiTBlock's output")
            if not torch.equal(out, x):
                if not out.any():
                    raise Miss("A fresh block returns zeros, not its input: the residual connection is missing. "
                               "Add each sub-layer's gated output to x, which passes through ungated: "
                               "x = x + gate * attn(...).")
                raise Miss("A fresh block must return exactly its input, and yours does not: multiply each "
                           "sub-layer's output by its gate before adding it to x (x + gate1 * attn(...)); the "
                           "zero gates are what make the block the identity.")
    return "a fresh block is exactly the identity"


def _stage_block_parity(block: type) -> str:
    with torch.random.fork_rng(devices=[]):
        for seed, (b, n) in ((0, (2, 5)), (1, (3, 4))):
            reference = trained_looking_block(seed=seed)
            mine = call_learner(block, 16, 2)
            _load(mine, reference, "MyDiTBlock")
            mine.eval()
            g = torch.Generator().manual_seed(10 + seed)
            x, c = torch.randn(b, n, 16, generator=g), torch.randn(b, 16, generator=g)
            with torch.no_grad():
                got, expected = call_learner(_broadcast_hint(mine), x.clone(), c.clone()), reference(x, c)
                hint = _diagnose(got, _block_slips(reference, x, c))
            expect_close(got, expected, "MyDiTBlock with the package's weights", hint or (
                "shift1, scale1, gate1, shift2, scale2, gate2 = adaLN_modulation(c).chunk(6, dim=1); "
                "x = x + gate1 * attn(modulate(norm1(x), shift1, scale1)), then the same with the MLP."))
    return "the block matches the package's to 1e-5"


def _stage_block_learns(block: type) -> str:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        mine = call_learner(block, 16, 2)
        with torch.no_grad():
            for prm in _modulation(mine, "MyDiTBlock", 16, 6).parameters():
                prm.normal_(0, 0.3)
        g = torch.Generator().manual_seed(3)
        x = torch.randn(2, 5, 16, generator=g).requires_grad_()
        c = torch.randn(2, 16, generator=g).requires_grad_()
        out = call_learner(_broadcast_hint(mine), x, c)
        if torch.allclose(out, x):
            raise Miss("With random modulation weights your block still returns its input: its sub-layers "
                       "output zero. Zero-initialise only the last Linear of adaLN_modulation, nothing else.")
        try:
            call_learner((out * torch.randn(out.shape, generator=g)).sum().backward)
        except RuntimeError as err:
            if "inplace" in str(err):
                raise Miss("An in-place update (x += ...) overwrites a value the backward pass needs: write "
                           "x = x + gate * ... instead.") from err
            raise
    dead = [name for name, prm in mine.named_parameters() if prm.grad is None or not prm.grad.any()]
    if dead:
        raise Miss(f"No gradient reaches {', '.join(dead)}: zero-initialised is not frozen. Leave requires_grad "
                   "alone, and do not zero-initialise more than the modulation layer.")
    for name, tensor in (("the tokens x", x), ("the conditioning c", c)):
        if tensor.grad is None or not tensor.grad.any():
            raise Miss(f"No gradient reaches {name}: a .detach(), .data or torch.no_grad() in forward cuts it.")
    return "gradients reach every parameter"


def _stage_head(final_layer: type) -> str:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        fresh = call_learner(final_layer, 16, 2, 3)
        _layer_norm_affine(fresh, "MyFinalLayer")
        _modulation(fresh, "MyFinalLayer", 16, 2)
        g = torch.Generator().manual_seed(5)
        x, c = torch.randn(2, 6, 16, generator=g), torch.randn(2, 16, generator=g)
        with torch.no_grad():
            out = call_learner(_broadcast_hint(fresh), x.clone(), c.clone())
        _expect_finite(out, (2, 6, 12), "A fresh MyFinalLayer's output", "(B, N, p*p*C) for p = 2, C = 3")
        expect_close(out, torch.zeros(2, 6, 12), "A fresh MyFinalLayer's output",
                     "Zero-initialise its linear layer (weight and bias) and its adaLN_modulation's Linear: "
                     "a fresh DiT then predicts 0, like the U-Net.", atol=0, rtol=0)
        reference = FinalLayer(16, 2, 3)
        with torch.no_grad():
            for prm in reference.parameters():
                prm.normal_(0, 0.3)
        _load(fresh, reference, "MyFinalLayer")
        with torch.no_grad():
            got, expected = call_learner(_broadcast_hint(fresh), x.clone(), c.clone()), reference(x, c)
            shift, scale = (v[:, None] for v in reference.adaLN_modulation(c).chunk(2, dim=1))
            norm, linear = reference.norm_final, reference.linear
            slips = [(linear(norm(x) * scale + shift), "modulate uses (1 + scale), not scale."),
                     (linear(norm(x) * (1 + shift) + scale), "The two vectors are shift, then scale: you swapped them."),
                     (linear(x * (1 + scale) + shift), "Normalise first (norm_final), then modulate."),
                     (linear(norm(x)), "Modulate the normalised tokens with the shift and scale from c.")]
        expect_close(got, expected, "MyFinalLayer with the package's weights", _diagnose(got, slips) or
                     "shift, scale = adaLN_modulation(c).chunk(2, dim=1); linear(modulate(norm_final(x), shift, scale)).")
    return "the head matches"


def _no_gradient(model: nn.Module) -> list[str]:
    """The parts of ``model`` that one training batch sends no gradient to."""
    x0 = load_digits(split="test")[0][:32]
    alphas_cumprod = get_schedule("cosine").alphas_cumprod.float()
    g = torch.Generator().manual_seed(1)
    model.zero_grad()
    t = torch.randint(0, len(alphas_cumprod), (32,), generator=g)
    simple_loss(model, x0, t, torch.randn(x0.shape, generator=g), alphas_cumprod).backward()
    parts = []
    for name, prm in model.named_parameters():
        part = ".".join(name.split(".")[:2]) if name.startswith("blocks.") else name.split(".")[0]
        if (prm.grad is None or not prm.grad.any()) and part not in parts:
            parts.append(part)
    return parts


def _stage_outcome(pieces: Sequence, steps: int) -> str:
    model = call_learner(assemble_tiny, pieces)
    x = load_digits(split="test")[0][:2]
    if not call_learner(model, x, 500).requires_grad:
        tokens = torch.zeros(1, TINY_DIT.num_patches, TINY_DIT.patch_size ** 2, requires_grad=True)
        where = "my_unpatchify" if not call_learner(pieces[1], tokens, TINY_DIT.patch_size, 1, 16).requires_grad \
            else "MyFinalLayer"
        raise Miss(f"Your DiT cannot learn: no gradient flows back through {where}. Stay in torch (reshape, "
                   "permute): no numpy, .detach(), .data, torch.tensor(...) or torch.no_grad() there.")
    mine = call_learner(lambda: held_out_loss(train_tiny(model, steps).model))
    package = reference_loss(steps)
    figures = (f"held-out loss {mine:.4f} after {steps} steps (to pass: at most {MAX_LOSS} and {MAX_RATIO:g}x the "
               f"package's pieces, which reach {package:.4f})")
    if mine <= MAX_LOSS and mine <= MAX_RATIO * package:
        return figures
    cut = call_learner(_no_gradient, model)
    if cut:
        raise Miss(f"Your DiT reached a {figures}. No gradient reaches {', '.join(cut)}, so they never train: "
                   f"{_cutter(cut, model.config.depth)} cuts the graph (a .detach(), .data or torch.no_grad() "
                   "in its forward).")
    raise Miss(f"Your DiT reached a {figures}. Your pieces pass the unit checks but learn less: compare each "
               "forward with the formulas above.")


def _cutter(cut: list[str], depth: int) -> str:
    """Which piece reads the output of the last part, in forward order, that gets no gradient."""
    chain = ["x_embedder", *(f"blocks.{i}" for i in range(depth)), "final_layer"]
    cut_in_chain = [chain.index(part) for part in cut if part in chain]
    if not cut_in_chain:
        return "a piece that reads the conditioning c"
    return "MyFinalLayer" if chain[max(cut_in_chain) + 1] == "final_layer" else "a MyDiTBlock"


def check_dit_build(patchify_fn: Callable, unpatchify_fn: Callable, block: type, final_layer: type,
                    steps: int = BUILD_STEPS) -> CheckResult:
    """Grade Exercise 3: the four pieces one by one, then a DiT of them trained ``steps`` steps."""
    pieces = (patchify_fn, unpatchify_fn, block, final_layer)
    return grade_build(build_dit(steps), lambda: _stage_patches(patchify_fn, unpatchify_fn),
                       lambda: _stage_block_init(block), lambda: _stage_block_parity(block),
                       lambda: _stage_block_learns(block), lambda: _stage_head(final_layer),
                       lambda: _stage_outcome(pieces, steps))

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


__all__ = ["BUILD_STEPS", "MAX_LOSS", "MAX_RATIO", "PATCH_OPTIONS", "TINY_DIT", "ZERO_OPTIONS", "AssembledDiT",
           "assemble_tiny", "build_dit", "check_dit_build", "check_modulate", "check_patchify", "held_out_loss",
           "patch_question", "reference_loss", "train_tiny", "trained_looking_block", "zero_init_question"]
