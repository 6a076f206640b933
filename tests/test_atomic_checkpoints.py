"""A process killed while writing a checkpoint leaves the previous one intact."""

import os
import signal
import subprocess
import sys
import time

import torch

from course_utils.checkpoints import load_checkpoint, save_checkpoint

WRITER = r"""
import sys, torch
from course_utils.checkpoints import save_checkpoint
path = sys.argv[1]
big = {"w": torch.full((64, 1024, 1024), 7.0)}  # 256 MiB: slow enough to be killed mid-write
print("ready", flush=True)
while True:
    save_checkpoint(path, big, {"version": 2})
"""


def test_kill_mid_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, {"w": torch.ones(4)}, {"version": 1})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        # Wait until a temporary file is being written, then kill the writer without warning.
        deadline = time.time() + 60
        while time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            time.sleep(0.005)
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), "the writer never started a write"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    tensors, meta = load_checkpoint(path)  # still the complete old file (or, if the rename won, the new one)
    if meta["version"] == 1:
        assert torch.equal(tensors["w"], torch.ones(4))
    else:
        assert tensors["w"].shape == (64, 1024, 1024) and bool((tensors["w"] == 7).all())
