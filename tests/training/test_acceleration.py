"""course_utils.training.acceleration: bf16 autocast, torch.compile and CUDA-graph steps, and their fallbacks."""

import pytest
import torch

from course_utils.models import UNet
from course_utils.schedules import get_schedule
from course_utils.training import train
from course_utils.training.acceleration import autocast, first_compiled_step


def test_bf16_autocast_path_trains(digits, cfg):
    # The precision full mode uses on CUDA, exercised here through CPU autocast.
    result = train(UNet("digits-tiny"), digits, get_schedule("linear"), cfg(steps=6, precision="bf16"), device="cpu",
                   progress=False)
    assert result.step == 6 and all(torch.isfinite(torch.tensor(loss)) for _, loss in result.losses)


def test_compiled_training_matches_eager(digits, cfg, tiny_denoiser):
    losses = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        result = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=8, log_every=1, compile=compile_),
                       device="cpu", progress=False)
        losses[compile_] = torch.tensor([loss for _, loss in result.losses])
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-4, atol=1e-6)


def test_a_failed_compile_falls_back_to_eager_with_a_warning(monkeypatch, digits, cfg, tiny_denoiser):
    from course_utils.training import acceleration

    def broken(fn, device):
        def call(*args, **kwargs):
            raise RuntimeError("BackendCompilerFailed: simulated")
        return call

    torch.manual_seed(0)
    eager = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=6, log_every=1), device="cpu",
                  progress=False)
    monkeypatch.setattr(acceleration, "compile_model", broken)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="torch.compile failed.*simulated.*eager mode"):
        fallback = train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=6, log_every=1, compile=True),
                         device="cpu", progress=False)
    assert fallback.losses == eager.losses  # the same draws, the same steps


def test_cuda_graph_and_compile_are_exclusive_and_cuda_graph_needs_cuda(digits, cfg, tiny_denoiser):
    with pytest.raises(ValueError, match="choose one"):
        cfg(compile=True, cuda_graph=True)
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device, got cpu.*cuda_graph=False"):
        train(tiny_denoiser(), digits, get_schedule("linear"), cfg(steps=2, cuda_graph=True), device="cpu",
              progress=False)


def test_a_failed_recording_restores_the_optimiser_and_warns(tiny_denoiser):
    """Where recording fails (here: no CUDA at all), the step stays eager: AdamW gets back its plain
    learning rate and capturable flag, nothing ran, and the warning says how to skip the attempt."""
    from course_utils.training.acceleration import record_step

    model = tiny_denoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    ran = []
    with pytest.warns(UserWarning, match="recording the training step as a CUDA graph failed.*cuda_graph=False"):
        graph = record_step(lambda: ran.append(1), opt, torch.Generator(), stream=None)
    assert graph is None and not ran
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["capturable"] is False
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("precision, bf16", [("bf16", True), ("fp32", False), ("auto", False)])
def test_autocast_is_bf16_when_asked_and_for_auto_only_on_cuda(precision, bf16):
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), precision):
        out = a @ a
    assert (out.dtype == torch.bfloat16) == bf16


def test_a_failed_compile_repeats_the_step_eagerly_with_the_same_draws():
    gen = torch.Generator().manual_seed(0)
    draws = []

    def forward_backward(fn, idx):
        draws.append(torch.randn(3, generator=gen))  # the step's draws come before the model runs
        return fn(draws[-1])

    def compiled(x):
        raise RuntimeError("BackendCompilerFailed: simulated")

    eager = torch.sum
    with pytest.warns(UserWarning, match=r"torch.compile failed \(RuntimeError: BackendCompilerFailed: simulated\)"):
        fn, loss = first_compiled_step(compiled, eager, forward_backward, None, gen)
    assert fn is eager and len(draws) == 2 and torch.equal(draws[0], draws[1]) and loss == draws[1].sum()
