"""The speed/accuracy table of the README: every finished run in a runs folder, timed with PyTorch and with
onnxruntime (its peer, in the same process, one after the other per run) through ``segbench benchmark``.

For each run: parameters and GFLOPs at 1024x2048 (``segbench models``), the run's mIoU (``results.json``),
and the median model-only and end-to-end latency on both backends at the run's full resolution, batch 1,
``--threads`` CPU threads (default 1, which is what a shared machine can give reproducibly). The records
also land in each run (``benchmark-<backend>.json``), so ``segbench plot --pareto`` draws them; this
script draws that picture too. The 1-minute load average is recorded beside the numbers.

    python benchmarks/bench_realtime.py RUNS_DIR [--threads 1] [--plot benchmarks/results/pareto_synthetic_city.png]

``--saved`` tabulates the measurements already saved in the runs instead of measuring again.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ORDER = ("unet", "deeplabv3plus", "deeplabv3", "lraspp_mobilenet_v3", "fast_scnn", "enet")


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--threads", type=common.count(1), default=1)
    parser.add_argument("--plot", type=Path, default=common.RESULTS / "pareto_synthetic_city.png")
    parser.add_argument("--saved", action="store_true", help="use the runs' saved benchmark records")
    args = parser.parse_args()
    common.ensure_allocator_env()
    common.import_segbench()
    import torch

    from segbench.model_info import describe_model
    from segbench.report.compare import collect_runs
    from segbench.report.latency import benchmark, read_latency
    from segbench.report.loading import default_registries, plan_for_run
    from segbench.report.machine import cpu_model
    from segbench.report.pareto import plot_pareto

    registries = default_registries()
    rows = [row for row in collect_runs(args.runs_dir) if row.complete]
    rows.sort(key=lambda row: ORDER.index(row.model) if row.model in ORDER else len(ORDER))
    results, loads, saved_at = [], [], []

    def full_size(run_path):  # what `segbench benchmark` times by default: the report split's first image
        from segbench.report.export import report_input_size
        from segbench.report.loading import load_run

        loaded, dataset = load_run(run_path, registries, device="cpu")
        return tuple(report_input_size(loaded, dataset))

    for row in rows:
        print(f"{row.name} ...", file=sys.stderr, flush=True)
        component = plan_for_run(row.run, registries).model  # the run's own model settings (e.g. unet width)
        with torch.device("meta"):
            model = component.entry.factory(component.entry.checkpoint_config(component.config), num_classes=19)
        info = describe_model(model, input_size=(1024, 2048))
        timed = {}
        for backend in ("torch", "onnxruntime"):
            loads.append(common.load_average())
            saved = read_latency(row.run.path, backend) if args.saved else None
            if saved is not None:
                wanted = (1, full_size(row.run.path), args.threads)
                if (saved.batch, tuple(saved.input_size), saved.threads) != wanted:
                    print(f"{row.name}: the saved {backend} record is batch {saved.batch} at"
                          f" {'x'.join(map(str, saved.input_size))} with {saved.threads} thread(s), not batch 1 at"
                          f" {'x'.join(map(str, wanted[1]))} with {args.threads}: measuring again",
                          file=sys.stderr, flush=True)
                    saved = None
            if saved is not None:
                saved_at.append(saved.measured_at)
            timed[backend] = saved or benchmark(row.run.path, backend=backend, threads=args.threads,
                                                registries=registries)
        loads.append(common.load_average())
        results.append({
            "run": row.name, "model": row.model, "recipe": row.recipe, "params": info.params, "gflops_1024x2048": round(info.gflops, 1),
            "mIoU": row.miou, "size": list(timed["torch"].input_size), "threads": args.threads,
            **{f"{backend}_{kind}_p50_ms": round(getattr(record, kind).p50_ms, 3)
               for backend, record in timed.items() for kind in ("model_only", "end_to_end")},
            "torch_precision": timed["torch"].precision, "threads_measured": timed["torch"].threads,
            "measured_at": timed["torch"].measured_at,
        })
    machine = {**common.machine(), "cpu": cpu_model(), "load_average_1min": loads}
    measured = 2 * len(results) - len(saved_at)
    load_note = "; ".join(
        ([f"{len(saved_at)} saved measurement(s) taken {min(saved_at)} to {max(saved_at)}"] if saved_at else []) +
        ([f"{measured} measured now, 1-minute load average {min(loads):.1f}-{max(loads):.1f} (shared machine)"]
         if measured else []))
    lines = [f"CPU: {machine['cpu']} ({machine['cpu_capability']}), {args.threads} thread(s), batch 1, at the runs'"
             f" full resolution; {load_note}.",
             "Latency p50 in ms, model only / end to end (normalisation, forward, up-sampling, argmax).", "",
             "| model | params | GFLOPs @ 1024x2048 | synthetic-city mIoU | CPU latency torch | CPU latency onnxruntime |"
             " onnxruntime speed-up (model only) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['model']}{' (' + r['recipe'] + ')' if r['recipe'] != r['model'] else ''} | {r['params']:,} | {r['gflops_1024x2048']:.1f} | {100 * r['mIoU']:.1f}% |"
            f" {r['torch_model_only_p50_ms']:.1f} / {r['torch_end_to_end_p50_ms']:.1f} ({r['torch_precision']}) |"
            f" {r['onnxruntime_model_only_p50_ms']:.1f} / {r['onnxruntime_end_to_end_p50_ms']:.1f} (fp32) |"
            f" {r['torch_model_only_p50_ms'] / r['onnxruntime_model_only_p50_ms']:.2f}x |")
    common.write_results("realtime", {"machine": machine, "runs": results}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(plot_pareto(args.runs_dir, args.plot))


if __name__ == "__main__":
    main()
