"""course_utils.profiling: FLOP counting and timing for the cost comparisons of notebooks 06 and 07."""

import pytest
import torch

from course_utils.models import UNet
from course_utils.models.vae import VAE, VAEConfig
from course_utils.pipeline import DiffusionModel
from course_utils.profiling import count_flops, sampling_cost, time_call
from course_utils.schedules import get_schedule
from tests.helpers import latent_unet


def test_flops_of_known_layers():
    lin, x = torch.nn.Linear(32, 16, bias=False), torch.randn(8, 32)
    assert count_flops(lambda: lin(x)) == 2 * 8 * 32 * 16  # one multiply-add per weight and example
    conv, img = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.randn(2, 3, 8, 8)
    assert count_flops(lambda: conv(img)) == 2 * 2 * 4 * 8 * 8 * 3 * 3 * 3  # per output: 27 multiply-adds


def test_time_call_is_a_positive_median():
    calls = []
    assert time_call(lambda: calls.append(1), repeats=3, warmup=2) >= 0 and len(calls) == 5
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)


def test_sampling_cost_adds_the_decode_once_per_batch():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(base_channels=8, channel_mults=(1, 2, 2))).eval()
    net = latent_unet()
    latent = DiffusionModel(net, get_schedule("cosine", 100), vae=vae)
    c = sampling_cost(latent, batch=2, steps=5, guided=False, repeats=1)
    step = count_flops(lambda: net(torch.randn(2, 4, 8, 8), 5))
    decode = count_flops(lambda: vae.decode(torch.randn(2, 4, 8, 8)))
    assert c["step_flops"] == step and c["decode_flops"] == decode
    assert c["image_flops"] == pytest.approx((5 * step + decode) / 2)
    assert 0 < c["decode_share"] < 1
    guided = sampling_cost(latent, batch=2, steps=5, guided=True, repeats=1)
    assert guided["step_flops"] == 2 * step  # two passes per image
    pixel = sampling_cost(DiffusionModel(UNet("digits-tiny"), get_schedule("cosine", 100)), batch=2, steps=5, repeats=1)
    assert pixel["decode_flops"] == 0 and pixel["decode_share"] == 0


def test_attention_counts_on_the_cpu_as_on_a_gpu():
    # PyTorch's counter has no formula for the CPU's fused attention kernel; ours adds the GPU kernels' one
    q = k = v = torch.randn(2, 4, 64, 16)  # (B, heads, tokens, head dim)
    got = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert got == 2 * (2 * 2 * 4 * 64 * 64 * 16)  # Q K^T and softmax(.) V: 2 FLOPs per multiply-add each
