"""Whether this CPU trains faster in bf16 than in fp32: timed once per machine and remembered, so that
``precision: auto`` picks what is faster here rather than what the CPU's flags suggest.

The flags do not settle it. With the same ``avx512_bf16`` instructions, the quickstart's training step ran 1.5x
faster in bf16 than in fp32 on an AMD EPYC and 0.8x as fast on an Intel Xeon whose hypervisor hides AMX
(``benchmarks/results/**/numerics_*.md``). The probe is a few training steps of a small network of 3x3
convolutions, batch norm and ReLU in each precision, channels-last (about 1 s on 2 cores), its timings kept in
``cpu_speeds.json`` in segbench's cache, one entry per CPU, torch build, thread count and instruction-set limit.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import torch
import torch.nn.functional as F

from segbench.atomic import atomic_write_text
from segbench.cache import cache_dir
from segbench.cpuinfo import cpu_label
from segbench.errors import SegbenchError
from segbench.stderr import say

if TYPE_CHECKING:
    from segbench.engine.device import CpuClass

CACHE_FILE = "cpu_speeds.json"
PROBE_VERSION = 1  # bump when the probe network changes: older timings are then measured again
# The variables that change which kernels torch, oneDNN and MKL run (how a slower machine is emulated); the
# benchmarks record them too.
KERNEL_ENVIRONMENT = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
TIMED_STEPS = 5


@attrs.frozen
class CpuSpeeds:
    """Seconds per training step of the probe network, channels-last (the best of its timed steps)."""

    fp32_s: float
    bf16_s: float
    measured_at: str = ""

    @property
    def bf16_speedup(self) -> float:
        """Above 1: bf16 trains faster than fp32."""
        return self.fp32_s / self.bf16_s


def machine_key(cpu: CpuClass, environ=None) -> str:
    """What the timings depend on: the CPU (its family and model numbers too: a cache in a home folder shared by
    machines whose hypervisors all say "AMD EPYC" must not hand one generation's timings to another), torch's build
    and kernels, the thread count, the kernel limits."""
    environ = os.environ if environ is None else environ
    limits = ",".join(f"{name}={environ[name]}" for name in KERNEL_ENVIRONMENT if environ.get(name))
    return (f"v{PROBE_VERSION}|{cpu_label(cpu.model, cpu.family_model)}|{','.join(cpu.flags)}|{cpu.capability}"
            f"|torch {torch.__version__}|{torch.get_num_threads()} threads|{limits}")


_measured_here: dict[str, CpuSpeeds] = {}


def cpu_speeds(cpu: CpuClass) -> CpuSpeeds:
    """This machine's timings (``cpu`` has native bf16): from this process, else from the cache, else measured
    now (and remembered).

    Processes starting together (the ranks of a ``torchrun`` job) take turns: the first measures, the
    others read its timings, so they choose alike and do not time each other's load.
    """
    key = machine_key(cpu)
    if key in _measured_here:
        return _measured_here[key]
    path = cache_dir() / CACHE_FILE
    with _exclusive(path):
        known = _read(path)
        if key in known:
            speeds = known[key]
        else:
            started = time.perf_counter()
            speeds = measure()
            kept = f"kept in {path}" if _write(path, {**known, key: speeds}) else f"{path} cannot be written"
            say(f"segbench: timed fp32 and bf16 training on this CPU once ({time.perf_counter() - started:.1f} s):"
                f" bf16 {speeds.bf16_speedup:.2f}x the speed of fp32 ({kept})")
    _measured_here[key] = speeds
    return speeds


def measure() -> CpuSpeeds:
    """Time the probe network's training step in fp32 and in bf16, interleaved (a burst of load from elsewhere
    then slows both alike); the best of ``TIMED_STEPS`` steps each, after one warm-up step."""
    best = {"fp32_s": float("inf"), "bf16_s": float("inf")}
    # The run's seeded random streams are left where they were; a caller's no_grad does not apply to a training step.
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(0)
        net = _probe_network().to(memory_format=torch.channels_last)
        images = torch.randn(2, 3, 128, 256).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 19, (2, 128, 256))
        for repetition in range(TIMED_STEPS + 1):
            for name in best:
                started = time.perf_counter()
                _train_step(net, images, labels, bf16=name == "bf16_s")
                if repetition:
                    best[name] = min(best[name], time.perf_counter() - started)
    return CpuSpeeds(**best, measured_at=datetime.datetime.now().isoformat(timespec="seconds"))


def _probe_network() -> torch.nn.Module:
    """Three resolutions of 3x3 convolutions, batch norm and ReLU, 32 to 128 channels, and a 19-class head:
    the mix of layers in the segmentation networks segbench trains, at a size that times in milliseconds."""
    layers = []
    for in_channels, out_channels, stride in ((3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2),
                                              (128, 128, 1)):
        layers += [torch.nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                   torch.nn.BatchNorm2d(out_channels), torch.nn.ReLU(inplace=True)]
    return torch.nn.Sequential(*layers, torch.nn.Conv2d(128, 19, 1))


def _train_step(net, images, labels, *, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = net(images)
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    net.zero_grad(set_to_none=True)


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold a lock beside ``path`` while the timings are read and written; without one (a read-only or
    lock-less cache) go on unguarded: the worst case is a second measurement."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read(path: Path) -> dict[str, CpuSpeeds]:
    """The remembered timings; a missing or damaged file, or a damaged entry, is measured again."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    known = {}
    for key, entry in entries.items() if isinstance(entries, dict) else ():
        try:
            speeds = CpuSpeeds(**entry)
        except TypeError:
            continue
        if _plausible(speeds):
            known[key] = speeds
    return known


def _plausible(speeds: CpuSpeeds) -> bool:
    return all(isinstance(t, (int, float)) and 0 < t < float("inf") for t in (speeds.fp32_s, speeds.bf16_s))


def _write(path: Path, known: dict[str, CpuSpeeds]) -> bool:
    """Whether the timings could be kept (in a read-only cache only this process has them)."""
    try:
        atomic_write_text(path, json.dumps({key: attrs.asdict(s) for key, s in known.items()}, indent=1) + "\n")
    except (OSError, SegbenchError):
        return False
    return True
