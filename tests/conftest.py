"""Test-wide guards (the suite must pass with no network: only loopback is allowed) and the fixtures
shared by test modules in several folders: small random models and a small Hugging Face CLIP."""

import ipaddress
import json
import os
import socket
import string

import pytest
import torch

from course_utils.models import UNet, UNetConfig
from course_utils.models.clip import TinyCLIP
from course_utils.pipeline import DiffusionModel
from course_utils.schedules import get_schedule
from tests.helpers import random_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a model hub by default


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):  # AF_UNIX paths and the like never leave the machine
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS, i.e. the network


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Refuse any connection that is not to this machine, so a hidden download fails loudly."""
    original = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OSError(f"network access attempted during tests: {address!r} (the course must work offline)")
        return original(self, address)

    socket.socket.connect = guarded
    try:
        yield
    finally:
        socket.socket.connect = original


def pytest_report_header(config):
    try:
        import ipywidgets

        widgets = f"ipywidgets {ipywidgets.__version__}"
    except ImportError:
        widgets = "ipywidgets not installed"
    network = ("no network (tools/offline namespace, loopback only)" if os.environ.get("COURSE_NETNS") == "1"
               else "network guarded by tests/conftest.py (loopback only)")
    return f"course: {widgets}; {network}"


@pytest.fixture
def small_hf_clip(tmp_path):
    """A randomly initialised Hugging Face CLIP built from a config, with a tokenizer whose files
    this test writes (characters only): the real-CLIP code path, offline."""
    transformers = pytest.importorskip("transformers")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=16)
    torch.manual_seed(0)
    return transformers.CLIPModel(config), tokenizer


@pytest.fixture(scope="module")
def class_unet():
    """A class-conditional U-Net (10 digits and the null label) with random weights everywhere, eval mode."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_heads=2, num_classes=10))
    return random_weights(net).eval()


@pytest.fixture(scope="module")
def text_parts():
    """``(clip, unet)``: an untrained TinyCLIP and a random-weight U-Net that cross-attends (at 8x8) to its
    token states, for 16x16 RGB images."""
    torch.manual_seed(0)
    clip = TinyCLIP().eval()
    unet = UNet(UNetConfig(sample_size=16, in_channels=3, base_channels=16, channel_mults=(1, 2), attention_levels=(1,),
                           num_heads=2, context_dim=64))
    return clip, random_weights(unet).eval()


@pytest.fixture(scope="module")
def text_model(text_parts):
    """A text-conditioned ``DiffusionModel`` of ``text_parts`` (100 cosine timesteps)."""
    clip, unet = text_parts
    return DiffusionModel(unet, get_schedule("cosine", 100), info={"name": "t", "conditioning": "text"},
                          text_encoder=clip)
