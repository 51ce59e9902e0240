"""Refusing an inference size that cannot fit in memory, before the forward pass that would need it.

A forward pass at 16384x16384 asks a CPU machine for tens of gigabytes: the kernel's out-of-memory killer then
ends the process (and may end other people's). Here the model runs once on a small probe image while forward
hooks follow the activations it keeps alive; their peak, scaled to the requested pixels and times a margin for
what the hooks do not see (convolution workspaces, functions outside modules: measured 1.1-3.3x on the built-in
models), is compared with the memory free for it.
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path

import torch

from segbench.errors import SegbenchError

PROBE_SIZE = (128, 256)
MARGIN = 4.0  # estimated peak x MARGIN must fit: the hooks miss workspaces and functional ops


def activation_peak_bytes(model: torch.nn.Module, size: tuple[int, int], device, precision: str = "fp32") -> int:
    """The most bytes of module outputs alive at once in one eval forward pass of a ``size`` image (in the
    ``precision`` it will run in: bf16 activations take half the bytes)."""
    from segbench.engine.device import autocast

    state = {"live": 0, "peak": 0}
    seen: set[int] = set()

    def release(pointer: int, nbytes: int) -> None:
        seen.discard(pointer)
        state["live"] -= nbytes

    def track(module, inputs, output):
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if not isinstance(tensor, torch.Tensor):
                continue
            pointer = tensor.untyped_storage().data_ptr()
            if pointer in seen:  # an in-place result (ReLU) or a view
                continue
            nbytes = tensor.untyped_storage().nbytes()
            seen.add(pointer)
            state["live"] += nbytes
            state["peak"] = max(state["peak"], state["live"])
            weakref.finalize(tensor, release, pointer, nbytes)

    handles = [m.register_forward_hook(track) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad(), autocast(torch.device(device), precision):
            model(torch.zeros(1, 3, *size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return state["peak"]


def free_bytes(device) -> int | None:
    """Memory this process may still take on ``device`` (None when unknown): on the CPU the machine's available
    memory, or less where a cgroup (a Slurm job's --mem, a container) allows less."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    limits = [_meminfo_available(), _cgroup_room()]
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """The memory limit of this process's cgroup minus what it uses (v2 or v1); None without a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            files = (f"/sys/fs/cgroup{path}/memory.max", f"/sys/fs/cgroup{path}/memory.current")
        elif "memory" in controllers.split(","):  # v1
            folder = f"/sys/fs/cgroup/memory{path}"
            files = (f"{folder}/memory.limit_in_bytes", f"{folder}/memory.usage_in_bytes")
        else:
            continue
        try:
            limit, used = (Path(name).read_text(encoding="ascii").strip() for name in files)
            if limit != "max" and int(limit) < 1 << 60:  # v1 writes "no limit" as a huge number
                return max(0, int(limit) - int(used))
        except (OSError, ValueError):
            continue
    return None


def check_fits(model: torch.nn.Module, size: tuple[int, int], batch: int, device, precision: str = "fp32", *,
               option: str = "--size") -> None:
    """Refuse ``batch`` images of ``size`` when their estimated forward pass would not fit in free memory."""
    probe = (min(size[0], PROBE_SIZE[0]), min(size[1], PROBE_SIZE[1]))
    scale = batch * size[0] * size[1] / (probe[0] * probe[1])
    needed = MARGIN * scale * activation_peak_bytes(model, probe, device, precision)
    free = free_bytes(device)
    if free is not None and needed > free:
        raise SegbenchError(
            f"{option} {size[0]}x{size[1]} (batch {batch}): one forward pass needs about {needed / 2**30:.1f} GiB, and"
            f" {free / 2**30:.1f} GiB are free on this {torch.device(device).type}; the system would kill the"
            " process. Choose a smaller size or batch.")
