"""No fault loses work (issue 30): a full disk during a checkpoint write, a read-only output folder,
a training run killed with SIGKILL and run again, and damaged shipped files.

The disk faults use a real tmpfs where the machine allows mounting one (root, or the mount namespace
tools/offline gives `make test`); elsewhere they are simulated by a write that fails with ENOSPC.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from course_utils import checkpoints, pretrained
from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.data import load_digits
from course_utils.models import UNet
from course_utils.schedules import get_schedule
from course_utils.training import TrainConfig, train
from tests.helpers import read_only_folder, tmpfs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return load_digits()[0][:64]


def _run(digits, path, steps=4, resume=True):
    torch.manual_seed(0)
    config = TrainConfig(steps=steps, batch_size=8, log_every=1, seed=0)
    return train(UNet("digits-tiny"), digits, get_schedule("cosine"), config, device="cpu", checkpoint_path=path,
                 resume=resume, progress=False)


def _full_disk(tmp_path, monkeypatch):
    """A folder whose disk is full: a 64 KiB tmpfs (a digits-tiny training state is about 1.4 MB), or
    a save that fails like one, after writing part of its temporary file."""
    mounted = tmpfs(tmp_path / "disk", size="64k")
    folder = mounted.__enter__()
    if folder is None:
        def full(tensors, filename, metadata=None):
            Path(filename).write_bytes(b"\0" * 1024)  # part of the file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(checkpoints, "save_file", full)
        folder = tmp_path / "disk"
    return folder, mounted


def test_a_full_disk_loses_neither_the_trained_model_nor_the_previous_checkpoint(tmp_path, monkeypatch, digits):
    folder, mounted = _full_disk(tmp_path, monkeypatch)
    try:
        earlier = folder / "run.safetensors"
        earlier.write_bytes(b"the previous checkpoint")  # 23 bytes: fits, and must survive the failed write
        with pytest.warns(UserWarning, match=r"could not write the checkpoint .*No space left.*nothing is lost"):
            result = _run(digits, earlier, resume=False)
        assert result.step == 4 and len(result.losses) == 4 and result.checkpoint_error.startswith("OSError")
        reference = _run(digits, None)
        for a, b in zip(result.ema_model.state_dict().values(), reference.ema_model.state_dict().values()):
            assert torch.equal(a, b)  # the weights in memory are the whole run's
        assert earlier.read_bytes() == b"the previous checkpoint"  # atomic: the old file untouched
        assert [p.name for p in folder.iterdir()] == ["run.safetensors"]  # no temporary file left behind
    finally:
        mounted.__exit__(None, None, None)


def test_the_next_save_removes_temporaries_of_a_killed_write(tmp_path):
    target = tmp_path / "run.safetensors"
    stale = tmp_path / ".run.safetensors.abc123.tmp"  # what a write killed before its rename leaves
    stale.write_bytes(b"half a file")
    save_checkpoint(target, {"x": torch.ones(2)}, {"kind": "test"})
    assert not stale.exists() and load_checkpoint(target)[1] == {"kind": "test"}


def test_a_read_only_output_folder_is_refused_before_the_first_step(tmp_path, digits):
    with read_only_folder(tmp_path / "ro") as folder:
        if folder is None:
            pytest.skip("no read-only folder can be made on this machine")
        torch.manual_seed(0)
        net = UNet("digits-tiny")
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with pytest.raises(CheckpointError, match="not writable"):
            train(net, digits, get_schedule("cosine"), TrainConfig(steps=3, batch_size=8), device="cpu",
                  checkpoint_path=folder / "run.safetensors", progress=False)
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # no step was taken


def _command(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "course_utils.train", "digits-class", "--steps", str(steps), "--log-every", "1",
            "--checkpoint-every", "5", "--skip-eval", "--no-progress", "--device", "cpu", "--out", str(out)]


def test_a_run_killed_with_sigkill_resumes_when_run_again_and_ends_as_an_uninterrupted_run(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    steps, state = 40, tmp_path / "killed" / "digits-class.train.safetensors"
    proc = subprocess.Popen(_command(tmp_path / "killed", steps), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # kill it once a checkpoint exists mid-run
        if state.exists() and 5 <= load_checkpoint(state)[1]["step"] < steps - 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(state)[1]["step"]
    assert proc.returncode == -signal.SIGKILL and 5 <= killed_at < steps
    rerun = subprocess.run(_command(tmp_path / "killed", steps), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"from step {killed_at} of {steps}" in rerun.stdout  # it says that it resumes, and from where
    straight = subprocess.run(_command(tmp_path / "straight", steps), env=env, capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed, _ = load_checkpoint(tmp_path / "killed" / "digits-class.safetensors")
    uninterrupted, _ = load_checkpoint(tmp_path / "straight" / "digits-class.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)  # bit for bit


def test_a_damaged_manifest_or_weights_file_names_the_file_and_how_to_reinstall(tmp_path, monkeypatch):
    manifest = json.loads(pretrained.MANIFEST.read_text())
    cut = tmp_path / "manifest.json"
    cut.write_text(pretrained.MANIFEST.read_text()[:200])  # a download or copy that stopped part-way
    monkeypatch.setattr(pretrained, "MANIFEST", cut)
    with pytest.raises(CheckpointError, match=r"manifest\.json is damaged .*reinstall"):
        pretrained.load("digits-ddpm", device="cpu")
    weights = tmp_path / "weights"
    weights.mkdir()
    source = pretrained.WEIGHTS / manifest["digits-ddpm"]["file"]
    (weights / source.name).write_bytes(source.read_bytes()[:-1000])  # the weights file truncated
    manifest["digits-ddpm"]["sha256"] = manifest["digits-ddpm"]["sha256"].upper()  # a hash in upper case is fine
    cut.write_text(json.dumps(manifest))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    with pytest.raises(CheckpointError, match=rf"{source.name} does not match its manifest.*Reinstall"):
        pretrained.load("digits-ddpm", device="cpu")
    (weights / source.name).write_bytes(source.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pretrained.load("digits-ddpm", device="cpu").info["name"] == "digits-ddpm"  # upper-case hash accepted


def test_info_is_a_copy_that_cannot_change_later_loads():
    entry = pretrained.info("digits-ddpm")
    entry["card"]["metric"] = "tampered"
    entry["sha256"] = "0" * 64
    assert pretrained.info("digits-ddpm")["card"]["metric"] != "tampered"
    assert pretrained.load("digits-ddpm", device="cpu").info["sha256"] != "0" * 64
