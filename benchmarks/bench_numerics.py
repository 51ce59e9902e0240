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

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_train_step import SegbenchStep, benchmark_plan, forward_flops  # noqa: E402


TIE = 0.05  # medians closer than this are a tie on a shared machine


def _quickstart() -> dict:
    common.import_segbench()
    from segbench.recipe.load import load_recipe

    return load_recipe(common.ROOT / "recipes" / "quickstart.yaml").data


def workloads() -> dict:
    """name -> (model section, batch, (H, W)): the quickstart as its recipe says, and DeepLabV3+."""
    quick = _quickstart()
    size = tuple(quick["data"]["dataset"]["size"])
    return {f"quickstart {model_label(quick['model'])}": (quick["model"], quick["trainer"]["batch_size"], size),
            "deeplabv3plus": ({"name": "deeplabv3plus"}, 2, (256, 512))}


def requested_numerics() -> dict:
    """name -> the recipe's (trainer.precision, trainer.channels_last): the quickstart's, and automatic."""
    trainer = _quickstart()["trainer"]
    quick = (trainer.get("precision", "auto"), trainer.get("channels_last"))
    return {name: quick if name.startswith("quickstart") else ("auto", None) for name in workloads()}


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


def measure(name: str, section: dict, batch: int, size, *, request: tuple[str, bool | None], device, warmup: int,
            repetitions: int, log) -> dict:
    """Every precision x memory format; ``auto``: what segbench runs the workload with (``request`` resolved)."""
    import torch

    from segbench.engine.device import choose_numerics

    steps = {label(p, c): SegbenchStep(section, batch=batch, crop=size, precision=p, channels_last=c)
             for p, c in combinations(device)}
    timings = common.interleaved(steps, device=device, warmup=warmup, repetitions=repetitions, log=log)
    chosen = choose_numerics(*request, device)
    fastest = min(timings, key=lambda key: timings[key]["median_s"])
    auto = label(chosen.precision, chosen.channels_last)
    auto_vs_fastest = timings[auto]["median_s"] / timings[fastest]["median_s"]
    with torch.device("meta"):
        model = benchmark_plan(section, batch=batch, crop=size).model.build(num_classes=19)
    flops = 3 * forward_flops(model, batch, size)
    return {"batch": batch, "size": list(size), "train_step_flops": flops, "variants": timings,
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
    lines += ["", "segbench's choice: what the recipe's `trainer.precision` and `trainer.channels_last` resolve to"
              " on this CPU (the quickstart's recipe sets `channels_last: true`; DeepLabV3+ leaves both to `auto`).",
              "", f"segbench's choice is the fastest combination (within {TIE:.0%}) on every workload." if agree else
              "segbench's choice is not the fastest everywhere: " + "; ".join(
                  f"{n}: {r['auto']} takes {r['auto_vs_fastest']:.2f}x the time of {r['fastest']}"
                  for n, r in report["workloads"].items() if not r["auto_is_fastest"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=None, help="default: all")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--merge", action="store_true", help="keep the other workloads already in the results file")
    args = parser.parse_args()
    common.ensure_allocator_env()
    device = common.pick_device("cpu")
    machine = common.machine(device)
    print(common.machine_line(machine), flush=True)
    if not machine["native_bf16"]:
        print(f"bf16 not measured: no native bf16 on this CPU ({machine['cpu_class']})", flush=True)
    chosen = {k: v for k, v in workloads().items() if args.workloads is None or k in args.workloads}
    requests = requested_numerics()
    stem = "numerics_" + re.sub(r"[^a-z0-9]+", "_", machine["cpu_class"].lower()).strip("_")
    report = {"machine": machine, "warmup": args.warmup, "repetitions": args.repetitions, "workloads": {}}
    previous = common.RESULTS / f"{stem}.json"
    if args.merge and previous.exists():
        report["workloads"] = json.loads(previous.read_text())["workloads"]
    for name, (section, batch, size) in chosen.items():
        report["workloads"][name] = measure(name, section, batch, size, request=requests[name], device=device,
                                            warmup=args.warmup, repetitions=args.repetitions,
                                            log=lambda m: print(m, flush=True))
        common.write_results(stem, report, markdown(report))  # partial results survive an interruption
    print(markdown(report))


if __name__ == "__main__":
    main()
