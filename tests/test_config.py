"""course_utils.config: modes (COURSE_MODE) and devices."""

import pytest
import torch

from course_utils import config


def test_mode_from_environment(monkeypatch):
    for mode in ("fast", "cpu", "full"):
        monkeypatch.setenv("COURSE_MODE", mode)
        assert config.get_mode() == mode
    monkeypatch.setenv("COURSE_MODE", " FAST ")
    assert config.get_mode() == "fast"


def test_default_mode_depends_on_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    assert config.get_mode() == ("full" if torch.cuda.is_available() else "cpu")


def test_bad_mode(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "turbo")
    with pytest.raises(ValueError, match="'fast', 'cpu', 'full'"):
        config.get_mode()


def test_by_mode_and_describe(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    assert config.by_mode(fast=1, cpu=2, full=3) == 2
    assert config.by_mode(1, 2, 3, mode="full") == 3
    assert "mode=cpu" in config.describe()
    with pytest.raises(ValueError, match="Accepted"):
        config.by_mode(1, 2, 3, mode="gpu")


def test_devices(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert config.get_device().type in ("cuda", "mps", "cpu")
    assert config.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda', 'mps', 'cpu'"):
        config.get_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not available"):
        config.get_device("cuda")


def test_fast_precision_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch):
    for avx512_bf16, amx, expected in [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert config.fast_precision("cpu") == expected
    with pytest.raises(ValueError, match="'cuda', 'mps', 'cpu'"):
        config.fast_precision("tpu")
