"""Fetch into ``.whl/`` the wheels the GPU machine lacks for ``benchmarks/gpu_check.sh``.

The lent GPU machine has PyTorch, numpy, matplotlib, scikit-learn, safetensors and tqdm, but not
diffusers nor what executes a notebook. This walks the requirements of ``ROOTS`` as installed in
this virtual environment, skips what the machine already has (``ON_DEVICE``, from the device
library's package list), and downloads the rest at the versions installed here, built for the
machine's Python 3.12 on x86-64 Linux.

Usage (here, once, with network access to the package registry): ``.venv/bin/python tools/gpu_wheels.py``
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("diffusers", "nbclient", "nbformat", "ipykernel", "ipywidgets")
ON_DEVICE = {  # already on the machine (device library, KINDS.md, 2026-11-17); kept as they are there
    "torch", "numpy", "matplotlib", "scikit-learn", "scipy", "safetensors", "tqdm", "huggingface-hub", "pillow",
    "regex", "requests", "filelock", "fsspec", "packaging", "pyyaml", "jinja2", "markupsafe", "pygments", "psutil",
    "typing-extensions", "zipp", "attrs", "certifi", "charset-normalizer", "idna", "urllib3", "hf-xet", "httpx",
    "anyio", "h11", "httpcore", "click", "typer", "rich", "shellingham", "markdown-it-py", "mdurl", "six",
    "python-dateutil", "setuptools", "wheel", "pip",
}
# Left out to keep a device call under its 64 MiB (the repository is about 46 MB): ipykernel runs
# without its debugger (debugpy, 4 MB) and ipywidgets without the classic Notebook's extension (2 MB).
SKIPPED = {"debugpy", "widgetsnbextension"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needed(roots=ROOTS) -> dict[str, str]:
    """``{name: installed version}`` for the roots and everything they require, less ``ON_DEVICE``."""
    env = {"extra": "", "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix"}
    found, todo = {}, list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in found or name in ON_DEVICE or name in SKIPPED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another Python or platform, not installed here
        found[name] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return found


def main() -> None:
    out = ROOT / ".whl"
    out.mkdir(exist_ok=True)
    wants = needed()
    print(f"{len(wants)} wheels: {', '.join(f'{n}=={v}' for n, v in sorted(wants.items()))}")
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *platform_args, "-d", str(out), *(f"{n}=={v}" for n, v in sorted(wants.items()))]
    subprocess.run(cmd, check=True)
    size = sum(p.stat().st_size for p in out.glob("*.whl")) / 2**20
    print(f"{len(list(out.glob('*.whl')))} wheels in {out} ({size:.1f} MiB; a device call carries at most 64 MiB)")


if __name__ == "__main__":
    main()
