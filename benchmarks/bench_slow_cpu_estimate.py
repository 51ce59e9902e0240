"""The quickstart's wall time on the AVX2-only CPU of the one slow-machine measurement, estimated here.

Only one run has been timed on a 2-core AVX2-only CPU (AMD EPYC without AVX-512 or bf16, ``torch.mm`` 2048²
about 48 GFLOP/s): the first quickstart recipe (a width-16 U-Net doubling its channels, AdamW, batches of 8,
38 epochs, fp32), 854 s from a fresh cache. This script runs two things on the machine at hand, with its
convolutions slowed to about that CPU's speed by an instruction-set limit (fresh cache and runs directory each):

* the current quickstart, whole (as ``bench_eval.py --quickstart-only`` does);
* the first recipe for ``--epochs`` 2 and 6, whose 38-epoch time is extrapolated along the line through the
  two (start-up, data generation and the final evaluation are in the intercept).

Both are then slowed alike, so the quickstart's estimate is its time here times 854 s over the first recipe's.
Two limits bracket the work outside the convolutions, whose speed on the slow CPU is not known:

* ``conv``: ``ONEDNN_MAX_CPU_ISA=SSE41`` (4-wide convolutions), ATen's AVX2 kernels elsewhere;
* ``all``: the same with ``ATEN_CPU_CAPABILITY=default`` (element-wise kernels without AVX2 as well).

The first recipe's 854 s were measured with an older segbench (data decoded every epoch, torch's loop for
AdamW); the same recipe runs a few seconds faster today, which makes the estimate a little high.

    python benchmarks/bench_slow_cpu_estimate.py [--limits conv all] [--seeds 0]

Writes ``benchmarks/results/slow_cpu_estimate.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_eval import QUICKSTART, time_run  # noqa: E402

# The one measurement on the slow CPU: the first quickstart recipe, seed 0, from a fresh cache.
ANCHOR = {"wall_time_s": 854.0, "epochs": 38, "cpu": "AMD EPYC, 2 cores, AVX2 only (no AVX-512, no bf16)",
          "gemm_fp32_gflop_per_s": 48, "precision": "fp32", "val_mIoU": 0.609}
# The first quickstart recipe, as it was run there.
FIRST_RECIPE = """\
seed: 0
model: {name: unet, width: 16}
data:
  dataset: {name: synthetic_city, train: 400, val: 100, train_extra: 0, size: [64, 128], seed: 0}
  train: {split: train, subset: {random: 16, seed: 0, invert: true}}
  select: {split: train, subset: {random: 16, seed: 0}}
  report: {split: val}
  train_transforms: [{name: hflip, p: 0.5}, {name: normalize}]
loss: {name: ohem_cross_entropy, threshold: 0.7, min_kept: 10000}
class_weighting: {name: enet, c: 1.02}
optimizer: {name: adamw, lr: 3.0e-3, weight_decay: 1.0e-4}
scheduler: {name: poly, power: 0.9, warmup_iterations: 10}
strategy: {name: scratch}
# What the anchor ran on the AVX2-only CPU; pinned, as `auto` picks channels-last under the convolution limit
# (torch's kernels stay AVX-512 there).
trainer: {epochs: 38, batch_size: 8, precision: fp32, channels_last: false, num_workers: 0, eval_every: 3,
          log_every: 12}
evaluation: {flip: true, batch_size: 8}
"""
LIMITS = {"conv": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
          "all": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}}


def measure(limit: str, seeds: list[int], epochs: tuple[int, int], log) -> dict:
    """Under the limit already in this process's environment: the quickstart per seed, the first recipe at
    two lengths, and the estimate for each seed."""
    short, long = epochs
    with tempfile.TemporaryDirectory(prefix="segbench-first-recipe-") as tmp:
        first = Path(tmp) / "first_quickstart.yaml"
        first.write_text(FIRST_RECIPE)
        runs = {n: time_run(first, [f"trainer.epochs={n}"], log, arithmetic=False) for n in (short, long)}
    per_epoch = (runs[long]["wall_time_s"] - runs[short]["wall_time_s"]) / (long - short)
    first_predicted = runs[long]["wall_time_s"] + per_epoch * (ANCHOR["epochs"] - long)
    scale = ANCHOR["wall_time_s"] / first_predicted
    quickstart = {}
    for seed in seeds:
        run = time_run(QUICKSTART, [f"seed={seed}"], log, arithmetic=False)
        quickstart[str(seed)] = {k: run[k] for k in ("wall_time_s", "training_time_s", "mIoU", "precision")}
        quickstart[str(seed)]["estimate_s"] = run["wall_time_s"] * scale
    return {"limit": limit, "environment": LIMITS[limit], "machine": common.machine(),
            "first_recipe": {str(n): {k: runs[n][k] for k in ("wall_time_s", "training_time_s", "mIoU")}
                             for n in (short, long)},
            "first_recipe_seconds_per_epoch": per_epoch, "first_recipe_predicted_s": first_predicted,
            "scale_to_slow_cpu": scale, "quickstart": quickstart}


def markdown(report: dict) -> str:
    anchor = report["anchor"]
    lines = ["# The quickstart on the slow AVX2-only CPU, estimated", "",
             f"Anchor: the first quickstart recipe took {anchor['wall_time_s']:.0f} s on {anchor['cpu']}"
             f" (`torch.mm` 2048² {anchor['gemm_fp32_gflop_per_s']} GFLOP/s fp32). Each row runs it here for"
             f" {report['epochs'][0]} and {report['epochs'][1]} epochs under the limit, extrapolates to"
             f" {anchor['epochs']}, and scales the quickstart's time here by the anchor over that prediction.", "",
             "| limit | environment | first recipe here, predicted | scale | quickstart here (seed: s) | estimate"
             " on the slow CPU | val mIoU |",
             "|---|---|---:|---:|---|---|---|"]
    for entry in report["limits"].values():
        quick = entry["quickstart"]
        environment = " ".join(f"{k}={v}" for k, v in entry["environment"].items())
        lines.append(f"| {entry['limit']} | `{environment}` | {entry['first_recipe_predicted_s']:.0f} s"
                     f" ({entry['first_recipe_seconds_per_epoch']:.1f} s/epoch) | {entry['scale_to_slow_cpu']:.2f}x"
                     f" | {_joined(quick, '{seed}: {wall_time_s:.0f} s')} | {_joined(quick, '{estimate_s:.0f} s')}"
                     f" | {_joined(quick, '{mIoU:.3f}')} |")
    for entry in report["limits"].values():
        lines.append(f"\n`{entry['limit']}`: {common.machine_line(entry['machine'])}.")
    return "\n".join(lines) + "\n"


def _joined(per_seed: dict, template: str) -> str:
    return ", ".join(template.format(seed=seed, **values) for seed, values in per_seed.items())


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--limits", nargs="+", choices=list(LIMITS), default=list(LIMITS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", nargs=2, type=common.count(1), default=[2, 6], metavar=("SHORT", "LONG"),
                        help="the first recipe's two lengths, extrapolated to 38 epochs (default 2 6)")
    parser.add_argument("--child", metavar="LIMIT", choices=list(LIMITS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs[0] >= args.epochs[1]:
        parser.error(f"--epochs {args.epochs[0]} {args.epochs[1]}: the first must be the shorter")
    if args.child:  # the limits take effect when torch is imported: this process was started with them
        log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        print(json.dumps(measure(args.child, args.seeds, tuple(args.epochs), log)))
        return
    common.ensure_allocator_env()
    report = {"anchor": ANCHOR, "epochs": args.epochs, "machine": common.machine(), "limits": {}}
    for limit in args.limits:
        print(f"limit {limit}: {LIMITS[limit]}", flush=True)
        report["limits"][limit] = common.run_child(
            Path(__file__), [limit, "--seeds", *map(str, args.seeds), "--epochs", *map(str, args.epochs)],
            timeout=3600, env={**os.environ, **LIMITS[limit]})
    common.write_results("slow_cpu_estimate", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
