"""Evaluation speed: full-resolution whole-image inference, fp32 vs bf16, and the quickstart's wall time.

* Inference: one 1024x2048 image at a time through the engine's own scoring code,
  ``segbench.engine.evaluate.predict`` (whole-image logits, up-sampled to the label size, argmax) plus
  the confusion-matrix update, in eval mode under ``torch.no_grad`` — what ``evaluate_confusion`` does
  per image. Each precision runs in the memory format segbench picks for it on this CPU (its defaults for each
  precision). Every (model, precision) runs in one process, interleaved, after a warm-up; medians.
* Quickstart: ``segbench run recipes/quickstart.yaml`` in a fresh runs directory with a fresh
  ``SEGBENCH_CACHE``, so the synthetic data generation is included; wall time of the whole command.

The script re-executes itself with segbench's allocator settings (see ``common.ensure_allocator_env``).

    python benchmarks/bench_eval.py [--models deeplabv3plus unet deeplabv3] [--repetitions 3] [--no-quickstart]
    python benchmarks/bench_eval.py --quickstart-only [--seeds 0 1 2]   # re-measure the quickstart only

Writes ``benchmarks/results/eval.json`` and ``.md``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_train_step import parse_crop  # noqa: E402
from run_arithmetic import run_arithmetic  # noqa: E402

NUM_CLASSES, IGNORE_INDEX = 19, 255
SIZE = (1024, 2048)
MODELS = ("deeplabv3plus", "unet", "deeplabv3")
QUICKSTART = common.ROOT / "recipes" / "quickstart.yaml"


class ScoreImage:
    """Score one image as ``evaluate_confusion`` does: ``predict`` then the confusion-matrix update."""

    def __init__(self, model, *, precision: str, device, size=SIZE):
        import torch

        from segbench.engine.evaluate import predict
        from segbench.engine.device import choose_numerics
        from segbench.engine.runtime import Runtime
        from segbench.functional.metrics import confusion_matrix
        from segbench.recipe.schema import EvaluationConfig

        self.predict, self.confusion_matrix = predict, confusion_matrix
        self.runtime = Runtime(device, precision, choose_numerics(precision, None, device).channels_last)
        self.device, self.precision, self.channels_last = device, precision, self.runtime.channels_last
        self.model = self.runtime.model(model).eval()
        self.config = EvaluationConfig()
        generator = torch.Generator().manual_seed(0)
        self.size = tuple(size)
        self.image = torch.randn(1, 3, *size, generator=generator)
        self.label = torch.randint(0, NUM_CLASSES, (1, *size), generator=generator, dtype=torch.uint8)

    @property
    def settings(self) -> str:
        autocast = " autocast" if self.precision != "fp32" else ""
        return f"{self.precision}{autocast}, {'channels-last' if self.channels_last else 'contiguous'}"

    def __call__(self):
        import torch

        with torch.no_grad():
            preds = self.predict(self.model, self.image, label_size=self.size, config=self.config,
                                 num_classes=NUM_CLASSES, runtime=self.runtime)
            return self.confusion_matrix(preds.to(torch.uint8).cpu(), self.label, num_classes=NUM_CLASSES,
                                         ignore_index=IGNORE_INDEX)


def measure_inference(models, *, size, warmup: int, repetitions: int, device: str, log) -> dict:
    common.import_segbench()
    from segbench.engine.device import describe_cpu

    from bench_train_step import build_registry_model, forward_flops

    torch_device = common.pick_device(device)
    precisions = common.gemm_precisions(torch_device)  # bf16 only where the hardware has it
    if "bf16" not in precisions and torch_device.type == "cpu":
        log(f"bf16 not measured: no native bf16 on this CPU ({describe_cpu().name}); segbench evaluates in fp32 here")
    variants, settings = {}, {}
    for model_name in models:
        for precision in precisions:
            score = ScoreImage(build_registry_model(model_name), precision=precision, device=torch_device,
                               size=size)
            variants[(model_name, precision)] = score
            settings[(model_name, precision)] = score.settings
    calls = {f"{m} {p}": call for (m, p), call in variants.items()}
    timings = common.interleaved(calls, device=torch_device, warmup=warmup, repetitions=repetitions, log=log)
    result = {}
    for (model_name, precision) in variants:
        timing = timings[f"{model_name} {precision}"]
        flops = forward_flops(build_registry_model(model_name, meta=True), 1, size)
        result.setdefault(model_name, {})[precision] = {
            **timing, "settings": settings[(model_name, precision)], "images_per_s": 1 / timing["median_s"],
            "forward_flops": flops, "achieved_flops_per_s": flops / timing["median_s"]}
    return result


def segbench_command() -> list[str]:
    script = Path(sys.executable).with_name("segbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "segbench.cli"]


def with_cache(cache: str, call):
    """``call()`` with ``SEGBENCH_CACHE`` pointing at ``cache`` (where the run's data was generated)."""
    before = os.environ.get("SEGBENCH_CACHE")
    os.environ["SEGBENCH_CACHE"] = cache
    try:
        return call()
    finally:
        if before is None:
            os.environ.pop("SEGBENCH_CACHE")
        else:
            os.environ["SEGBENCH_CACHE"] = before


def time_run(recipe: Path, overrides: list[str], log, *, arithmetic: bool = True) -> dict:
    """Wall time of ``segbench run RECIPE OVERRIDES`` from nothing (fresh cache and runs directory), its
    scores, its arithmetic (``run_arithmetic``, unless not wanted) and the machine it ran on."""
    machine = common.machine()  # measured before the run, so its GEMM does not overlap it
    with tempfile.TemporaryDirectory(prefix="segbench-run-") as tmp:
        env = {**os.environ, "SEGBENCH_CACHE": str(Path(tmp) / "cache"), "PYTHONPATH": os.pathsep.join(
            filter(None, [str(common.ROOT), os.environ.get("PYTHONPATH")]))}
        command = [*segbench_command(), "run", str(recipe), "--runs-dir", str(Path(tmp) / "runs"), *overrides]
        log(f"{' '.join(command)} (SEGBENCH_CACHE={env['SEGBENCH_CACHE']})")
        load_before = common.load_average()
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=common.ROOT)
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            raise RuntimeError(f"{recipe.name} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
        results_path = next((Path(tmp) / "runs").rglob("results.json"))
        results = json.loads(results_path.read_text())
        counted = with_cache(env["SEGBENCH_CACHE"], lambda: run_arithmetic(results_path.parent)) if arithmetic else {}
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{' '.join([recipe.name, *overrides])}: {wall:.0f} s wall, val mIoU {results['mIoU']:.4f}"
        + (f", {counted['total_gflop']:.0f} GFLOP" if counted else ""))
    return {"wall_time_s": wall, "training_time_s": results["wall_time_s"], "mIoU": results["mIoU"],
            "per_class_iou": results["per_class_iou"], "pixel_accuracy": results["pixel_accuracy"],
            "report_images": results["report_images"], "epochs": results["epochs"],
            "precision": results["precision"], "arithmetic": counted, "machine": machine,
            "load_average": [load_before, common.load_average()]}


def measure_quickstart(log, *, seed: int | None = None) -> dict:
    """``time_run`` of ``recipes/quickstart.yaml`` (at ``seed`` if given)."""
    overrides = [] if seed is None else [f"seed={seed}"]
    return {**time_run(QUICKSTART, overrides, log), "seed": 0 if seed is None else seed}


def markdown(report: dict) -> str:
    machine = report["machine"]
    if not report["inference"]:
        return _quickstart_markdown(report, ["# Quickstart wall time and scores", ""])
    lines = [
        "# Evaluation: whole-image inference at full resolution",
        "",
        f"One {report['size'][0]}x{report['size'][1]} image per forward (batch 1) through"
        " `segbench.engine.evaluate.predict` (logits at full resolution, argmax) and the confusion-matrix"
        " update; eval mode, no grad. Medians of"
        f" {report['repetitions']} interleaved repetitions after {report['warmup']} warm-up;"
        f" {machine['device']}; {common.machine_line(machine)}.",
        "",
        "| model | precision | settings | s/image (median) | images/s | GFLOP/s | bf16 speed-up | load avg |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for model_name, by_precision in report["inference"].items():
        for precision, v in by_precision.items():
            speedup = by_precision["fp32"]["median_s"] / v["median_s"] if "fp32" in by_precision else None
            ratio = "" if precision == "fp32" or speedup is None else f"{speedup:.2f}x"
            lines.append(f"| {model_name} | {precision} | {v['settings']} | {v['median_s']:.2f}"
                         f" | {v['images_per_s']:.2f} | {v['achieved_flops_per_s'] / 1e9:.0f} | {ratio}"
                         f" | {max(v['load_average']):.1f} |")
    return _quickstart_markdown(report, lines)


def _quickstart_markdown(report: dict, lines: list[str]) -> str:
    quick = report.get("quickstart")
    if quick:
        arithmetic = quick.get("arithmetic", {})
        lines += ["", f"Quickstart (`segbench run recipes/quickstart.yaml`, fresh `SEGBENCH_CACHE` and runs directory,"
                  f" data generation included): {quick['wall_time_s']:.0f} s wall time, of which training"
                  f" {quick['training_time_s']:.0f} s ({quick['epochs']} epochs, {quick['precision']}); report mIoU"
                  f" {quick['mIoU']:.3f} on {quick['report_images']} images; load average"
                  f" {quick['load_average'][0]:.1f} before, {quick['load_average'][1]:.1f} after."]
        if arithmetic:
            lines.append(f"Arithmetic: {arithmetic['total_gflop']:.0f} GFLOP (training {arithmetic['train_gflop']:.0f},"
                         f" evaluation {arithmetic['eval_gflop']:.0f}), i.e."
                         f" {arithmetic['total_gflop'] / quick['wall_time_s']:.0f} GFLOP/s over the whole command.")
        if "machine" in quick:
            lines.append(f"Machine: {common.machine_line(quick['machine'])}.")
        seeds = report.get("quickstart_seeds", {})
        if len(seeds) > 1:
            scores = [s["mIoU"] for s in seeds.values()]
            lines.append("Seeds: " + ", ".join(f"{k}: {v['mIoU']:.3f} ({v['wall_time_s']:.0f} s)"
                                                for k, v in seeds.items())
                         + f"; mean {sum(scores) / len(scores):.3f}, lowest {min(scores):.3f}.")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--warmup", type=common.count(0), default=1)
    parser.add_argument("--repetitions", type=common.count(1), default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=parse_crop, default=SIZE, help="HxW, default 1024x2048")
    parser.add_argument("--no-quickstart", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="with --no-quickstart: keep the quickstart figure already in results/eval.json")
    parser.add_argument("--quickstart-only", action="store_true",
                        help="measure the quickstart only; keep any inference figures already in results/eval.json")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="run the quickstart once per seed (default: the recipe's seed 0 only)")
    args = parser.parse_args()
    if args.quickstart_only and args.no_quickstart:
        parser.error("--quickstart-only and --no-quickstart exclude each other")
    common.ensure_allocator_env()

    def log(message):
        print(message, flush=True)

    previous_path = common.RESULTS / "eval.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    if args.quickstart_only:  # keeps the inference figures already there, if any
        report = previous or {"machine": common.machine(), "inference": {}}
    else:
        torch_device = common.pick_device(args.device)
        report = {"machine": {**common.machine(), "device": str(torch_device)}, "size": list(args.size),
                  "warmup": args.warmup, "repetitions": args.repetitions}
        report["inference"] = measure_inference(args.models, size=args.size, warmup=args.warmup,
                                                repetitions=args.repetitions, device=args.device, log=log)
    if not args.no_quickstart:
        seeds = {seed: measure_quickstart(log, seed=seed) for seed in args.seeds}
        report["quickstart"] = seeds[args.seeds[0]]
        report["quickstart_seeds"] = {str(seed): {k: v[k] for k in ("mIoU", "wall_time_s", "training_time_s")}
                                      for seed, v in seeds.items()}
    elif args.merge and "quickstart" in previous:
        report["quickstart"] = previous["quickstart"]
        report["quickstart_seeds"] = previous.get("quickstart_seeds", {})
    common.write_results("eval", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
