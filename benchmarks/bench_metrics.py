"""Confusion-matrix update speed: segbench vs torchmetrics ``MulticlassJaccardIndex``.

Workload: 4 images of 1024x2048, 19 classes, ignore index 255 (random uint8 labels, ~10% ignored).
All variants run in the same process, interleaved, several repetitions; the medians are reported
and the matrices must be identical. The memory allocator changes the figures a lot, and it has to
be chosen before a process starts, so each allocator setting is measured in its own child process:
``plain`` (glibc defaults) and ``glibc-tuned`` (``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736``, which keeps freed blocks instead of returning them).

    python benchmarks/bench_metrics.py [--repetitions 11] [--allocators plain glibc-tuned]

Writes ``benchmarks/results/metrics.json`` and ``benchmarks/results/metrics.md``.
torchmetrics is needed only here: ``pip install torchmetrics``.
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

NUM_CLASSES, IGNORE_INDEX, SHAPE = 19, 255, (4, 1024, 2048)
ALLOCATORS = {
    "plain": {},
    "glibc-tuned": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"},
}


def make_labels(dtype):
    import torch

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, SHAPE, generator=generator, dtype=torch.uint8)
    target[torch.rand(SHAPE, generator=generator) < 0.1] = IGNORE_INDEX
    pred = torch.randint(0, NUM_CLASSES, SHAPE, generator=generator, dtype=torch.uint8)
    return pred.to(dtype), target.to(dtype)


def measure(repetitions: int) -> dict:
    """Run every variant in this process and return timings and the matrix check."""
    import torch
    import torchmetrics
    from torchmetrics.classification import MulticlassJaccardIndex

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from segbench.functional.metrics import ConfusionAccumulator

    pixels = SHAPE[0] * SHAPE[1] * SHAPE[2]
    load_before = os.getloadavg()[0]
    results = {}
    for dtype_name in ("uint8", "int64"):
        pred, target = make_labels(getattr(torch, dtype_name))
        ours = ConfusionAccumulator(NUM_CLASSES, ignore_index=IGNORE_INDEX)
        tm_default = MulticlassJaccardIndex(num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX)
        tm_fast = MulticlassJaccardIndex(num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX, validate_args=False)
        variants = {
            "segbench": (ours.reset, ours.update, lambda: ours.matrix),
            "torchmetrics (default)": (tm_default.reset, tm_default.update, lambda: tm_default.confmat),
            "torchmetrics (validate_args=False)": (tm_fast.reset, tm_fast.update, lambda: tm_fast.confmat),
        }
        times = {name: [] for name in variants}
        matrices = {}
        for repetition in range(repetitions + 1):  # the first round warms up and is not counted
            for name, (reset, update, matrix) in variants.items():
                reset()
                start = time.perf_counter()
                update(pred, target)
                elapsed = time.perf_counter() - start
                if repetition:
                    times[name].append(elapsed)
                matrices[name] = matrix().clone()
        ours_matrix = matrices["segbench"]
        identical = bool((ours_matrix[:, NUM_CLASSES] == 0).all()) and all(
            torch.equal(ours_matrix[:, :NUM_CLASSES], m.to(torch.int64))
            for name, m in matrices.items()
            if name != "segbench"
        )
        medians = {name: statistics.median(t) for name, t in times.items()}
        results[dtype_name] = {
            "matrices_identical": identical,
            "variants": {
                name: {
                    "median_seconds": medians[name],
                    "mpx_per_second": pixels / medians[name] / 1e6,
                    "best_seconds": min(times[name]),
                    "seconds": times[name],
                }
                for name in variants
            },
            "speedup_vs_torchmetrics_default": medians["torchmetrics (default)"] / medians["segbench"],
            "speedup_vs_torchmetrics_validate_args_false": (
                medians["torchmetrics (validate_args=False)"] / medians["segbench"]
            ),
        }
    return {
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "threads": torch.get_num_threads(),
        "repetitions": repetitions,
        # Other processes on a shared machine slow every variant; the ratios suffer less.
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "inputs": results,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Confusion-matrix update: segbench vs torchmetrics",
        "",
        f"{SHAPE[0]} images of {SHAPE[1]}x{SHAPE[2]}, {NUM_CLASSES} classes, ignore index {IGNORE_INDEX}"
        f" (~10% ignored). Medians of {report['repetitions']} interleaved repetitions in one process;"
        f" torch {report['torch']}, torchmetrics {report['torchmetrics']}, {report['threads']} threads,"
        f" {common.machine_line(report['machine'])}.",
        "",
        "| allocator | input dtype | variant | median ms | best ms | Mpx/s (median)"
        " | segbench speed-up (median) | matrices identical |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    loads = "; ".join(
        f"{allocator} {run['load_average_1min'][0]:.1f} -> {run['load_average_1min'][1]:.1f}"
        for allocator, run in report["allocators"].items()
    )
    lines[2] += f" 1-minute load average during the runs: {loads}."
    for allocator, run in report["allocators"].items():
        for dtype_name, result in run["inputs"].items():
            ours = result["variants"]["segbench"]["median_seconds"]
            for name, variant in result["variants"].items():
                speedup = "" if name == "segbench" else f"{variant['median_seconds'] / ours:.1f}x"
                lines.append(
                    f"| {allocator} | {dtype_name} | {name} | {variant['median_seconds'] * 1e3:.1f}"
                    f" | {variant['best_seconds'] * 1e3:.1f} | {variant['mpx_per_second']:.1f} | {speedup}"
                    f" | {result['matrices_identical']} |"
                )
    lines += [
        "",
        "`glibc-tuned`: `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736` in the environment.",
        "segbench is fastest with uint8 inputs (`logits.argmax(1).to(torch.uint8)`).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--repetitions", type=common.count(1), default=11)
    parser.add_argument("--allocators", nargs="+", choices=sorted(ALLOCATORS), default=list(ALLOCATORS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.require(parser, "torchmetrics", "the comparison with torchmetrics' MulticlassJaccardIndex")
    if args.child:
        print(json.dumps(measure(args.repetitions)))
        return

    runs = {}
    for allocator in args.allocators:
        env = {**os.environ, **ALLOCATORS[allocator]}
        if allocator == "plain":
            for key in ALLOCATORS["glibc-tuned"]:
                env.pop(key, None)
        runs[allocator] = common.run_child(Path(__file__), ["--repetitions", str(args.repetitions)], env=env)
        for dtype_name, result in runs[allocator]["inputs"].items():
            figures = ", ".join(
                f"{name} {v['mpx_per_second']:.1f} Mpx/s" for name, v in result["variants"].items()
            )
            print(
                f"[{allocator}, {dtype_name}] {figures}; speed-up {result['speedup_vs_torchmetrics_default']:.1f}x"
                f" vs default, {result['speedup_vs_torchmetrics_validate_args_false']:.1f}x vs"
                f" validate_args=False; matrices identical: {result['matrices_identical']}"
            )
    first = next(iter(runs.values()))
    report = {
        "workload": {"shape": list(SHAPE), "num_classes": NUM_CLASSES, "ignore_index": IGNORE_INDEX},
        "machine": common.machine(),
        "torch": first["torch"],
        "torchmetrics": first["torchmetrics"],
        "threads": first["threads"],
        "repetitions": args.repetitions,
        "allocators": runs,
    }
    common.write_results("metrics", report, markdown(report))


if __name__ == "__main__":
    main()
