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


def test_no_pickle_anywhere():
    """Checkpoints are safetensors only: no pickle-based loading in the package, no pickle files shipped."""
    from pathlib import Path

    import course_utils

    root = Path(course_utils.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for banned in ("import pickle", "torch.load(", "torch.save(", "dill", "joblib"):
            assert banned not in text, f"{path.relative_to(root)} uses {banned}"
    shipped = [p.suffix for p in (root / "pretrained" / "weights").iterdir()]
    assert shipped and set(shipped) == {".safetensors"}


def test_a_notebook_run_twice_gives_identical_outputs(tmp_path, monkeypatch):
    """Executing notebook 02 twice (fast mode) prints the same text and checker results, bit for bit."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    source = Path(__file__).parents[1] / "solutions" / "02_forward_process.ipynb"
    monkeypatch.setenv("COURSE_MODE", "fast")  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "agg")
    texts = []
    for _ in range(2):
        nb = nbformat.read(source, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        # Per cell: all it printed (a busy machine delivers one print in one or several stream messages), then its
        # results and displays in order.
        texts.append([("".join(o["text"] for o in c.outputs if o.output_type == "stream"),
                       [o.get("data", {}).get("text/plain") for o in c.outputs
                        if o.output_type in ("execute_result", "display_data")])
                      for c in nb.cells if c.cell_type == "code"])
    assert any(printed for printed, _ in texts[0]) and texts[0] == texts[1]
