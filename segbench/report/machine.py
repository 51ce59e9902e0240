"""What a measurement ran on: CPU model, instruction set, GPU, threads."""
from __future__ import annotations

import attrs
import torch

from segbench.cpuinfo import read_cpuinfo


@attrs.frozen
class Machine:
    cpu: str
    instruction_set: str  # torch's CPU kernels' level: AVX2, AVX512, ...
    cpu_count: int | None
    gpu: str | None  # the device's name when the measurement ran on a GPU


def cpu_model() -> str:
    """The CPU's name with its family and model numbers where the system gives them (``AMD EPYC (family 25
    model 17)``): latencies of two CPUs sharing a shortened name are not mixed up."""
    return read_cpuinfo().label


def describe_machine(device: torch.device) -> Machine:
    import os

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return Machine(cpu=cpu_model(), instruction_set=torch.backends.cpu.get_cpu_capability(),
                   cpu_count=os.cpu_count(), gpu=gpu)
