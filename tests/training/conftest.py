"""Shared by the training tests: a slice of the digits, a short run's config, and a network quick to compile."""

import pytest
import torch

from course_utils.data import load_digits
from course_utils.training import TrainConfig


@pytest.fixture(scope="module")
def digits():
    """The first 256 digits, ``(256, 1, 16, 16)`` in [-1, 1]."""
    return load_digits()[0][:256]


def _cfg(**kw):
    base = dict(steps=20, batch_size=32, lr=2e-3, warmup_steps=5, log_every=5, seed=0)
    return TrainConfig(**(base | kw))


@pytest.fixture
def cfg():
    """``cfg(**overrides)``: a ``TrainConfig`` of a short run (20 steps of 32, warm-up 5, a log every 5)."""
    return _cfg


class _TinyDenoiser(torch.nn.Module):
    """Two convolutions and a timestep bias: quick to compile, enough to train."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x, t):
        return self.b(torch.nn.functional.silu(self.a(x) + (t.float() / 1000).view(-1, 1, 1, 1)))


@pytest.fixture
def tiny_denoiser():
    """``tiny_denoiser()``: a fresh ``_TinyDenoiser`` (two convolutions and a timestep bias)."""
    return _TinyDenoiser
