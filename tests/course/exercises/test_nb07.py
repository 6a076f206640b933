"""course_utils.course.exercises.nb07: the DiT checkers (patchify, modulate, adaLN-Zero block) and the questions."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.course.exercises import ExerciseFailed, nb07
from course_utils.models.dit import modulate, patchify


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


def reference_block(block, x, c):
    sh1, sc1, g1, sh2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=1)
    x = x + g1[:, None] * block.attn(modulate(block.norm1(x), sh1, sc1))
    return x + g2[:, None] * block.mlp(modulate(block.norm2(x), sh2, sc2))


def test_adaln_zero_block_checker(stub):
    assert nb07.check_adaln_zero_block(reference_block).correct
    assert nb07.check_adaln_zero_block(lambda blk, x, c: blk(x, c)).correct
    assert nb07.check_adaln_zero_block(stub).status == "not attempted"

    def ungated(block, x, c):
        sh1, sc1, _, sh2, sc2, _ = block.adaLN_modulation(c).chunk(6, dim=1)
        x = x + block.attn(modulate(block.norm1(x), sh1, sc1))
        return x + block.mlp(modulate(block.norm2(x), sh2, sc2))

    def shared(block, x, c):
        sh1, sc1, g1, *_ = block.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1[:, None] * block.attn(modulate(block.norm1(x), sh1, sc1))
        return x + g1[:, None] * block.mlp(modulate(block.norm2(x), sh1, sc1))

    def parallel(block, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=1)
        return (x + g1[:, None] * block.attn(modulate(block.norm1(x), sh1, sc1))
                + g2[:, None] * block.mlp(modulate(block.norm2(x), sh2, sc2)))

    def unnormed(block, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1[:, None] * block.attn(modulate(x, sh1, sc1))
        return x + g2[:, None] * block.mlp(modulate(x, sh2, sc2))

    for fn, words in ((ungated, "by its gate"), (shared, "its own shift"), (parallel, "output of the attention"),
                      (unnormed, "Normalise first")):
        result = nb07.check_adaln_zero_block(fn)
        assert result.status == "incorrect" and words in result.message, (fn.__name__, result.message)
    missing_axis = nb07.check_adaln_zero_block(
        lambda blk, x, c: x + blk.adaLN_modulation(c).chunk(6, dim=1)[2] * blk.attn(blk.norm1(x)))
    assert "token axis" in missing_axis.message


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
def test_questions():
    for make, options in ((nb07.patch_question, nb07.PATCH_OPTIONS), (nb07.zero_init_question, nb07.ZERO_OPTIONS)):
        box = make()
        assert box.result.status == "not attempted"
        box.field.value = options[0]
        box.check()
        assert box.result.status == "correct"
        for wrong in options[1:]:
            box.field.value = wrong
            box.check()
            assert box.result.status == "incorrect" and "think again" not in box.result.message  # each has a hint
