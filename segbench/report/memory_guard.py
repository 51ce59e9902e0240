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

import torch

from segbench.errors import SegbenchError

PROBE_SIZE = (128, 256)
MARGIN = 4.0  # estimated peak x MARGIN must fit: the hooks miss workspaces and functional ops


def activation_peak_bytes(model: torch.nn.Module, size: tuple[int, int], device) -> int:
    """The most bytes of module outputs alive at once in one eval forward pass of a ``size`` image."""
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
        with torch.no_grad():
            model(torch.zeros(1, 3, *size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return state["peak"]


def free_bytes(device) -> int | None:
    """Memory this process may still take on ``device`` (None when unknown)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(model: torch.nn.Module, size: tuple[int, int], batch: int, device, *, option: str = "--size") -> None:
    """Refuse ``batch`` images of ``size`` when their estimated forward pass would not fit in free memory."""
    probe = (min(size[0], PROBE_SIZE[0]), min(size[1], PROBE_SIZE[1]))
    scale = batch * size[0] * size[1] / (probe[0] * probe[1])
    needed = MARGIN * scale * activation_peak_bytes(model, probe, device)
    free = free_bytes(device)
    if free is not None and needed > free:
        raise SegbenchError(
            f"{option} {size[0]}x{size[1]} (batch {batch}): one forward pass needs about {needed / 2**30:.1f} GiB, and"
            f" {free / 2**30:.1f} GiB are free on this {torch.device(device).type}; the system would kill the"
            " process. Choose a smaller size or batch.")
