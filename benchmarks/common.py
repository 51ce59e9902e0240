"""Shared by the benchmark scripts: allocator set-up, devices, interleaved timing, peak memory, GEMM peak.

Timing rules: every variant that is compared runs in the same process, interleaved (A B C, A B C, ...),
the first round is a warm-up that is not counted, and medians are reported; the machine may be shared,
so the 1-minute load average is recorded next to every figure. Peak memory is measured in a child
process per configuration (peak RSS on the CPU, which a process can only read as a lifetime maximum;
``torch.cuda.max_memory_allocated`` on CUDA).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where result files go; another folder (a GPU check's, say) with SEGBENCH_BENCHMARK_RESULTS.
RESULTS = Path(os.environ.get("SEGBENCH_BENCHMARK_RESULTS") or Path(__file__).resolve().parent / "results")

# glibc malloc returns large freed blocks to the kernel, so each training step re-faults gigabytes of
# pages; keeping them made training 1.1-1.9x faster. Only read at process start: hence the re-exec.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows the script's whole docstring, line breaks kept."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def count(low: int):
    """An argparse type: an integer of at least ``low`` (``--repetitions 0`` has no median to report)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too few; give {low} or more")
        return value
    return parse


def choose(parser: argparse.ArgumentParser, option: str, requested, available) -> list:
    """The names in ``available`` that ``requested`` picks (all when it is None); a name picks itself, or
    every name it begins (``quickstart`` for the quickstart's long name). An unknown name is a usage error."""
    if requested is None:
        return list(available)
    chosen = []
    for wanted in requested:
        matches = [name for name in available if name == wanted] or \
                  [name for name in available if name.startswith(wanted)]
        if not matches:
            parser.error(f"{option}: no {wanted!r}; choose from " + ", ".join(repr(n) for n in available)
                         + " (or the start of one)")
        chosen += [name for name in matches if name not in chosen]
    return chosen


def require(parser: argparse.ArgumentParser, module: str, why: str) -> None:
    """Stop with a usage error naming the install command when a comparison library is missing."""
    if importlib.util.find_spec(module) is None:
        parser.error(f"{module} is not installed; {why} needs it: pip install -r benchmarks/requirements.txt")


def ensure_allocator_env() -> None:
    """Re-execute this script with segbench's allocator settings unless they are already in effect.

    The same settings the ``segbench`` command sets for itself; jemalloc via ``LD_PRELOAD`` counts too.
    """
    if not sys.platform.startswith("linux") or "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if all(os.environ.get(key) == value for key, value in ALLOCATOR_ENV.items()):
        return
    os.environ.update(ALLOCATOR_ENV)
    os.execv(sys.executable, [sys.executable, *sys.argv])


def allocator_note() -> str:
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return "jemalloc (LD_PRELOAD)"
    if all(os.environ.get(key) == value for key, value in ALLOCATOR_ENV.items()):
        return "glibc, " + " ".join(f"{k}={v}" for k, v in ALLOCATOR_ENV.items())
    return "glibc defaults"


def import_segbench() -> None:
    """Make ``segbench`` importable from a checkout that is not installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def quickstart_plan():
    """The quickstart recipe's validated plan and the registries it was built with (built-in and installed plugins)."""
    import_segbench()
    from segbench.plugins import make_plugin_manager
    from segbench.recipe.load import load_recipe
    from segbench.recipe.plan import build_plan
    from segbench.registry import build_registries

    registries = build_registries(make_plugin_manager())
    return build_plan(load_recipe(ROOT / "recipes" / "quickstart.yaml"), registries), registries


def pick_device(requested: str = "auto"):
    import_segbench()
    from segbench.engine.device import pick_device as segbench_pick_device

    return segbench_pick_device(requested)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def gemm_precisions(device) -> tuple[str, ...]:
    """The precisions whose GEMM throughput means something here: fp32 always; bf16 only where the hardware
    has it (a CPU without native bf16 emulates it, many times slower: minutes for one 4096^2 product)."""
    import torch

    if device.type == "cuda":
        return ("fp32", "bf16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    import_segbench()
    from segbench.engine.device import describe_cpu

    return ("fp32", "bf16") if describe_cpu().native_bf16 else ("fp32",)


_MACHINES: dict = {}


def machine(device=None, *, gemm_size: int = 2048) -> dict:
    """Which machine a result comes from: CPU model and class, the kernels torch uses, threads, allocator,
    GPU, and ``torch.mm`` throughput measured now (once per process), so figures from different machines
    can be told apart and scaled."""
    import torch

    import_segbench()
    from segbench.engine.cpu_speeds import KERNEL_ENVIRONMENT
    from segbench.engine.device import describe_cpu

    device = pick_device() if device is None else device
    key = (str(device), gemm_size)
    if key not in _MACHINES:
        cpu = describe_cpu()
        info = {"cpu_model": cpu.model, "cpu_family_model": cpu.family_model, "cpu_class": cpu.name,
                "cpu_flags": list(cpu.flags), "native_bf16": cpu.native_bf16, "cpu_capability": cpu.capability,
                "machine": platform.machine(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                "torch": torch.__version__, "allocator": allocator_note(), "device": str(device),
                "date": time.strftime("%Y-%m-%d %H:%M")}
        limits = {k: os.environ[k] for k in KERNEL_ENVIRONMENT if k in os.environ}
        if limits:  # a smaller instruction set emulated on a larger CPU: ratios carry over, not absolute times
            info["emulated"] = limits
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
        peak = gemm_peak(device, size=gemm_size, repetitions=3)
        info["gemm"] = {"size": gemm_size, "gflop_per_s": {k: round(v / 1e9, 1) for k, v in peak.items()},
                        "load_average": load_average()}
        if "bf16" not in peak and device.type == "cpu":
            info["gemm"]["note"] = f"bf16 not measured: no native bf16 on this CPU ({cpu.name})"
        _MACHINES[key] = info
    return dict(_MACHINES[key])


def machine_line(info: dict) -> str:
    """One line naming the machine of a result, for Markdown reports."""
    gemm = info.get("gemm", {})
    rates = " / ".join(f"{v:.0f} {k}" for k, v in gemm.get("gflop_per_s", {}).items())
    emulated = info.get("emulated")
    cpu_class = info.get("cpu_class", "CPU class not recorded") + (
        " emulated with " + " ".join(f"{k}={v}" for k, v in emulated.items()) if emulated else "")
    import_segbench()
    from segbench.cpuinfo import cpu_label

    # with the family and model numbers: one shortened name ("AMD EPYC") can cover CPUs of different speeds
    model = cpu_label(info.get("cpu_model", info.get("machine", "?")), info.get("cpu_family_model", ""))
    line = (f"{model} ({cpu_class}; torch kernels"
            f" {info.get('cpu_capability', '?')}), {info.get('threads', '?')} threads of {info.get('cpus', '?')} CPUs,"
            f" torch {info.get('torch', '?')}, allocator: {info.get('allocator', '?')}")
    if "gpu" in info:
        line += f", GPU {info['gpu']}"
    if rates:
        line += f"; torch.mm {gemm['size']}^2 measured in the same run: {rates} GFLOP/s"
    if "note" in gemm:
        line += f" ({gemm['note']})"
    return line


def interleaved(variants: dict, *, device, warmup: int = 1, repetitions: int = 3, log=None) -> dict:
    """Seconds per call of each variant (``name -> callable``), interleaved round by round.

    The first ``warmup`` rounds are not counted. Returns median, best and every time, plus the load
    average seen during the timed rounds.
    """
    times = {name: [] for name in variants}
    loads = []
    for round_index in range(warmup + repetitions):
        for name, call in variants.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
            if log is not None:
                log(f"  {'warm-up' if round_index < warmup else f'round {round_index - warmup + 1}'}"
                    f" {name}: {elapsed:.2f} s (load {load_average()})")
        if round_index >= warmup:
            loads.append(load_average())
    return {name: {"median_s": statistics.median(t), "best_s": min(t), "seconds": t, "load_average": loads}
            for name, t in times.items()}


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far.

    Linux: ``VmHWM`` of /proc/self/status. Not ``getrusage``'s ``ru_maxrss``: a child started by
    fork + exec inherits the parent's resident size at the fork as its maximum.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_memory_bytes(device) -> int:
    """Resident set size now (CPU, from /proc where available) or memory allocated by torch (CUDA)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_memory_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return peak_rss_bytes()


def reset_peak_memory(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def two_step_memory(make_step, device: str) -> dict:
    """Peak memory of two training steps (the second holds optimizer state, activations and gradients at once)."""
    torch_device = pick_device(device)
    reset_peak_memory(torch_device)
    step = make_step()
    before = current_memory_bytes(torch_device)
    for _ in range(2):
        step()
    synchronize(torch_device)
    return {"peak_memory_bytes": peak_memory_bytes(torch_device), "memory_before_steps_bytes": before,
            "memory_kind": "cuda max_memory_allocated" if torch_device.type == "cuda" else "peak RSS",
            "memory_load_average": load_average()}


def run_child(script: Path, args: list[str], *, timeout: float = 1800, env: dict | None = None) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter (this one's environment unless ``env``); its last
    stdout line is JSON. A failure raises with the child's own error output."""
    command = [sys.executable, str(script), "--child", *args]
    result = subprocess.run(command, env=os.environ.copy() if env is None else env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {result.returncode}:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def gemm_peak(device, *, size: int = 4096, repetitions: int = 5) -> dict:
    """Achieved FLOP/s of ``torch.mm`` on ``size``-square matrices (median of repetitions), in fp32 and,
    where the hardware has it, bf16 (see ``gemm_precisions``)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    out = {}
    for name in gemm_precisions(device):
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtypes[name])
        b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtypes[name])
        result = interleaved({name: lambda: torch.mm(a, b)}, device=device, warmup=1, repetitions=repetitions)
        out[name] = 2 * size**3 / result[name]["median_s"]
    return out


def write_results(stem: str, report: dict, markdown: str) -> None:
    """Write ``results/STEM.json`` and ``.md`` (each replaced whole, never left half-written); the JSON
    always carries the machine description."""
    import_segbench()
    from segbench.atomic import atomic_write_text

    if not isinstance(report.get("machine"), dict):
        report["machine"] = machine()
    line = machine_line(report["machine"])
    if line not in markdown:  # the Markdown names its machine too, whatever the script put in it
        markdown = markdown.rstrip("\n") + f"\n\nMachine: {line}.\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{stem}.md", markdown)
    print(f"wrote {RESULTS / (stem + '.json')} and {RESULTS / (stem + '.md')}", flush=True)


def gib(value: float) -> str:
    return f"{value / 2**30:.2f}"


def memory_cell(entry: dict) -> str:
    """``peak (before the first step)`` in GiB, or ``-`` when memory was not measured."""
    if "peak_memory_bytes" not in entry:
        return "-"
    return f"{gib(entry['peak_memory_bytes'])} ({gib(entry.get('memory_before_steps_bytes', 0))})"
