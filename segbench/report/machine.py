"""What a measurement ran on: CPU model, instruction set, GPU, threads."""
from __future__ import annotations

import platform
from pathlib import Path

import attrs
import torch


@attrs.frozen
class Machine:
    cpu: str
    instruction_set: str  # torch's CPU kernels' level: AVX2, AVX512, ...
    cpu_count: int | None
    gpu: str | None  # the device's name when the measurement ran on a GPU


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_machine(device: torch.device) -> Machine:
    import os

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return Machine(cpu=cpu_model(), instruction_set=torch.backends.cpu.get_cpu_capability(),
                   cpu_count=os.cpu_count(), gpu=gpu)
