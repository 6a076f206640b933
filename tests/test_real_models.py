"""course_utils.real_models: four real text-to-image models built from their published configs on the
meta device (no weights, no memory, no download) and measured: the published parameter totals, the
shapes of one generation, FLOPs against published figures, weight memory, and clear errors."""

import copy
import fnmatch
import tomllib
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("transformers")  # the text encoders (the dev extra installs it)

from course_utils.real_models import (NAMES, anatomy, build, components, describe, flops_of,  # noqa: E402
                                      generation_shapes, load_config)
from course_utils.real_models.registry import CONFIG_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The published totals (the model repositories' weights), and what the configs build here.
PUBLISHED = {
    ("sd15", "unet"): 859_520_964, ("sd15", "vae"): 83_653_863, ("sd15", "text_encoder"): 123_060_480,
    ("sdxl", "unet"): 2_567_463_684, ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840, ("sdxl", "vae"): 83_653_863,
    ("dit-xl-2", "transformer"): 749_826_464, ("dit-xl-2", "vae"): 83_653_863,
    ("sd3-medium", "transformer"): 2_028_328_000, ("sd3-medium", "vae"): 83_819_683,
    ("sd3-medium", "text_encoder"): 123_650_304, ("sd3-medium", "text_encoder_2"): 694_659_840,
    ("sd3-medium", "text_encoder_3"): 4_762_310_656,
}


@pytest.fixture(scope="module")
def parts():
    """Every model measured once at its native size (anatomy caches it too)."""
    return {name: anatomy(name) for name in NAMES}


def test_the_configs_build_the_published_parameter_totals(parts):
    assert {(n, c): parts[n][c]["params"] for n in NAMES for c in components(n)} == PUBLISHED


def test_dit_counts_the_papers_675m_once_its_per_block_embedding_copies_are_left_out():
    dit = build("dit-xl-2", "transformer")
    copies = sum(p.numel() for block in dit.transformer_blocks[1:] for p in block.norm1.emb.parameters())
    assert PUBLISHED["dit-xl-2", "transformer"] - copies == 674_834_720  # Peebles & Xie 2023: 675M


@pytest.mark.parametrize("name", NAMES)
def test_every_component_builds_on_meta_without_storage(name):
    for component in components(name):
        module = build(name, component)
        assert type(module).__name__ == load_config(name, component)["_class_name"]
        assert all(p.is_meta for p in module.parameters())
        assert sum(p.numel() for p in module.parameters()) == PUBLISHED[name, component]


def test_blocks_add_up_and_memory_is_bytes_per_parameter(parts):
    for name in NAMES:
        for component, part in parts[name].items():
            assert sum(part["blocks"].values()) == part["params"], (name, component)
            assert part["memory"] == {"fp32": 4 * part["params"], "fp16": 2 * part["params"]}
            assert part["flops"] > 0 and sum(part["flops_by_block"].values()) == part["flops"]
    unet = parts["sd15"]["unet"]["blocks"]
    assert [b for b in unet if b.startswith(("down", "up"))] == [f"down_blocks.{i}" for i in range(4)] + [
        f"up_blocks.{i}" for i in range(4)]
    assert {"encoder", "decoder", "quant_conv", "post_quant_conv"} <= set(parts["sd15"]["vae"]["blocks"])
    text = parts["sdxl"]["text_encoder_2"]["blocks"]
    assert sum(k.endswith(tuple(f"layers.{i}" for i in range(32))) for k in text) == 32


def test_sd15_generation_shapes_are_measured_at_512(parts):
    assert generation_shapes("sd15") == [
        ("text_encoder", "prompt tokens", (1, 77)),
        ("text_encoder", "text embeddings", (1, 77, 768)),
        ("unet", "latent noise", (1, 4, 64, 64)),
        ("unet", "denoiser input: sample", (2, 4, 64, 64)),
        ("unet", "denoiser input: encoder_hidden_states", (2, 77, 768)),
        ("unet", "denoiser output", (2, 4, 64, 64)),
        ("unet", "guided prediction", (1, 4, 64, 64)),
        ("vae", "latent to decode", (1, 4, 64, 64)),
        ("vae", "decoded image", (1, 3, 512, 512)),
    ]
    assert parts["sd15"]["unet"]["shapes"][0] == ("latent noise", (1, 4, 64, 64))


def test_sdxl_dit_and_sd3_shapes(parts):
    sdxl = dict(parts["sdxl"]["text_encoder_2"]["shapes"])
    assert sdxl["text embeddings"] == (1, 77, 2048) and sdxl["pooled text embedding"] == (1, 1280)
    assert dict(parts["sdxl"]["unet"]["shapes"])["latent noise"] == (1, 4, 128, 128)
    assert dict(parts["sdxl"]["vae"]["shapes"])["decoded image"] == (1, 3, 1024, 1024)
    dit = dict(parts["dit-xl-2"]["transformer"]["shapes"])
    assert dit["denoiser output"] == (2, 8, 32, 32) and dit["guided prediction"] == (1, 4, 32, 32)  # learned sigma
    assert dict(parts["dit-xl-2"]["vae"]["shapes"])["decoded image"] == (1, 3, 256, 256)
    sd3 = dict(parts["sd3-medium"]["transformer"]["shapes"])
    assert sd3["denoiser input: encoder_hidden_states"] == (2, 77 + 256, 4096)  # CLIP tokens, then T5's
    assert sd3["denoiser input: pooled_projections"] == (2, 2048) and sd3["latent noise"] == (1, 16, 128, 128)


def test_sd15_unet_flops_match_the_published_macs(parts):
    """BK-SDM (Kim et al. 2023) gives SD's U-Net 338.7 G multiply-adds at 512x512 without attention's
    two matrix products; with them (batched matmuls on meta) the call is about 0.8 TFLOPs."""
    flops = parts["sd15"]["unet"]["flops"]
    assert 0.6e12 < flops < 1.0e12
    unet = build("sd15", "unet")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(torch.empty(1, 4, 64, 64, device="meta"), 500, torch.empty(1, 77, 768, device="meta"))
    attention = counter.get_flop_counts()["Global"][torch.ops.aten.bmm]
    assert counter.get_total_flops() == flops
    assert (flops - attention) / 2 == pytest.approx(338.7e9, rel=0.01)


def test_dit_flops_match_the_paper(parts):
    assert parts["dit-xl-2"]["transformer"]["flops"] / 2 == pytest.approx(118.6e9, rel=0.01)  # Table 4's Gflops


def test_flops_at_twice_the_side_grow_past_4x_through_attention(parts):
    big = anatomy("sd15", height=1024, width=1024)
    small = parts["sd15"]
    for conv in ("conv_in", "conv_out"):
        assert big["unet"]["flops_by_block"][conv] == 4 * small["unet"]["flops_by_block"][conv]
    assert big["unet"]["flops"] > 4 * small["unet"]["flops"]
    assert big["vae"]["flops"] == pytest.approx(4 * small["vae"]["flops"], rel=0.05)
    assert big["text_encoder"]["flops"] == small["text_encoder"]["flops"]
    assert dict(big["unet"]["shapes"])["latent noise"] == (1, 4, 128, 128)
    assert generation_shapes("sd15", 512, 768)[-1] == ("vae", "decoded image", (1, 3, 512, 768))


def test_the_vae_decode_count_is_flops_of_decode(parts):
    vae = build("sd15", "vae")
    assert flops_of(vae.decode, torch.empty(1, 4, 64, 64, device="meta")) == parts["sd15"]["vae"]["flops"]
    assert 0 < parts["sd15"]["vae"]["flops_encode"] < parts["sd15"]["vae"]["flops"]


def test_describe_counts_a_linear_layer_exactly():
    layer = nn.Linear(16, 8)
    out = describe(layer, (torch.randn(5, 16),))
    assert out == {"params": 16 * 8 + 8, "flops": 2 * 16 * 8 * 5, "memory": {"fp32": 4 * 136, "fp16": 2 * 136}}
    assert describe(layer, {"input": torch.randn(5, 16)})["flops"] == 2 * 16 * 8 * 5


def test_describe_counts_attention_on_the_cpu_as_on_meta():
    """PyTorch's FlopCounterMode leaves out the CPU's fused attention kernel; describe counts it."""
    from course_utils.models.attention import SelfAttention2d

    block = SelfAttention2d(32, num_heads=4, groups=8).eval()
    x = torch.randn(2, 32, 8, 8)
    on_cpu = describe(block, (x,))["flops"]
    on_meta = describe(copy.deepcopy(block).to("meta"), (x.to("meta"),))["flops"]
    linear = 2 * 2 * 64 * (32 * 96 + 32 * 32)
    assert on_cpu == on_meta == linear + 2 * (2 * 2 * 4 * 64 * 64 * 8)


def test_anatomy_returns_a_copy():
    first = anatomy("dit-xl-2")
    first["vae"]["params"] = 0
    assert anatomy("dit-xl-2")["vae"]["params"] == PUBLISHED["dit-xl-2", "vae"]


@pytest.mark.parametrize("call, words", [
    (lambda: anatomy("sd16"), ["name", "'sd16'", "'sd15'", "'sd3-medium'"]),
    (lambda: build("dit-xl-2", "unet"), ["component", "'unet'", "'transformer'", "'vae'"]),
    (lambda: load_config("sd15", "text_encoder_2"), ["component", "'text_encoder'"]),
    (lambda: anatomy("sd15", height=500), ["height", "64", "500"]),
    (lambda: anatomy("sdxl", width=1000), ["width", "32", "1000"]),
    (lambda: anatomy("sd3-medium", height=4096), ["height", "3072"]),
])
def test_bad_arguments_name_what_is_accepted(call, words):
    with pytest.raises(ValueError) as err:
        call()
    assert all(w in str(err.value) for w in words), str(err.value)


def test_sizes_must_be_whole_numbers():
    with pytest.raises(TypeError, match="height"):
        anatomy("sd15", height=True)
    with pytest.raises(TypeError, match="example_inputs"):
        describe(nn.Linear(2, 2), "x")


def test_the_configs_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [f"real_models/configs/{p.name}" for p in CONFIG_DIR.glob("*.json")]
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.json")) == sorted(NAMES)
    assert all(any(fnmatch.fnmatch(f, pat) for pat in patterns["course_utils"]) for f in shipped)
