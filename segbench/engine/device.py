"""Device, numeric precision and memory format: the choices ``auto`` makes, in one place.

* CUDA: bf16 autocast where the GPU supports it, else fp16 (with a gradient scaler); channels-last.
* A CPU with native bf16 (``avx512_bf16`` or ``amx_bf16``, torch allowed its AVX-512 kernels): bf16 autocast
  with channels-last where a training step timed once on this machine (``segbench.engine.cpu_speeds``) runs at
  least ``BF16_MARGIN`` times as fast as in fp32. The flags alone do not tell: bf16 ran 1.5x fp32 on an AMD
  EPYC and 0.8x on an Intel Xeon whose hypervisor hides AMX.
* Otherwise fp32 (bf16 without native instructions is emulated, many times slower, and never timed), with
  channels-last where torch runs its AVX-512 kernels (1.1-1.4x faster than contiguous there; with AVX2
  kernels up to 5% slower for DeepLabV3+).

Measured per CPU class by ``benchmarks/bench_numerics.py`` (``benchmarks/results/**/numerics_*.md``), which
also says whether the choice was the fastest for the quickstart's model and DeepLabV3+.
``trainer.precision`` and ``trainer.channels_last`` in a recipe override ``auto``.
"""
from __future__ import annotations

import contextlib
import functools
import os

import attrs
import torch

from segbench.cpuinfo import read_cpuinfo
from segbench.engine.cpu_speeds import CpuSpeeds, cpu_speeds
from segbench.errors import SegbenchError
from segbench.recipe.schema import DEVICES

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def pick_device(requested: str = "auto", *, option: str = "trainer.device") -> torch.device:
    """``auto`` is CUDA when present (the local rank's GPU under distributed runs), else the CPU; ``option``
    names where ``requested`` came from in errors."""
    if requested == "auto":
        if torch.cuda.is_available():
            from segbench.engine.distributed import local_rank

            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise SegbenchError(f"{option} {requested!r} is not a device; use {DEVICES}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegbenchError(f"{option} is {requested!r} but no CUDA device is available here;"
                            f" use {option}{' ' if option.startswith('--') else '='}auto or cpu")
    return device


@attrs.frozen
class CpuClass:
    """What the CPU offers torch: its model, the kernels torch dispatches to, native bf16 or not."""

    model: str
    capability: str  # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, DEFAULT (ARM), ...
    flags: tuple[str, ...]  # the CPU flags among avx2, avx512f, avx512_bf16, amx_bf16
    native_bf16: bool
    family_model: str = ""  # "family 25 model 17" (segbench.cpuinfo): one model name can cover two generations

    @property
    def name(self) -> str:
        """A short class name for reports: ``AVX-512 + bf16``, ``AVX-512``, ``AVX2``, ..."""
        if self.capability.startswith("AVX512"):
            return "AVX-512 + bf16" if self.native_bf16 else "AVX-512 (no bf16)"
        return self.capability


def native_bf16(capability: str, flags: set[str] | frozenset[str], env: dict | None = None) -> bool:
    """bf16 runs in hardware: the CPU has a bf16 instruction set and torch and oneDNN may use AVX-512.

    ``ATEN_CPU_CAPABILITY=avx2`` / ``ONEDNN_MAX_CPU_ISA=AVX2`` (how an AVX2 machine is emulated) turn it off.
    """
    env = os.environ if env is None else env
    onednn_isa = env.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    onednn_allows = onednn_isa == "ALL" or onednn_isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10"))
    return capability.startswith("AVX512") and onednn_allows and any(flag in flags for flag in BF16_CPU_FLAGS)


@functools.lru_cache(maxsize=1)
def describe_cpu() -> CpuClass:
    info = read_cpuinfo()
    capability = torch.backends.cpu.get_cpu_capability()
    shown = tuple(f for f in ("avx2", "avx512f", *BF16_CPU_FLAGS) if f in info.flags)
    return CpuClass(model=info.model, capability=capability, flags=shown,
                    native_bf16=native_bf16(capability, info.flags), family_model=info.family_model)


@attrs.frozen
class Numerics:
    """How a run computes: ``precision`` (fp32, bf16 or fp16 autocast) and the memory format."""

    precision: str
    channels_last: bool


# bf16 rounds more coarsely than fp32: only a clear gain is worth it. The margin also keeps the choice from
# flipping between machines of one kind on timing noise.
BF16_MARGIN = 1.1


def choose_numerics(precision: str, channels_last: bool | None, device: torch.device, *,
                    cpu: CpuClass | None = None, speeds: CpuSpeeds | None = None) -> Numerics:
    """The recipe's ``trainer.precision`` and ``trainer.channels_last`` (``None``: automatic), resolved.

    On a CPU with native bf16, ``auto`` follows ``speeds`` (``segbench.engine.cpu_speeds.CpuSpeeds``), this
    machine's timings when not given. bf16 and fp16 go with channels-last, which their kernels want.
    """
    if precision == "fp16" and device.type != "cuda":
        raise SegbenchError("trainer.precision fp16 needs a CUDA device (it uses a gradient scaler); on the CPU"
                            " use bf16 or fp32")
    if device.type != "cpu":  # a GPU's reduced-precision kernels are fast wherever they exist
        if precision == "auto":
            precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "fp32"
        return Numerics(precision, precision != "fp32" if channels_last is None else channels_last)
    cpu = cpu or describe_cpu()
    if precision == "auto":
        precision = "bf16" if cpu.native_bf16 and _bf16_speedup(cpu, speeds) >= BF16_MARGIN else "fp32"
    if channels_last is None:
        channels_last = precision == "bf16" or cpu.capability.startswith("AVX512")
    return Numerics(precision, channels_last)


def _bf16_speedup(cpu: CpuClass, speeds: CpuSpeeds | None) -> float:
    return (speeds or cpu_speeds(cpu)).bf16_speedup


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
