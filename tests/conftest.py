"""Test-wide guards (the suite must pass with no network: only loopback is allowed) and shared fixtures."""

import ipaddress
import json
import os
import socket
import string

import pytest
import torch

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
