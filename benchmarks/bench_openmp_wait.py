"""How idle OpenMP threads wait: training throughput alone and with two runs sharing the cores.

torch's Linux wheels use libgomp, which reads its wait settings once, at start: each variant is a
fresh ``segbench run recipes/quickstart.yaml trainer.epochs=E`` process (the data generated once, beforehand).

* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, idle threads sleep at once;
* ``short_spin``: ``GOMP_SPINCOUNT=10000``, what the ``segbench`` command sets;
* ``long_spin``: ``GOMP_SPINCOUNT=300000``, libgomp's own default.

Alone, the variants alternate over the repetitions (medians of the wall time and of the logged
images/s). ``--shared`` also starts two runs of each variant at once, the case that spinning hurts.

    python benchmarks/bench_openmp_wait.py [--epochs 6] [--repetitions 2] [--shared] [--num-workers 2]

Writes ``benchmarks/results/openmp_wait_workers<N>.json`` and ``.md``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_eval import QUICKSTART, segbench_command  # noqa: E402

VARIANTS = {"passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "short_spin": {"GOMP_SPINCOUNT": "10000"},
            "long_spin": {"GOMP_SPINCOUNT": "300000"}}


def _environment(cache: Path, variant: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**env, **variant, "SEGBENCH_CACHE": str(cache)}


def _start(runs: Path, cache: Path, variant: dict, overrides: list[str], seed: int) -> subprocess.Popen:
    command = [*segbench_command(), "run", str(QUICKSTART), "--runs-dir", str(runs), *overrides, f"seed={seed}"]
    return subprocess.Popen(command, env=_environment(cache, variant), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=common.ROOT)


def _finish(process: subprocess.Popen, runs: Path) -> float:
    """The run's mean logged training images/s."""
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the quickstart failed ({process.returncode}):\n{err[-3000:]}")
    (metrics,) = runs.rglob("metrics.jsonl")
    rates = [r["images_per_s"] for r in map(json.loads, metrics.read_text().splitlines()) if r["type"] == "train"]
    return statistics.mean(rates)


def measure(tmp: Path, name: str, copies: int, overrides: list[str], repetition: int) -> dict:
    started = time.perf_counter()
    runs = [tmp / f"runs-{name}-{copies}-{repetition}-{i}" for i in range(copies)]
    processes = [_start(r, tmp / "cache", VARIANTS[name], overrides, seed=i) for i, r in enumerate(runs)]
    rates = [_finish(p, r) for p, r in zip(processes, runs)]
    return {"wall_s": time.perf_counter() - started, "images_per_s": statistics.mean(rates)}


def markdown(report: dict) -> str:
    lines = [f"# OpenMP wait policy ({report['machine']['cpus']} CPUs, quickstart recipe,"
             f" {report['epochs']} epochs per run, {report['num_workers']} data workers)", "",
             "| variant | settings | alone: wall s | alone: images/s | two at once: wall s |", "|---|---|---|---|---|"]
    for name, entry in report["variants"].items():
        shared = entry.get("shared_wall_s")
        lines.append(f"| {name} | {' '.join(f'{k}={v}' for k, v in VARIANTS[name].items())} | {entry['wall_s']:.1f}"
                     f" | {entry['images_per_s']:.1f} | {'-' if shared is None else f'{shared:.1f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--epochs", type=common.count(1), default=6)
    parser.add_argument("--repetitions", type=common.count(1), default=2)
    parser.add_argument("--shared", action="store_true", help="also time two runs of each variant at once")
    parser.add_argument("--num-workers", type=common.count(0), default=0, help="DataLoader worker processes per run")
    args = parser.parse_args()
    overrides = [f"trainer.epochs={args.epochs}", f"trainer.num_workers={args.num_workers}"]
    with tempfile.TemporaryDirectory(prefix="segbench-openmp-") as tmp:
        tmp = Path(tmp)
        measure(tmp, "short_spin", 1, ["trainer.epochs=1"], repetition=-1)  # generates the data once, so no variant pays for it
        samples = {name: [] for name in VARIANTS}
        for repetition in range(args.repetitions):
            order = list(VARIANTS) if repetition % 2 == 0 else list(reversed(VARIANTS))
            for name in order:
                samples[name].append(measure(tmp, name, 1, overrides, repetition))
                print(name, samples[name][-1], flush=True)
        variants = {name: {key: statistics.median(s[key] for s in runs) for key in ("wall_s", "images_per_s")}
                    for name, runs in samples.items()}
        if args.shared:
            for name in VARIANTS:
                variants[name]["shared_wall_s"] = measure(tmp, name, 2, overrides, repetition=0)["wall_s"]
                print(name, "shared", variants[name]["shared_wall_s"], flush=True)
    report = {"machine": common.machine(), "epochs": args.epochs, "num_workers": args.num_workers,
              "repetitions": args.repetitions, "variants": variants}
    common.write_results(f"openmp_wait_workers{args.num_workers}", report, markdown(report))


if __name__ == "__main__":
    main()
