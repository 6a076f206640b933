"""course_utils.course.exercises.nb07: the DiT checkers (patchify, modulate, the build of a DiT) and the questions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.course.exercises import ExerciseFailed, nb07
from course_utils.models.dit import DiT, DiTBlock, FinalLayer, modulate, patchify, unpatchify
from course_utils.models.dit import Attention


def my_patchify(x, p):
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, rows, cols, p, p, C)
    return x.reshape(b, -1, p * p * c)


def test_patchify_checker(stub):
    assert nb07.check_patchify(my_patchify).correct
    assert nb07.check_patchify(patchify).correct
    assert nb07.check_patchify(stub).status == "not attempted"
    unfold = nb07.check_patchify(lambda x, p: F.unfold(x, p, stride=p).transpose(1, 2))  # channel-first patches
    assert unfold.status == "incorrect" and "channel LAST" in unfold.message

    def by_columns(x, p):
        b, c, h, w = x.shape
        return x.reshape(b, c, h // p, p, w // p, p).permute(0, 4, 2, 3, 5, 1).reshape(b, -1, p * p * c)

    assert "row by row" in nb07.check_patchify(by_columns).message
    assert "plain reshape" in nb07.check_patchify(lambda x, p: x.reshape(len(x), -1, p * p * x.shape[1])).message
    assert nb07.check_patchify(lambda x, p: my_patchify(x, p)[:, :, :1]).status == "incorrect"


def test_modulate_checker(stub):
    assert nb07.check_modulate(modulate).correct
    assert nb07.check_modulate(lambda x, sh, sc: x * (1 + sc.unsqueeze(1)) + sh.unsqueeze(1)).correct
    assert nb07.check_modulate(stub).status == "not attempted"
    assert "(1 + scale)" in nb07.check_modulate(lambda x, sh, sc: x * sc[:, None] + sh[:, None]).message
    assert "swapped" in nb07.check_modulate(lambda x, sh, sc: x * (1 + sh[:, None]) + sc[:, None]).message
    assert "Scale first" in nb07.check_modulate(lambda x, sh, sc: (x + sh[:, None]) * (1 + sc[:, None])).message
    no_axis = nb07.check_modulate(lambda x, sh, sc: x * (1 + sc) + sh)  # (B, N, D) * (B, D) cannot broadcast
    assert no_axis.status == "incorrect" and "token axis" in no_axis.message


# --- Exercise 3 (build): written here from the formulas, independently of the notebook ---------------

def my_unpatchify(tokens, p, channels, side):
    b, g = len(tokens), side // p
    x = tokens.reshape(b, g, g, p, p, channels).permute(0, 5, 1, 3, 2, 4)  # (B, C, rows, p, cols, p)
    return x.reshape(b, channels, side, side)


class Block(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.attn = Attention(hidden_size, num_heads)
        hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, hidden_size))
        self.norm1, self.norm2 = (nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6) for _ in range(2))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.zero_init()

    def zero_init(self):
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def vectors(self, c):
        return self.adaLN_modulation(c)[:, None].chunk(6, dim=-1)  # 6 x (B, 1, D)

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.vectors(c)
        x = x + g1 * self.attn(self.norm1(x) * (1 + sc1) + sh1)
        return x + g2 * self.mlp(self.norm2(x) * (1 + sc2) + sh2)


class Head(nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        for layer in (self.linear, self.adaLN_modulation[1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)
        return self.linear(self.norm_final(x) * (1 + scale) + shift)


def check(unpatchify_fn=my_unpatchify, block=Block, head=Head):
    return nb07.check_dit_build(my_patchify, unpatchify_fn, block, head)


def test_build_shows_what_it_grades():
    text = str(nb07.build_dit())
    assert "identity" in text and f"{nb07.MAX_LOSS}" in text and f"{nb07.BUILD_STEPS} steps" in text


def test_assembled_dit_with_the_package_pieces_is_the_package_dit():
    cfg = nb07.TINY_DIT
    pieces = (patchify, unpatchify, DiTBlock, FinalLayer)
    mine, package = nb07.AssembledDiT(cfg, *pieces), DiT(cfg)
    mine.load_state_dict(package.state_dict())
    for p in package.parameters():  # zero layers made random, so that every path counts
        torch.nn.init.normal_(p, std=0.1)
    mine.load_state_dict(package.state_dict())
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([0, 500, 999])
    torch.testing.assert_close(mine(x, t), package(x, t), atol=1e-5, rtol=1e-5)


def test_build_checker_accepts_a_correct_build(stub):
    result = check()
    assert result.correct, result.message
    assert f"package's pieces, which reach {nb07.reference_loss():.4f}" in result.message
    assert nb07.check_dit_build(stub, stub, stub, stub).status == "not attempted"
    assert check(unpatchify_fn=stub).status == "not attempted"


class Ungated(Block):
    def forward(self, x, c):
        sh1, sc1, _, sh2, sc2, _ = self.vectors(c)
        x = x + self.attn(self.norm1(x) * (1 + sc1) + sh1)
        return x + self.mlp(self.norm2(x) * (1 + sc2) + sh2)


class NotZeroed(Block):
    def zero_init(self):
        pass


class ScaleOnly(Block):
    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.vectors(c)
        x = x + g1 * self.attn(self.norm1(x) * sc1 + sh1)
        return x + g2 * self.mlp(self.norm2(x) * sc2 + sh2)


class AffineNorms(Block):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__(hidden_size, num_heads, mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(hidden_size), nn.LayerNorm(hidden_size)


class NoResidual(Block):
    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.vectors(c)
        x = g1 * self.attn(self.norm1(x) * (1 + sc1) + sh1)
        return g2 * self.mlp(self.norm2(x) * (1 + sc2) + sh2)


class InPlace(Block):
    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.vectors(c)
        x = x + g1 * self.attn(self.norm1(x) * (1 + sc1) + sh1)
        x += g2 * self.mlp(self.norm2(x) * (1 + sc2) + sh2)
        return x


class AllZero(Block):  # "Zero" read as: zero every layer of the block
    def zero_init(self):
        for p in self.parameters():
            nn.init.zeros_(p)


class Frozen(Block):  # zero-initialised read as: fixed at zero
    def zero_init(self):
        super().zero_init()
        self.adaLN_modulation.requires_grad_(False)


class HeadNotZeroed(Head):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__(hidden_size, patch_size, out_channels)
        nn.init.normal_(self.linear.weight)


class DetachingHead(Head):  # the unit stages cannot see it; the training run can
    def forward(self, x, c):
        return super().forward(x.detach(), c)


class NoTokenAxis(Block):
    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (B, D), no token axis
        x = x + g1 * self.attn(self.norm1(x) * (1 + sc1) + sh1)
        return x + g2 * self.mlp(self.norm2(x) * (1 + sc2) + sh2)


class GatedResidual(Block):
    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.vectors(c)
        x = g1 * (x + self.attn(self.norm1(x) * (1 + sc1) + sh1))
        return g2 * (x + self.mlp(self.norm2(x) * (1 + sc2) + sh2))


def by_columns(tokens, p, channels, side):
    b, g = len(tokens), side // p
    return tokens.reshape(b, g, g, p, p, channels).permute(0, 5, 2, 3, 1, 4).reshape(b, channels, side, side)


def channel_first(tokens, p, channels, side):
    b, g = len(tokens), side // p
    return tokens.reshape(b, g, g, channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, channels, side, side)


def via_numpy(tokens, p, channels, side):  # right numbers, but no gradient flows back
    return torch.from_numpy(my_unpatchify(tokens.detach(), p, channels, side).numpy().copy())


@pytest.mark.parametrize("kwargs, words", [
    ({"unpatchify_fn": by_columns}, "transposed"),
    ({"unpatchify_fn": channel_first}, "channel comes LAST"),
    ({"unpatchify_fn": lambda t, p, c, s: t.reshape(len(t), c, s, s)}, "plain reshape"),
    ({"block": Ungated}, "by its gate"),
    ({"block": NotZeroed}, "must start at zero"),
    ({"block": ScaleOnly}, "(1 + scale)"),
    ({"block": AffineNorms}, "elementwise_affine=False"),
    ({"block": NoResidual}, "residual connection is missing"),
    ({"block": GatedResidual}, "passes through ungated"),
    ({"block": NoTokenAxis}, "token axis"),
    ({"block": InPlace}, "in-place"),
    ({"block": AllZero}, "still returns its input"),
    ({"block": Frozen}, "not frozen"),
    ({"head": HeadNotZeroed}, "Zero-initialise its linear"),
    ({"unpatchify_fn": via_numpy}, "no gradient flows back through my_unpatchify"),
    ({"head": DetachingHead}, "x_embedder, blocks.0, blocks.1, so they never train: MyFinalLayer cuts"),
], ids=lambda v: v if isinstance(v, str) else next(iter(v.values())).__name__)
def test_build_checker_rejects_wrong_builds(kwargs, words):
    result = check(**kwargs)
    assert result.status == "incorrect" and words in result.message, result.message


def test_trained_looking_block_is_not_the_identity():
    block = nb07.trained_looking_block()
    x, c = torch.randn(2, 5, 16), torch.randn(2, 16)
    with torch.no_grad():
        assert (block(x, c) - x).abs().max() > 0.1


def test_strict_mode_raises_for_a_wrong_answer(monkeypatch, stub):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseFailed):
        nb07.check_modulate(lambda x, sh, sc: x)
    assert nb07.check_patchify(stub).status == "not attempted"  # a stub is never an error


@pytest.mark.widgets
def test_questions(each_option):
    for make, options in ((nb07.patch_question, nb07.PATCH_OPTIONS), (nb07.zero_init_question, nb07.ZERO_OPTIONS)):
        each_option(make(), options[0], options[1:])
