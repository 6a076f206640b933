"""course_utils.training.distributed: data-parallel training: two CPU processes (gloo) train as one process does.

``torchrun --nproc_per_node=2 -m course_utils.train NAME`` against ``python -m course_utils.train NAME``
with the same recipe (global batch, seed): the loss at every step and the saved weights agree to
float32 rounding. Tolerance: each step's loss within 1e-6 absolute + 1e-4 relative, every weight
within 1e-5 absolute (measured after 12-20 steps: losses 1e-7 to 3e-5 relative, weights about 1e-8;
only the order of the sums differs).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from course_utils.training import distributed
from course_utils.checkpoints import load_checkpoint

STEPS = 12


def _train(name: str, out, processes: int) -> tuple[torch.Tensor, dict]:
    launcher = [sys.executable, "-m", "course_utils.train"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        "-m", "course_utils.train"]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", COURSE_DEVICE="cpu")
    cmd = launcher + [name, "--steps", str(STEPS), "--log-every", "1", "--skip-eval", "--no-progress",
                      "--device", "cpu", "--out", str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    tensors, meta = load_checkpoint(out / f"{name}.safetensors")
    return torch.tensor([loss for _, loss in meta["losses"]]), tensors


@pytest.mark.parametrize("name", ["digits-class", "digits-flow", "digits-student"])  # diffusion with label
# dropout; flow matching with logit-normal times; consistency distillation (its target is the EMA, its teacher frozen)
def test_two_processes_train_as_one(tmp_path, name):
    one_loss, one_weights = _train(name, tmp_path / "one", 1)
    two_loss, two_weights = _train(name, tmp_path / "two", 2)
    assert len(one_loss) == len(two_loss) == STEPS
    assert one_loss[-1] < one_loss[0]  # it trained
    torch.testing.assert_close(two_loss, one_loss, rtol=1e-4, atol=1e-6)
    assert one_weights.keys() == two_weights.keys()
    for key in one_weights:
        torch.testing.assert_close(two_weights[key], one_weights[key], rtol=0, atol=1e-5, msg=key)
    card = (tmp_path / "two" / f"{name}.md").read_text()
    assert '"processes": 2' in card


def test_the_global_batch_splits_evenly(monkeypatch):
    assert distributed.shard(64) == slice(None)  # one process: the whole batch
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert distributed.shard(64) == slice(32, 48)
    with pytest.raises(ValueError, match=r"batch_size \(66\).*multiple of 4"):
        distributed.shard(66)


def test_setup_needs_a_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node=N"):
        distributed.setup("cpu")


def test_one_process_is_not_wrapped():
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net, torch.device("cpu")) is net
    value = torch.tensor(3.0)
    assert distributed.mean(value) is value
    assert distributed.is_main() and distributed.world_size() == 1
