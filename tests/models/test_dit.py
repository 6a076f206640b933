"""course_utils.models.dit: the Diffusion Transformer's patch maths, adaLN-Zero, position embeddings, shapes, errors."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import load_digits
from course_utils.models import DIT_PRESETS, DiT, DiTConfig, get_dit_config
from course_utils.models.dit import DiTBlock, get_2d_sincos_pos_embed, patchify, sequence_length, unpatchify
from course_utils.schedules import get_schedule
from course_utils.training import simple_loss

TINY = DiTConfig(hidden_size=32, depth=2, num_heads=2, num_classes=10)


def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the zero-initialised (adaLN-Zero, final) layers random weights, as training would."""
    torch.manual_seed(seed)
    for name, param in model.named_parameters():
        if "adaLN_modulation" in name or "final_layer.linear" in name:
            nn.init.normal_(param, std=0.1)
    return model


@pytest.mark.parametrize("c, side, p", [(1, 16, 2), (3, 8, 4), (4, 8, 1), (2, 6, 3), (1, 4, 4)])
def test_patchify_and_unpatchify_are_inverses(c, side, p):
    x = torch.randn(2, c, side, side)
    tokens = patchify(x, p)
    assert tokens.shape == (2, (side // p) ** 2, p * p * c) == (2, sequence_length(side, p), p * p * c)
    assert torch.equal(unpatchify(tokens, p, c, side), x)
    t = torch.randn_like(tokens)
    assert torch.equal(patchify(unpatchify(t, p, c, side), p), t)


def test_patch_ordering_by_hand():
    # A 1x2x4x4 image whose pixel (c, i, j) holds 100 c + 10 i + j; p = 2 gives 4 tokens of 8.
    c, i, j = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij")
    x = (100 * c + 10 * i + j).float()[None]  # (1, 2, 4, 4)
    tokens = patchify(x, 2)[0]  # (4, 8)
    # Token 1 is the patch at row 0, column 1 (rows 0-1, columns 2-3), flattened (row, column, channel):
    # (0,2,c0) (0,2,c1) (0,3,c0) (0,3,c1) (1,2,c0) (1,2,c1) (1,3,c0) (1,3,c1).
    assert tokens[1].tolist() == [2, 102, 3, 103, 12, 112, 13, 113]
    assert tokens[2, :2].tolist() == [20, 120]  # token 2: row 1 of patches, column 0: pixel (2, 0)
    # DiT's own unpatchify (models.py): reshape to (B, h, w, p, q, C), einsum "nhwpqc->nchpwq".
    dit = torch.einsum("nhwpqc->nchpwq", patchify(x, 2).reshape(1, 2, 2, 2, 2, 2)).reshape(1, 2, 4, 4)
    assert torch.equal(dit, x)


def test_patch_embedding_conv_is_a_linear_map_of_patchify():
    model = DiT(DiTConfig(in_channels=3, patch_size=4, hidden_size=32, depth=1))
    conv = model.x_embedder
    x = torch.randn(2, 3, 16, 16)
    # conv weight (D, C, p, p) -> (D, p, p, C) -> (D, p*p*C): the (p, p, C) order of patchify.
    weight = conv.weight.permute(0, 2, 3, 1).reshape(32, -1)
    linear = F.linear(patchify(x, 4), weight, conv.bias)  # (B, N, D)
    torch.testing.assert_close(conv(x).flatten(2).transpose(1, 2), linear, atol=1e-5, rtol=1e-5)


def test_adaln_zero_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    block = DiTBlock(32, 4)
    x, c = torch.randn(3, 10, 32), torch.randn(3, 32) * 5
    assert torch.equal(block(x, c), x)  # every gate is exactly 0
    perturbed(block)
    assert not torch.allclose(block(x, c), x, atol=1e-3)
    model = DiT(TINY)
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([3, 900]), class_labels=torch.tensor([1, 10]))
    assert torch.equal(out, torch.zeros(2, 1, 16, 16))  # zero-initialised final layer, like the U-Net


@pytest.mark.parametrize("name", list(DIT_PRESETS))
def test_every_preset_gives_the_right_shapes(name):
    cfg = get_dit_config(name)
    model = perturbed(DiT(name))
    x = torch.randn(2, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    assert model.pos_embed.shape == (1, cfg.num_patches, cfg.hidden_size)
    assert model(x, 5).shape == (2, cfg.out_channels or cfg.in_channels, cfg.sample_size, cfg.sample_size)
    if cfg.num_classes:
        assert model(x, torch.tensor([1, 999]), class_labels=torch.tensor([0, cfg.num_classes])).shape == x.shape
    wide = DiT(get_dit_config(name, out_channels=2 * cfg.in_channels, depth=1))  # "learn sigma" style output
    assert wide(x, 0).shape == (2, 2 * cfg.in_channels, cfg.sample_size, cfg.sample_size)


def test_parameter_counts_and_buffer():
    small, base = DiT("dit-digits-s").num_parameters(), DiT("dit-digits-b").num_parameters()
    # Per block 12 D^2 + 9 D for the qkv, proj and MLP (ratio 4) plus 6 D^2 + 6 D for adaLN: 18 D^2 + 15 D.
    # D = 64, depth 4: 298,752 in blocks, ~0.33M in all; D = 96, depth 6: 18 * 96^2 + 15 * 96 = 167,328
    # per block, 1,003,968 in blocks, ~1.06M in all (the 1.11M digits-class U-Net's size).
    assert 0.25e6 < small < 0.4e6 and 1.0e6 < base < 1.1e6 and base > 3 * small
    model = DiT("dit-digits-s")
    assert "pos_embed" not in model.state_dict() and all(p is not model.pos_embed for p in model.parameters())


@pytest.mark.parametrize("grid, dim", [(8, 64), (8, 128), (16, 32), (3, 12)])
def test_position_embedding_matches_diffusers(grid, dim):
    from diffusers.models.embeddings import get_2d_sincos_pos_embed as diffusers_pos_embed

    ours = get_2d_sincos_pos_embed(dim, grid)
    # base_size = grid keeps positions at 0..g-1, as DiT (and diffusers' DiT PatchEmbed) use.
    theirs = diffusers_pos_embed(dim, grid, base_size=grid, output_type="pt").float()
    assert ours.shape == (grid * grid, dim) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    if grid == 16:  # diffusers' default base_size=16 is the same call only for a 16x16 grid
        torch.testing.assert_close(ours, diffusers_pos_embed(dim, grid, output_type="pt").float(), atol=1e-6, rtol=0)
    # Token 1 is (row 0, column 1): sin(1 * w_0) = sin(1) opens the column half, sin(0) the row half.
    assert ours[1, 0].item() == pytest.approx(0.8414709848) and ours[1, dim // 2].item() == 0.0


def test_bad_inputs_name_what_is_accepted():
    cond, uncond = DiT(TINY), DiT(DiTConfig(hidden_size=32, depth=1, num_heads=2))
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16, 16\)"):
        cond(torch.randn(2, 3, 16, 16), 0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16, 16\)"):
        cond(torch.randn(2, 1, 8, 8), 0)
    with pytest.raises(ValueError, match=r"scalar or have shape \(B,\) = \(2,\)"):
        cond(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"unconditional \(num_classes=None\)"):
        uncond(x, 0, class_labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 9\] \(or 10 for the null label\)"):
        cond(x, 0, class_labels=torch.tensor([1, 11]))
    with pytest.raises(ValueError, match=r"\[0, 9\] \(or 10 for the null label\)"):
        cond(x, 0, class_labels=torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="integer tensor"):
        cond(x, 0, class_labels=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="no text conditioning"):
        cond(x, 0, encoder_hidden_states=torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"patch_size 3 must divide sample_size 16; accepted: \[1, 2, 4, 8, 16\]"):
        DiTConfig(patch_size=3)
    with pytest.raises(ValueError, match=r"num_heads 5 must divide hidden_size 48; accepted: \[1, 2, 3, 4, 6, 8, 12"):
        DiTConfig(hidden_size=48, num_heads=5)
    with pytest.raises(ValueError, match="divisible by 4"):
        DiTConfig(hidden_size=30, num_heads=3)
    with pytest.raises(ValueError, match=r"depth must be a positive integer \(>= 1\), got 0"):
        DiTConfig(depth=0)
    with pytest.raises(ValueError, match="mlp_ratio must be > 0"):
        DiTConfig(mlp_ratio=0.0)
    with pytest.raises(ValueError, match=r"Unknown DiT preset 'dit-huge'. Accepted: 'dit-digits-s'"):
        DiT("dit-huge")
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, N, p\*p\*C\) = \(B, 16, 4\)"):
        unpatchify(torch.randn(1, 15, 4), 2, 1, 8)
    with pytest.raises(ValueError, match="divisible by p = 3"):
        patchify(torch.randn(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"accepted: \[1, 2, 3, 6\]"):
        sequence_length(6, 4)


def test_labels_change_the_output_and_positions_matter():
    torch.manual_seed(0)
    model = perturbed(DiT(TINY)).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a, b = model(x, 10, class_labels=torch.tensor([0, 0])), model(x, 10, class_labels=torch.tensor([3, 3]))
        assert (a - b).abs().max() > 1e-3
        torch.testing.assert_close(model(x, 10), model(x, 10, class_labels=torch.tensor([10, 10])))  # None = null
        # Shuffle the 64 patches; a model blind to position would give the shuffled output (equivariance).
        perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
        shuffle = lambda img: unpatchify(patchify(img, 2)[:, perm], 2, 1, 16)  # noqa: E731
        assert (model(shuffle(x), 10) - shuffle(model(x, 10))).abs().max() > 1e-3
        model.pos_embed.zero_()  # without the position embedding it is exactly permutation-equivariant
        torch.testing.assert_close(model(shuffle(x), 10), shuffle(model(x, 10)), atol=1e-5, rtol=1e-5)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = DiT(TINY)
    images, labels = load_digits()
    x0, y = images[:64], labels[:64]
    alpha_bar = get_schedule("linear").alphas_cumprod.float()  # float64 in the schedule, as train() casts it
    g = torch.Generator().manual_seed(0)
    t, noise = torch.randint(0, 1000, (64,), generator=g), torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        first = simple_loss(model, x0, t, noise, alpha_bar, class_labels=y).item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        loss = simple_loss(model, x0, t, noise, alpha_bar, class_labels=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = simple_loss(model, x0, t, noise, alpha_bar, class_labels=y).item()
    # At initialisation the model predicts 0, so the loss is mean(noise^2), about 1.
    assert abs(first - noise.pow(2).mean().item()) < 1e-6 and last < 0.5 * first  # measured: about 0.15-0.2 after 25 steps


def test_dit_drops_into_the_sampling_pipeline_like_the_unet():
    from course_utils.pipeline import DiffusionModel

    pipe = DiffusionModel(perturbed(DiT(TINY)), get_schedule("linear"), info={"conditioning": "class"})
    g = torch.Generator().manual_seed(0)
    for w in (1.0, 3.0):  # w = 1 calls the model directly (text arguments None); w = 3 batches the null label
        assert pipe.sample(2, steps=2, labels=[1, 7], guidance_scale=w, generator=g).shape == (2, 1, 16, 16)


def test_config_round_trip_and_overrides():
    for cfg in DIT_PRESETS.values():
        assert DiTConfig.from_dict(cfg.to_dict()) == cfg
    cfg = get_dit_config("dit-digits-b", patch_size=4)
    assert cfg.patch_size == 4 and cfg.num_patches == 16 and DIT_PRESETS["dit-digits-b"].patch_size == 2
    assert get_dit_config("dit-latent-s").num_patches == 64 == sequence_length(8, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depth = 3  # frozen


class _FixedEmbedding(torch.nn.Module):
    """Stands in for diffusers' CombinedTimestepLabelEmbeddings: returns a given conditioning vector.
    (diffusers' embeds t with downscale_freq_shift=1, DiT's original with 0, so the blocks are
    compared on the same c.)"""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, timestep, class_labels, hidden_dtype=None):
        return self.c


def test_dit_block_matches_diffusers_ada_norm_zero_block():
    # diffusers' DiTTransformer2DModel is built from BasicTransformerBlock(norm_type="ada_norm_zero"):
    # the same adaLN-Zero block with separate q/k/v projections. Copy our weights into it and compare.
    from diffusers.models.attention import BasicTransformerBlock

    torch.manual_seed(0)
    d, heads = 32, 4
    ours = DiTBlock(d, heads)
    for p in ours.parameters():  # non-zero modulation, so that every term of the block is exercised
        torch.nn.init.normal_(p, std=0.1)
    theirs = BasicTransformerBlock(d, heads, d // heads, norm_type="ada_norm_zero", num_embeds_ada_norm=10,
                                   activation_fn="gelu-approximate", attention_bias=True,
                                   norm_elementwise_affine=False, norm_eps=1e-6)
    c = torch.randn(3, d)
    theirs.norm1.emb = _FixedEmbedding(c)
    q, k, v = ours.attn.qkv.weight.chunk(3, dim=0)
    qb, kb, vb = ours.attn.qkv.bias.chunk(3, dim=0)
    pairs = [(theirs.norm1.linear, ours.adaLN_modulation[1]), (theirs.attn1.to_out[0], ours.attn.proj),
             (theirs.ff.net[0].proj, ours.mlp[0]), (theirs.ff.net[2], ours.mlp[2])]
    with torch.no_grad():
        for (lin, w, b) in ((theirs.attn1.to_q, q, qb), (theirs.attn1.to_k, k, kb), (theirs.attn1.to_v, v, vb)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        x = torch.randn(3, 16, d)
        expected = theirs(x, timestep=torch.zeros(3), class_labels=torch.zeros(3, dtype=torch.long))
        torch.testing.assert_close(ours(x, c), expected, atol=1e-5, rtol=1e-5)
