"""How a DeepLabV3+ training step grows with crop size and batch size, and its peak memory.

segbench's default training path (``bench_train_step.SegbenchStep``: the engine's micro-step and
optimizer step, precision auto, channels-last, fused Adam) for every crop x batch configuration.

* Step time: one model and optimizer in one process, the configurations interleaved round by round
  after a warm-up round; medians.
* Peak memory: a child process per configuration builds the model and runs two steps (the second
  holds optimizer state, activations and gradients at once) and reports its peak RSS (CPU) or
  ``torch.cuda.max_memory_allocated`` (CUDA).

A batch of one cannot be trained: batch-norm in ASPP's image-pooling branch sees a single value per
channel and raises ``ValueError`` (the engine drops incomplete last batches for that reason); such a
configuration is listed as not feasible. The script re-executes itself with segbench's allocator
settings (see ``common.ensure_allocator_env``).

    python benchmarks/bench_scaling.py [--crops 256x512 512x1024] [--batches 1 2 4] [--repetitions 3]

Writes ``benchmarks/results/scaling.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_train_step import MODELS, SegbenchStep, crop_name, make_batch, parse_crop  # noqa: E402

MODEL = "deeplabv3plus"


def feasible(step: SegbenchStep, batch: int, crop) -> str | None:
    """None when a step runs; otherwise the error, e.g. batch-norm's refusal of a batch of one."""
    if batch > 1:
        return None
    from segbench.errors import RecipeError

    try:
        step.run(*make_batch(batch, (64, 64)))  # a small crop fails (or not) the same way, quickly
    except (ValueError, RecipeError) as exc:
        step.trainer.optimizer.zero_grad(set_to_none=True)
        return f"{type(exc).__name__}: {exc}"
    return None


def memory_child(batch: int, crop, device: str) -> dict:
    return common.two_step_memory(lambda: SegbenchStep(MODELS[MODEL], batch=batch, crop=crop, device=device), device)


def measure(crops, batches, *, warmup: int, repetitions: int, memory: bool, device: str, log) -> dict:
    torch_device = common.pick_device(device)
    step = SegbenchStep(MODELS[MODEL], batch=max(batches), crop=crops[0], device=device)
    log(f"{MODEL}: {step.settings}")
    configs, skipped = {}, {}
    for crop in crops:
        for batch in batches:
            name = f"{crop_name(crop)} x {batch}"
            problem = feasible(step, batch, crop)
            if problem is not None:
                skipped[name] = {"crop": list(crop), "batch": batch, "not_feasible": problem}
                log(f"  {name}: not feasible ({problem})")
                continue
            images, masks = make_batch(batch, crop)
            configs[name] = (crop, batch, lambda images=images, masks=masks: step.run(images, masks))
    timings = common.interleaved({name: call for name, (_, _, call) in configs.items()}, device=torch_device,
                                 warmup=warmup, repetitions=repetitions, log=log)
    settings = step.settings
    step = None  # free the model before the memory children start
    result = dict(skipped)
    for name, (crop, batch, _) in configs.items():
        seconds = timings[name]["median_s"]
        entry = {"crop": list(crop), "batch": batch, **timings[name], "images_per_s": batch / seconds,
                 "ms_per_megapixel": 1e3 * seconds / (batch * crop[0] * crop[1] / 1e6)}
        if memory:
            log(f"  peak memory of {name} (child process)")
            entry.update(common.run_child(Path(__file__), ["--config", crop_name(crop), str(batch),
                                                            "--device", device]))
        result[name] = entry
    order = [f"{crop_name(c)} x {b}" for c in crops for b in batches]
    return {"settings": settings, "configs": {name: result[name] for name in order}}


def markdown(report: dict) -> str:
    machine = report["machine"]
    configs = report["configs"]
    timed = [v for v in configs.values() if "median_s" in v]
    base = min(timed, key=lambda v: v["batch"] * v["crop"][0] * v["crop"][1]) if timed else None
    lines = [
        "# Scaling: DeepLabV3+ training step vs crop and batch size",
        "",
        f"segbench's default training path ({report['settings']}). Medians of {report['repetitions']} interleaved"
        f" steps after {report['warmup']} warm-up; peak memory from a child process per configuration (two"
        f" steps). {machine['device']}; {common.machine_line(machine)}.",
        "",
        "| crop | batch | s/step (median) | images/s | ms per megapixel | time vs pixels"
        " (relative to the smallest) | peak memory GiB (before steps) | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in configs.values():
        crop = f"{v['crop'][0]}x{v['crop'][1]}"
        if "not_feasible" in v:
            lines.append(f"| {crop} | {v['batch']} | not feasible |  |  |  |  |  |")
            continue
        pixels = v["batch"] * v["crop"][0] * v["crop"][1]
        base_pixels = base["batch"] * base["crop"][0] * base["crop"][1]
        relative = (v["median_s"] / base["median_s"]) / (pixels / base_pixels)
        memory = common.memory_cell(v)
        lines.append(f"| {crop} | {v['batch']} | {v['median_s']:.2f} | {v['images_per_s']:.2f}"
                     f" | {v['ms_per_megapixel']:.0f} | {relative:.2f} | {memory} | {max(v['load_average']):.1f} |")
    problems = {v["not_feasible"] for v in configs.values() if "not_feasible" in v}
    lines += ["", "'time vs pixels' is (step time ratio) / (pixel ratio) against the smallest configuration:"
              " 1.00 means step time grows exactly in proportion to the pixels per step. Peak memory in brackets:"
              " the child process before its first step (runtime, model, inputs)."]
    if problems:
        lines.append("Not feasible: a training batch of one; " + "; ".join(sorted(problems)) +
                     " (batch-norm in ASPP's image-pooling branch).")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--crops", nargs="+", type=parse_crop, default=[(256, 512), (512, 1024)])
    parser.add_argument("--batches", nargs="+", type=common.count(1), default=[1, 2, 4])
    parser.add_argument("--warmup", type=common.count(0), default=1)
    parser.add_argument("--repetitions", type=common.count(1), default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", nargs=2, metavar=("CROP", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.ensure_allocator_env()
    if args.child:
        print(json.dumps(memory_child(int(args.config[1]), parse_crop(args.config[0]), args.device)))
        return

    def log(message):
        print(message, flush=True)

    torch_device = common.pick_device(args.device)
    report = {"machine": {**common.machine(), "device": str(torch_device)}, "model": MODEL,
              "warmup": args.warmup, "repetitions": args.repetitions}
    report.update(measure(args.crops, args.batches, warmup=args.warmup, repetitions=args.repetitions,
                          memory=not args.no_memory, device=args.device, log=log))
    common.write_results("scaling", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
