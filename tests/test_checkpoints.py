"""course_utils.checkpoints: atomic safetensors writes, SHA-256 checks, damaged files refused, key prefixes."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, strip_prefix, with_prefix

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


def test_checkpoint_hash_and_damage_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(3)}, {"a": 1})
    from course_utils.checkpoints import sha256_file

    digest = sha256_file(path)
    tensors, meta = load_checkpoint(path, expected_sha256=digest)
    assert meta == {"a": 1} and torch.equal(tensors["w"], torch.ones(3))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_checkpoint(path, expected_sha256=digest)
    path.write_bytes(bytes(data[:20]))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_prefixes_keep_several_parts_in_one_file_and_give_each_back(tmp_path):
    model, ema = {"w": torch.ones(2), "b": torch.zeros(1)}, {"w": torch.full((2,), 3.0)}
    tensors = with_prefix(model, "model.") | with_prefix(ema, "ema.") | {"rng": torch.arange(3)}
    assert sorted(tensors) == ["ema.w", "model.b", "model.w", "rng"]
    back, meta = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", tensors))
    assert meta == {}
    for part, prefix in ((model, "model."), (ema, "ema.")):
        got = strip_prefix(back, prefix)
        assert got.keys() == part.keys() and all(torch.equal(got[k], part[k]) for k in part)
    assert strip_prefix(back).keys() == model.keys()  # "model." by default


def test_views_and_shared_tensors_are_saved_as_plain_copies(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"t": base.T, "row": base[1], "same": base}  # a non-contiguous view; three tensors sharing memory
    back, _ = load_checkpoint(save_checkpoint(tmp_path / "v.safetensors", tensors, {"note": "views"}))
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


def test_a_checkpoint_is_an_ordinary_file_not_a_private_one(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = save_checkpoint(tmp_path / "sub" / "m.safetensors", {"w": torch.ones(1)})  # parent folders are made
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temporary file left behind
