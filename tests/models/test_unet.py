"""course_utils.models.unet: the U-Net's shapes for every preset, its conditioning hooks and bad input."""

import pytest
import torch

from course_utils.models import UNET_PRESETS, UNet, UNetConfig, get_unet_config


@pytest.mark.parametrize("name", sorted(UNET_PRESETS))
def test_every_preset_maps_a_batch_to_its_own_shape(name):
    cfg = UNET_PRESETS[name]
    model = UNet(name)
    x = torch.randn(2, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    kwargs = {"class_labels": torch.tensor([1, cfg.num_classes])} if cfg.num_classes else {}
    assert model(x, torch.tensor([0, 999]), **kwargs).shape == x.shape
    assert model(x, 5, **kwargs).shape == x.shape  # a scalar timestep is broadcast


def test_output_starts_at_zero_and_depends_on_t_once_trained():
    model = UNet("digits-tiny")
    x = torch.randn(3, 1, 16, 16)
    assert model(x, 10).abs().max() == 0  # zero-initialised output conv
    with torch.no_grad():  # stand-in for training: move every weight off its initial value
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a, b = model(x, torch.tensor([1, 1, 1])), model(x, torch.tensor([900, 900, 900]))
    assert (a - b).abs().max() > 1e-4


def test_skip_connections_ablation_changes_the_architecture():
    with_skips = UNet("digits-small")
    without = UNet(get_unet_config("digits-small", skip_connections=False))
    assert without.num_parameters() < with_skips.num_parameters()
    x = torch.randn(2, 1, 16, 16)
    assert without(x, 3).shape == x.shape


def test_class_labels_change_the_output_and_null_label_is_default():
    model = UNet("digits-class")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 16, 16)
    a = model(x, 5, class_labels=torch.tensor([3, 3]))
    b = model(x, 5, class_labels=torch.tensor([7, 7]))
    assert (a - b).abs().max() > 1e-5
    torch.testing.assert_close(model(x, 5), model(x, 5, class_labels=torch.tensor([10, 10])))


def test_cross_attention_maps():
    cfg = UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2, context_dim=12)
    model = UNet(cfg)
    model.store_attention(True)
    x, ctx = torch.randn(2, 1, 16, 16), torch.randn(2, 5, 12)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    assert model(x, 1, encoder_hidden_states=ctx, encoder_attention_mask=mask).shape == x.shape
    maps = model.cross_attention_maps()
    assert maps and all(m.shape[:2] == (2, 2) and m.shape[-1] == 5 for m in maps)
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones_like(m.sum(-1)))  # softmax rows
        assert m[1, :, :, 3:].abs().max() == 0  # masked tokens get no attention


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: UNet("digits-huge"), "Accepted"),
        (lambda: UNetConfig(sample_size=18, channel_mults=(1, 2, 2)), "divisible by 2"),
        (lambda: UNetConfig(attention_levels=(5,)), "out of range"),
        (lambda: UNetConfig(base_channels=30), "divisible by groups"),
        (lambda: UNetConfig(num_res_blocks=0), ">= 1"),
        (lambda: UNet("digits-tiny")(torch.zeros(2, 3, 16, 16), 1), r"\(B, 1, H, W\)"),
        (lambda: UNet("digits-tiny")(torch.zeros(2, 1, 16, 16), torch.tensor([1, 2, 3])), r"shape \(B,\)"),
        (lambda: UNet("digits-tiny")(torch.zeros(2, 1, 16, 16), 1, class_labels=torch.tensor([1, 2])), "unconditional"),
        (lambda: UNet("digits-class")(torch.zeros(2, 1, 16, 16), 1, class_labels=torch.tensor([1, 11])), r"\[0, 9\]"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
