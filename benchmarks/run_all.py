"""Run every benchmark and write ``benchmarks/results/summary.json`` and ``summary.md``.

In order, each as its own process (so each starts with the allocator settings it asks for):
``bench_train_step.py`` (training step, with a ``torch.profiler`` top-operator table),
``bench_scaling.py`` (crop and batch size), ``bench_eval.py`` (inference, quickstart),
``bench_metrics.py`` (confusion-matrix update), ``bench_data.py`` (decode + augmentation),
``bench_numerics.py`` (precision and memory format) and ``bench_allocator.py`` (allocator settings). The summary
collects their JSON results; ``--summary-only`` rebuilds it from the results already on disk.
Takes about 30 minutes on an idle 2-core CPU (50 with other jobs on the machine); ``--only`` picks
parts. The benchmark-only packages are in ``benchmarks/requirements.txt``.

    python benchmarks/run_all.py [--only train_step eval ...] [--summary-only] [--repetitions 3]
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("train_step", "scaling", "eval", "metrics", "data", "numerics", "allocator")
SCRIPTS = {"metrics": "bench_metrics.py", "data": "bench_data.py", "train_step": "bench_train_step.py",
           "scaling": "bench_scaling.py", "eval": "bench_eval.py", "numerics": "bench_numerics.py",
           "allocator": "bench_allocator.py"}
# The order they run in: DeepLabV3+ first, the two slowest models' training steps last.
STAGES = (("train_step", ["--profile", "--models", "deeplabv3plus"]), ("scaling", []), ("eval", []),
          ("metrics", []), ("data", []), ("numerics", []), ("allocator", []),
          ("train_step", ["--profile", "--models", "unet", "deeplabv3", "--merge"]))


def command_for(name: str, extra: list[str], repetitions: int | None) -> list[str]:
    if repetitions is not None and name in ("train_step", "scaling", "eval"):
        extra = [*extra, "--repetitions", str(repetitions)]
    return [sys.executable, str(HERE / SCRIPTS[name]), *extra]


def load(name: str) -> dict | None:
    path = common.RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---- summary ------------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def cpu_class_of(report: dict | None) -> str:
    """The CPU class a result file names (older files only recorded torch's capability)."""
    machine = (report or {}).get("machine")
    if not isinstance(machine, dict):
        return "not recorded (the AVX-512 test machine)" if report else "?"
    if "gpu" in machine:
        return machine["gpu"]
    name = machine.get("cpu_class") or {"AVX512": "AVX-512", "AVX2": "AVX2"}.get(machine.get("cpu_capability"), "?")
    return f"emulated {name}" if machine.get("emulated") else name


def numerics_rows() -> list[tuple]:
    """Per CPU class: the training step in what segbench runs it with vs fp32 with contiguous memory."""
    rows = []
    for path in sorted(common.RESULTS.glob("numerics_*.json")):
        report = json.loads(path.read_text())
        for name, result in report["workloads"].items():
            base, auto = result["variants"]["fp32, contiguous"], result["variants"][result["auto"]]
            if result["auto"] == "fp32, contiguous":
                others = [k for k in result["variants"] if k != "fp32, contiguous"]
                rows.append((cpu_class_of(report), f"training step, {name}, segbench runs {result['auto']}",
                             f"{base['median_s']:.3f} s/step",
                             "; ".join(f"{k} {result['variants'][k]['median_s']:.3f} s" for k in others),
                             _ratio(min(result["variants"][k]["median_s"] for k in others), base["median_s"])))
            else:
                rows.append((cpu_class_of(report), f"training step, {name}, segbench runs {result['auto']}",
                             f"{auto['median_s']:.3f} s/step", f"fp32, contiguous {base['median_s']:.3f} s/step",
                             _ratio(base["median_s"], auto["median_s"])))
    return rows


def allocator_rows() -> list[tuple]:
    """Per CPU class (an emulated class's results in a folder of their own): glibc defaults vs segbench's settings."""
    rows = []
    for path in sorted([common.RESULTS / "allocator.json", *common.RESULTS.glob("*/allocator.json")]):
        if path.exists():
            report = json.loads(path.read_text())
            for name, result in report["workloads"].items():
                times = result["median_s"]
                rows.append((cpu_class_of(report), f"training step, {name}, allocator ({result['settings']})",
                             f"{times['segbench settings']:.3f} s/step",
                             f"glibc defaults {times['glibc defaults']:.3f} s/step", f"{result['speedup']:.2f}x"))
    return rows


def headline(results: dict) -> list[str]:
    """One row per comparison: what segbench does, what it is compared with, the ratio, the CPU class."""
    rows = []
    train = results.get("train_step")
    if train:
        cpu = cpu_class_of(train)
        shape = f"{train['batch']} x {train['crop'][0]}x{train['crop'][1]}"
        for model_name, result in train["models"].items():
            v = result["variants"]
            ours, plain = v["segbench"], v["plain fp32"]
            rows.append((cpu, f"training step, {model_name}, {shape}", f"{ours['images_per_s']:.2f} img/s",
                         f"plain fp32 PyTorch loop {plain['images_per_s']:.2f} img/s",
                         _ratio(plain["median_s"], ours["median_s"])))
            if "smp plain fp32" in v:
                smp = v["smp plain fp32"]
                memory = ""
                if "peak_memory_bytes" in ours and "peak_memory_bytes" in smp:
                    memory = f"; peak memory {common.gib(ours['peak_memory_bytes'])} vs" \
                             f" {common.gib(smp['peak_memory_bytes'])} GiB"
                rows.append((cpu, "training step, DeepLabV3+ R50 vs smp DeepLabV3Plus",
                             f"{ours['images_per_s']:.2f} img/s", f"smp, plain fp32 loop {smp['images_per_s']:.2f}"
                             f" img/s{memory}", _ratio(smp["median_s"], ours["median_s"])))
    evaluation = results.get("eval")
    if evaluation:
        cpu = cpu_class_of(evaluation)
        for model_name, by_precision in evaluation["inference"].items():
            if {"fp32", "bf16"} <= set(by_precision):
                fp32, bf16 = by_precision["fp32"], by_precision["bf16"]
                size = f"{evaluation['size'][0]}x{evaluation['size'][1]}"
                rows.append((cpu, f"inference {size}, {model_name}", f"bf16 {bf16['images_per_s']:.2f} img/s",
                             f"fp32 {fp32['images_per_s']:.2f} img/s", _ratio(fp32["median_s"], bf16["median_s"])))
    metrics = results.get("metrics")
    if metrics:
        cpu = cpu_class_of(metrics)
        tuned = metrics["allocators"].get("glibc-tuned") or next(iter(metrics["allocators"].values()))
        for dtype_name, result in tuned["inputs"].items():
            variants = result["variants"]
            ours = variants["segbench"]
            for other in ("torchmetrics (default)", "torchmetrics (validate_args=False)"):
                rows.append((cpu, f"confusion matrix, 4 x 1024x2048, {dtype_name} labels",
                             f"{ours['mpx_per_second']:.0f} Mpx/s",
                             f"{other} {variants[other]['mpx_per_second']:.0f} Mpx/s",
                             _ratio(variants[other]["median_seconds"], ours["median_seconds"])))
    data = results.get("data")
    if data:
        cpu = cpu_class_of(data)
        tuned = data["allocators"].get("glibc-tuned") or next(iter(data["allocators"].values()))
        for stage, other in (("decode_and_augment", "PIL + transforms.functional"), ("augment", "albumentations")):
            ours = next(v for name, v in tuned[stage].items() if name.startswith("segbench"))
            theirs = tuned[stage][other]
            rows.append((cpu, f"data, {stage.replace('_', ' ')} per core (2048x1024 -> 512x1024)",
                         f"{ours['median_seconds'] * 1e3:.0f} ms/img", f"{other} {theirs['median_seconds'] * 1e3:.0f}"
                         " ms/img", _ratio(theirs["median_seconds"], ours["median_seconds"])))
    rows += numerics_rows() + allocator_rows()
    lines = ["| CPU class | benchmark | segbench | compared with | segbench speed-up |", "|---|---|---|---|---:|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return lines


def section(markdown: str) -> list[str]:
    """A benchmark's own Markdown report, its title demoted below the summary's headings."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines[0] = "###" + lines[0][1:]
    return [*lines, ""]


def train_step_section(report: dict) -> list[str]:
    """The training-step report without its (long) profiles; those stay in train_step.md."""
    import bench_train_step

    stripped = json.loads(json.dumps(report))
    for result in stripped["models"].values():
        for variant in result["variants"].values():
            variant.pop("profile", None)
    return section(bench_train_step.markdown(stripped))


def summary_markdown(results: dict, *, started: str, took_s: float | None) -> str:
    machine = next((r["machine"] for r in (results.get("train_step"), results.get("eval"), results.get("scaling"))
                    if r), None)
    lines = ["# Performance", ""]
    if machine:
        lines += [f"Measured on {machine['cpus']} {machine['device'].upper()} cores"
                  f" ({machine['cpu_capability']}{', ' + machine['gpu'] if 'gpu' in machine else ''}),"
                  f" torch {machine['torch']}, allocator {machine['allocator']}; {machine.get('date', started)}"
                  + (f", whole suite {took_s / 60:.0f} min" if took_s else "") + ". Every compared pair ran"
                  " interleaved in one process (medians); the machine was shared, so the load average is"
                  " given next to each figure and ratios are more reliable than absolute times. Reproduce"
                  " with `python benchmarks/run_all.py` (`pip install -r benchmarks/requirements.txt`).", ""]
    lines += headline(results) + [""]
    if results.get("train_step"):
        lines += train_step_section(results["train_step"])
    for name in ("scaling", "eval"):
        path = common.RESULTS / f"{name}.md"
        if results.get(name) and path.exists():
            lines += section(path.read_text())
    for name in ("metrics", "data"):
        path = common.RESULTS / f"{name}.md"
        if results.get(name) and path.exists():
            lines += section(path.read_text())
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--summary-only", action="store_true", help="rebuild the summary from existing results")
    parser.add_argument("--repetitions", type=common.count(1), default=None,
                        help="timed repetitions for train_step, scaling and eval (their default: 3)")
    args = parser.parse_args()
    common.ensure_allocator_env()
    started = time.strftime("%Y-%m-%d %H:%M")
    start = time.perf_counter()
    took = None
    if not args.summary_only:
        for name, extra in STAGES:
            if name not in args.only:
                continue
            command = command_for(name, extra, args.repetitions)
            print(f"== {name}: {' '.join(command)} (load average {common.load_average()})", flush=True)
            step_start = time.perf_counter()
            subprocess.run(command, check=True, cwd=common.ROOT)
            print(f"== {name}: {time.perf_counter() - step_start:.0f} s", flush=True)
        took = time.perf_counter() - start
    results = {name: load(name) for name in BENCHMARKS}
    # Each part keeps the machine it was measured on; the summary's own is where it was assembled.
    summary = {"machine": common.machine(), "started": started, "took_s": took,
               "load_average_at_end": common.load_average(), **results}
    text = summary_markdown(results, started=started, took_s=took)
    print(text)
    common.write_results("summary", summary, text)


if __name__ == "__main__":
    main()
