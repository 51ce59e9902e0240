"""Device and numeric precision choices."""
from __future__ import annotations

import contextlib

import torch

from segbench.errors import SegbenchError


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` is CUDA when present (the local rank's GPU under distributed runs), else the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            from segbench.engine.distributed import local_rank

            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise SegbenchError(f"trainer.device {requested!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegbenchError(f"trainer.device is {requested!r} but no CUDA device is available here;"
                            " use trainer.device=auto or cpu")
    return device


def cpu_supports_fast_bf16() -> bool:
    capability = torch.backends.cpu.get_cpu_capability()
    return "AVX512" in capability and torch.backends.mkldnn.is_available() and \
        bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware runs it fast (recent GPUs, AVX-512 CPUs), else fp32."""
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_fast_bf16() else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise SegbenchError("trainer.precision fp16 needs a CUDA device (it uses a gradient scaler); on the CPU"
                            " use bf16 or fp32")
    return requested


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
