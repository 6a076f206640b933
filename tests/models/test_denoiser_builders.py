"""course_utils.models (its __init__): building a denoiser from a preset name, and rebuilding it from a checkpoint."""

import pytest

from course_utils.models import DiT, UNet, architecture_of, build_denoiser, denoiser_from_dict


def test_denoiser_builders():
    assert isinstance(build_denoiser("dit-digits-s"), DiT) and isinstance(build_denoiser("digits-tiny"), UNet)
    with pytest.raises(ValueError, match="'dit-digits-b'"):
        build_denoiser("dit-huge")
    net = build_denoiser("dit-digits-s")
    again = denoiser_from_dict("dit", net.config.to_dict())
    assert isinstance(again, DiT) and again.config == net.config
    with pytest.raises(ValueError, match="Accepted: 'unet', 'dit'"):
        denoiser_from_dict("transformer", {})


@pytest.mark.parametrize("preset, arch", [("digits-tiny", "unet"), ("dit-digits-s", "dit")])
def test_the_architecture_a_checkpoint_records_rebuilds_the_same_network(preset, arch):
    net = build_denoiser(preset)
    assert architecture_of(net) == arch
    again = denoiser_from_dict(architecture_of(net), net.config.to_dict())
    assert type(again) is type(net) and again.config == net.config
    assert again.num_parameters() == net.num_parameters()
