"""What every benchmark row records besides the figure: the device, the torch version and the date."""

from __future__ import annotations

import datetime
import json
import os
import platform

import torch


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU as rows should name it: model, core count, and whether it has bf16 instructions.

    Two "2-core AMD EPYC" machines of this project differed 2x in speed, and only one had AVX-512
    bf16 (without it PyTorch emulates bf16), so the label carries the CPU family, model and flags.
    ``cpuinfo`` is the text of /proc/cpuinfo (read when None; elsewhere the label is shorter).
    """
    if cpuinfo is None:
        try:
            cpuinfo = open("/proc/cpuinfo").read()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    flags = fields.get("flags", "").split()
    if fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family']} model {fields['model']})"
    isa = "AVX-512 bf16" if "avx512_bf16" in flags else "AVX2, no bf16" if "avx2" in flags else ""
    return f"{os.cpu_count()}-core {name}" + (f", {isa}" if isa else "")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's (``cpu_name``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def row(what: str, value: str, samples: str, device: torch.device) -> str:
    """One Markdown row of docs/BENCHMARKS.md: what, value, samples, device, torch, date."""
    return f"| {what} | {value} | {samples} | {device_name(device)} | {torch.__version__} | {datetime.date.today()} |"


def write_json(path, record: dict, sort_keys: bool = False):
    """Store a benchmark's record whole or not at all: a temporary file, then a rename (a run stopped
    half-way never leaves half a file)."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=sort_keys) + "\n")
    tmp.replace(path)
    return path

