"""What every benchmark row records besides the figure: the device, the torch version and the date."""

from __future__ import annotations

import datetime
import os
import platform

import torch


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's architecture and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def row(what: str, value: str, samples: str, device: torch.device) -> str:
    """One Markdown row of docs/BENCHMARKS.md: what, value, samples, device, torch, date."""
    return f"| {what} | {value} | {samples} | {device_name(device)} | {torch.__version__} | {datetime.date.today()} |"
