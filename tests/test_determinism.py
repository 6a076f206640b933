"""The same seed gives bit-identical samples in two separate processes (CPU)."""

import subprocess
import sys

SCRIPT = r"""
import hashlib, torch
from course_utils import pretrained
model = pretrained.load("digits-ddpm", device="cpu")
ddim = model.sample(4, steps=10, generator=torch.Generator().manual_seed(7))
ddpm = model.sample(2, steps=20, sampler="ddpm", generator=torch.Generator().manual_seed(7))
print(hashlib.sha256(ddim.numpy().tobytes() + ddpm.numpy().tobytes()).hexdigest())
"""


def test_two_processes_same_seed_same_samples():
    digests = [subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
               .stdout.strip().splitlines()[-1] for _ in range(2)]
    assert len(digests[0]) == 64 and digests[0] == digests[1]
