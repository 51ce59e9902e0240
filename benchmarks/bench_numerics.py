"""Which precision and memory format train fastest on this CPU, and whether ``auto`` picks it.

Each model's training step (``Trainer._micro_step`` + ``_optimizer_step``, fused Adam) runs in every
combination of fp32 / bf16 autocast and contiguous / channels-last memory, interleaved in one process
after a warm-up; medians. bf16 is measured only where the hardware has it (elsewhere it is emulated,
many times slower, and ``auto`` never picks it). The report names the fastest combination and the one
segbench's rule (``segbench.engine.device.choose_numerics``) picks; the results file is named after
the CPU class, so one machine of each class fills in the table.

Models: the quickstart's model at its image size and batch, and DeepLabV3+ R50 at 2 x 256x512.
Emulating an AVX2-only CPU on an AVX-512 one (torch's AVX2 kernels, oneDNN limited to AVX2):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_numerics.py

Writes ``benchmarks/results/numerics_<cpu class>.json`` and ``.md``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_train_step import SegbenchStep, benchmark_plan, forward_flops  # noqa: E402


TIE = 0.05  # medians closer than this are a tie on a shared machine


class Workload(NamedTuple):
    """One model at one batch and image size, with what its recipe asks of ``trainer.precision`` and
    ``trainer.channels_last`` (``None``: automatic)."""

    section: dict
    batch: int
    size: tuple[int, int]
    precision: str = "auto"
    channels_last: bool | None = None


def workloads() -> dict[str, Workload]:
    """The quickstart as its recipe says (model, batch, image size, numerics), and DeepLabV3+ left to ``auto``."""
    common.import_segbench()
    from segbench.recipe.load import load_recipe

    quick = load_recipe(common.ROOT / "recipes" / "quickstart.yaml").data
    trainer = quick["trainer"]
    return {f"quickstart {model_label(quick['model'])}": Workload(
                quick["model"], trainer["batch_size"], tuple(quick["data"]["dataset"]["size"]),
                trainer.get("precision", "auto"), trainer.get("channels_last")),
            "deeplabv3plus": Workload({"name": "deeplabv3plus"}, 2, (256, 512))}


def model_label(model: dict) -> str:
    """``unet 16-24-32-48-64, skip add``: which model a figure belongs to, as the recipe set it."""
    options = [f"{key} {value}" for key, value in model.items() if key not in ("name", "channels")]
    plan = "-".join(str(width) for width in model.get("channels") or ())
    return ", ".join([f"{model['name']} {plan}".strip(), *options])


def combinations(device) -> list[tuple[str, bool]]:
    return [(precision, channels_last) for precision in common.gemm_precisions(device)
            for channels_last in (False, True)]


def label(precision: str, channels_last: bool) -> str:
    return f"{precision}, {'channels-last' if channels_last else 'contiguous'}"


def measure(workload: Workload, *, device, warmup: int, repetitions: int, log) -> dict:
    """Every precision x memory format; ``auto`` (the key older results use): what segbench runs the workload
    with, its recipe's numerics resolved on this device."""
    import torch

    from segbench.engine.device import choose_numerics

    section, batch, size = workload.section, workload.batch, workload.size
    steps = {label(p, c): SegbenchStep(section, batch=batch, crop=size, precision=p, channels_last=c)
             for p, c in combinations(device)}
    timings = common.interleaved(steps, device=device, warmup=warmup, repetitions=repetitions, log=log)
    chosen = choose_numerics(workload.precision, workload.channels_last, device)
    fastest = min(timings, key=lambda key: timings[key]["median_s"])
    auto = label(chosen.precision, chosen.channels_last)
    auto_vs_fastest = timings[auto]["median_s"] / timings[fastest]["median_s"]
    with torch.device("meta"):
        model = benchmark_plan(section, batch=batch, crop=size).model.build(num_classes=19)
    flops = 3 * forward_flops(model, batch, size)
    return {"batch": batch, "size": list(size), "train_step_flops": flops, "variants": timings,
            "requested": {"precision": workload.precision, "channels_last": workload.channels_last},
            "fastest": fastest, "auto": auto, "auto_vs_fastest": auto_vs_fastest,
            "auto_is_fastest": auto_vs_fastest <= 1 + TIE}


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [f"# Precision and memory format on {machine['cpu_class']}", "",
             f"{common.machine_line(machine)}. Training step (fused Adam), medians of {report['repetitions']}"
             f" interleaved steps after {report['warmup']} warm-up; relative to fp32 contiguous.", "",
             "| workload | variant | s/step | GFLOP/s | vs fp32 contiguous | |", "|---|---|---:|---:|---:|---|"]
    for name, result in report["workloads"].items():
        base = result["variants"][label("fp32", False)]["median_s"]
        for variant, timing in result["variants"].items():
            marks = [m for m, on in (("fastest", variant == result["fastest"]),
                                     ("segbench's choice", variant == result["auto"]))
                     if on]
            lines.append(f"| {name} ({result['batch']} x {result['size'][0]}x{result['size'][1]}) | {variant}"
                         f" | {timing['median_s']:.3f} | {result['train_step_flops'] / timing['median_s'] / 1e9:.0f}"
                         f" | {base / timing['median_s']:.2f}x | {', '.join(marks)} |")
    agree = all(r["auto_is_fastest"] for r in report["workloads"].values())
    asked = "; ".join(f"{n}: precision {r['requested']['precision']}, channels_last"
                      f" {'auto' if r['requested']['channels_last'] is None else r['requested']['channels_last']}"
                      for n, r in report["workloads"].items() if "requested" in r)
    lines += ["", "segbench's choice: what the recipe's `trainer.precision` and `trainer.channels_last` resolve to"
              f" on this CPU{f' ({asked})' if asked else ''}.",
              "", f"segbench's choice is the fastest combination (within {TIE:.0%}) on every workload." if agree else
              "segbench's choice is not the fastest everywhere: " + "; ".join(
                  f"{n}: {r['auto']} takes {r['auto_vs_fastest']:.2f}x the time of {r['fastest']}"
                  for n, r in report["workloads"].items() if not r["auto_is_fastest"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--workloads", nargs="+", default=None,
                        help="names or their start (quickstart, deeplabv3plus); default: all")
    parser.add_argument("--warmup", type=common.count(0), default=1)
    parser.add_argument("--repetitions", type=common.count(1), default=5)
    parser.add_argument("--merge", action="store_true", help="keep the other workloads already in the results file")
    args = parser.parse_args()
    every = workloads()
    chosen = {name: every[name] for name in common.choose(parser, "--workloads", args.workloads, every)}
    common.ensure_allocator_env()
    device = common.pick_device("cpu")
    machine = common.machine(device)
    print(common.machine_line(machine), flush=True)
    if not machine["native_bf16"]:
        print(f"bf16 not measured: no native bf16 on this CPU ({machine['cpu_class']})", flush=True)
    stem = "numerics_" + re.sub(r"[^a-z0-9]+", "_", machine["cpu_class"].lower()).strip("_")
    report = {"machine": machine, "warmup": args.warmup, "repetitions": args.repetitions, "workloads": {}}
    previous = common.RESULTS / f"{stem}.json"
    if args.merge and previous.exists():
        report["workloads"] = json.loads(previous.read_text())["workloads"]
    for name, workload in chosen.items():
        report["workloads"][name] = measure(workload, device=device, warmup=args.warmup,
                                            repetitions=args.repetitions, log=lambda m: print(m, flush=True))
        common.write_results(stem, report, markdown(report))  # partial results survive an interruption
    print(markdown(report))


if __name__ == "__main__":
    main()
