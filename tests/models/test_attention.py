"""course_utils.models.attention: multi-head attention, and the self- and cross-attention layers of the U-Net."""

import pytest
import torch

from course_utils.models.attention import CrossAttention2d, SelfAttention2d, attend
from tests.helpers import random_weights


def by_hand(q, k, v, heads, mask=None):
    """softmax(q_h k_h^T / sqrt(d)) v_h for each head h (channels split in ``heads`` equal slices), concatenated."""
    outs, weights = [], []
    for qh, kh, vh in zip(q.chunk(heads, -1), k.chunk(heads, -1), v.chunk(heads, -1)):
        scores = qh @ kh.transpose(1, 2) / qh.shape[-1] ** 0.5  # (B, N, L)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        w = scores.softmax(-1)
        outs.append(w @ vh)
        weights.append(w)
    return torch.cat(outs, -1), torch.stack(weights, 1)  # (B, N, C), (B, heads, N, L)


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, 8, generator=g), torch.randn(2, 3, 8, generator=g), torch.randn(2, 3, 8, generator=g)


@pytest.mark.parametrize("keep", [False, True])  # the fused kernel, and the explicit path that keeps the weights
def test_attend_is_the_softmax_formula_per_head(qkv, keep):
    q, k, v = qkv
    out, weights = attend(q, k, v, num_heads=2, keep=keep)
    expected, expected_weights = by_hand(q, k, v, 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if keep:
        torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    else:
        assert weights is None


@pytest.mark.parametrize("keep", [False, True])
def test_masked_keys_get_no_weight_and_do_not_change_the_output(qkv, keep):
    q, k, v = qkv
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out, weights = attend(q, k, v, num_heads=2, mask=mask, keep=keep)
    torch.testing.assert_close(out, by_hand(q, k, v, 2, mask)[0], atol=1e-5, rtol=1e-5)
    garbage = v.clone()
    garbage[~mask] = 1e3  # values behind the mask
    torch.testing.assert_close(attend(q, k, garbage, num_heads=2, mask=mask, keep=keep)[0], out, atol=1e-5, rtol=1e-5)
    if keep:
        assert weights[~mask[:, None, None, :].expand_as(weights)].abs().max() == 0
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))  # each query's weights: a distribution


def test_both_layers_start_as_the_identity():
    # The output projection is zero-initialised, so the residual x + proj(...) is x itself.
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(SelfAttention2d(8, 2, 4)(x), x)
    assert torch.equal(CrossAttention2d(8, 6, 2, 4)(x, torch.randn(2, 3, 6)), x)


def test_self_attention_sees_no_positions():
    # Nothing in the layer knows where a pixel is (GroupNorm pools over all of them, attention is a set
    # operation), so shuffling the pixels shuffles the output the same way.
    torch.manual_seed(0)
    layer = random_weights(SelfAttention2d(8, 2, 4)).eval()
    x = torch.randn(2, 8, 4, 4)
    perm = torch.randperm(16)
    shuffle = lambda im: im.flatten(2)[:, :, perm].reshape(im.shape)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(layer(shuffle(x)), shuffle(layer(x)), atol=1e-5, rtol=1e-5)


def test_stored_attention_maps_have_one_row_per_pixel():
    torch.manual_seed(0)
    self_attn, cross = random_weights(SelfAttention2d(8, 2, 4)), random_weights(CrossAttention2d(8, 6, 2, 4))
    self_attn.store_attention = cross.store_attention = True
    x, context = torch.randn(2, 8, 4, 4), torch.randn(2, 3, 6)
    self_attn(x)
    cross(x, context, torch.tensor([[True, True, True], [True, True, False]]))
    assert self_attn.last_attention.shape == (2, 2, 16, 16)  # (B, heads, HW, HW)
    assert cross.last_attention.shape == (2, 2, 16, 3)  # (B, heads, HW, L)
    assert cross.last_attention[1, :, :, 2].abs().max() == 0  # the masked token


def test_heads_must_divide_the_channels():
    with pytest.raises(ValueError, match=r"channels \(8\) must be divisible by num_heads \(3\)"):
        SelfAttention2d(8, 3, 4)
    with pytest.raises(ValueError, match=r"channels \(8\) must be divisible by num_heads \(3\)"):
        CrossAttention2d(8, 6, 3, 4)
