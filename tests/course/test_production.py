"""course_utils.course.production: notebook 10's production measurements (memory, step costs, precision, latency)."""

import pytest
import torch

from course_utils import pretrained
from course_utils.course import production


def test_peak_memory_grows_with_what_a_call_allocates():
    small = production.peak_memory(lambda: torch.ones(100, 1000))
    big = production.peak_memory(lambda: torch.ones(1000, 1000))
    assert small >= 100 * 1000 * 4 and big >= 1000 * 1000 * 4 and big > 5 * small
    with pytest.raises(ValueError, match="cpu"):
        production.peak_memory(lambda: None, "meta")


def test_step_costs_cover_every_precision_and_batch():
    model = pretrained.load("digits-class", device="cpu")
    rows = production.step_costs(model, batches=(1, 4), precisions=("fp32", "bf16"), repeats=1)
    assert [(r["precision"], r["batch"]) for r in rows] == [("fp32", 1), ("fp32", 4), ("bf16", 1), ("bf16", 4)]
    fp32 = {r["batch"]: r for r in rows if r["precision"] == "fp32"}
    assert fp32[4]["memory_mb"] > fp32[1]["memory_mb"] > 0
    with pytest.raises(ValueError, match="precision"):
        production.autocast(torch.device("cpu"), "fp8")


def test_precision_slowdown_is_the_autocast_time_over_the_fp32_time(monkeypatch):
    model = pretrained.load("digits-class", device="cpu")
    seen = []

    def fake_time_call(fn, repeats, device=None):  # 2 s for a call under bf16 autocast, 0.5 s otherwise
        fn()
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return 2.0 if seen[-1] else 0.5

    monkeypatch.setattr(production, "time_call", fake_time_call)
    assert production.precision_slowdown(model, "bf16", batch=2, repeats=1) == pytest.approx(4.0)
    assert seen == [False, True]
    with pytest.raises(ValueError, match="fp32.*bf16.*fp16"):
        production.precision_slowdown(model, "int8")
    with pytest.raises(ValueError, match="batch"):
        production.precision_slowdown(model, batch=0)


def test_latency_breakdown_names_every_knob_largest_first():
    model = pretrained.load("shapes-latent", device="cpu")
    rows = production.latency_breakdown(model, steps=3, fast_steps=1, repeats=1)
    assert {r["factor"] for r in rows} == {"sampling steps", "resolution", "precision", "VAE decode", "text encode"}
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)
    assert all(r["baseline_ms"] > 0 for r in rows)
    with pytest.raises(ValueError, match="latent text model"):
        production.latency_breakdown(pretrained.load("digits-class", device="cpu"), steps=3, fast_steps=1)
    with pytest.raises(ValueError, match="fast_steps"):
        production.latency_breakdown(model, steps=3, fast_steps=3)
