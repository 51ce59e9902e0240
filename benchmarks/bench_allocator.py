"""What segbench's allocator settings gain on this CPU: its training step with glibc's defaults and with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` (what the ``segbench`` command sets for itself).

glibc reads these settings once, at start, so each variant is a fresh child process; the two alternate
over the repetitions (A B, B A, ...) and each child reports the median of its timed steps. Workloads
and numerics are those of ``bench_numerics.py``: the quickstart's model at its batch and image size and
DeepLabV3+ R50 at 2 x 256x512, in what ``precision: auto`` picks on this CPU. Emulating an AVX2-only CPU:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        SEGBENCH_BENCHMARK_RESULTS=benchmarks/results/emulated_avx2 python benchmarks/bench_allocator.py

Writes ``benchmarks/results/allocator.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_numerics import workloads  # noqa: E402
from bench_train_step import SegbenchStep  # noqa: E402

VARIANTS = ("glibc defaults", "segbench settings")


def child(name: str, warmup: int, steps: int) -> None:
    """In a fresh process: median seconds per training step of one workload, as a JSON line."""
    workload = workloads()[name]
    step = SegbenchStep(workload.section, batch=workload.batch, crop=workload.size, device="cpu")
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({"median_s": statistics.median(times), "settings": step.settings}))


def run_variant(variant: str, name: str, warmup: int, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in common.ALLOCATOR_ENV}
    if variant == "segbench settings":
        env.update(common.ALLOCATOR_ENV)
    return common.run_child(Path(__file__), [name, "--warmup", str(warmup), "--steps", str(steps)], env=env)


def measure(name: str, *, repetitions: int, warmup: int, steps: int, log) -> dict:
    medians = {variant: [] for variant in VARIANTS}
    settings = None
    for repetition in range(repetitions):
        order = VARIANTS if repetition % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            result = run_variant(variant, name, warmup, steps)
            medians[variant].append(result["median_s"])
            settings = result["settings"]
            log(f"  {name}, {variant}: {result['median_s']:.3f} s/step (load {common.load_average()})")
    per_variant = {v: statistics.median(t) for v, t in medians.items()}
    return {"settings": settings, "median_s": per_variant, "child_medians_s": medians,
            "speedup": per_variant["glibc defaults"] / per_variant["segbench settings"]}


def markdown(report: dict) -> str:
    lines = ["# Allocator settings: segbench's training step with glibc defaults and with segbench's settings", "",
             f"{common.machine_line(report['machine'])}. Each variant a fresh process, alternating over"
             f" {report['repetitions']} repetitions; each process times {report['steps']} steps after"
             f" {report['warmup']} warm-up; medians.", "",
             "| workload | numerics (what `auto` picks) | glibc defaults s/step | segbench settings s/step"
             " | speed-up |", "|---|---|---:|---:|---:|"]
    for name, result in report["workloads"].items():
        times = result["median_s"]
        lines.append(f"| {name} | {result['settings']} | {times['glibc defaults']:.3f}"
                     f" | {times['segbench settings']:.3f} | {result['speedup']:.2f}x |")
    return "\n".join(lines + [""])


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--workloads", nargs="+", default=None,
                        help="names or their start (quickstart, deeplabv3plus); default: all")
    parser.add_argument("--repetitions", type=common.count(1), default=4)
    parser.add_argument("--warmup", type=common.count(0), default=2)
    parser.add_argument("--steps", type=common.count(1), default=7)
    parser.add_argument("--child", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.warmup, args.steps)
        return
    names = common.choose(parser, "--workloads", args.workloads, workloads())
    report = {"machine": common.machine(common.pick_device("cpu")), "repetitions": args.repetitions,
              "warmup": args.warmup, "steps": args.steps, "workloads": {}}
    print(common.machine_line(report["machine"]), flush=True)
    for name in names:
        report["workloads"][name] = measure(name, repetitions=args.repetitions, warmup=args.warmup,
                                            steps=args.steps, log=lambda m: print(m, flush=True))
    common.write_results("allocator", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
