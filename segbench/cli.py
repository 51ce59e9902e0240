"""The ``segbench`` command line."""
from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path

from segbench import __version__
from segbench.errors import SegbenchError


def _registries():
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    return build_registries(make_plugin_manager())


def _add_overrides(parser):
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override recipe values, e.g. optimizer.lr=1.0e-4 trainer.epochs=2")


def image_size(text: str) -> tuple[int, int]:
    """``HxW`` as ``(H, W)`` (an argparse type: a bad value exits with status 2 and the usage)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write HEIGHTxWIDTH, e.g. 512x1024") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: height and width must be positive")
    return height, width


def _add_runs_dir(parser):
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where run directories live (default: $SEGBENCH_RUNS or ./runs)")


def cmd_run(args) -> int:
    from segbench.engine.runner import run_recipe_file

    run_recipe_file(args.recipe, args.overrides, runs_dir=args.runs_dir, restart=args.restart,
                    smoke=args.smoke, device=args.device)
    return 0


def cmd_show(args) -> int:
    from segbench.recipe.load import dump_yaml, load_recipe
    from segbench.recipe.plan import build_plan
    recipe = load_recipe(args.recipe, args.overrides, smoke=args.smoke)
    plan = build_plan(recipe, _registries())  # validate before printing
    print(f"# {recipe.name}: resolved from {' <- '.join(recipe.files)}")
    print(f"# hash {plan.hash}")
    print(dump_yaml(recipe.data), end="")
    return 0


def cmd_list(args) -> int:
    from segbench.registry import KINDS

    registries = _registries()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        if kind not in KINDS:
            raise SegbenchError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
        print(f"{kind}:")
        for entry in registries[kind]:
            aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
            print(f"  {entry.name:<24} {entry.plugin}{aliases}")
            if args.verbose and kind == "models":
                _print_model_info(entry)
    return 0


def _print_model_info(entry, input_size=(512, 1024)):
    from segbench.model_info import describe_model

    model = entry.factory(entry.default_config(), num_classes=19)
    info = describe_model(model, input_size=input_size)
    print(f"      params {info.params:,}  size {info.size_mb:.1f} MB  {info.gflops:.1f} GFLOPs"
          f" at {input_size[0]}x{input_size[1]}")


def cmd_models(args) -> int:
    from segbench.model_info import describe_model

    registries = _registries()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"| model | plugin | params | size MB | GFLOPs @ {size[0]}x{size[1]} |")
    print("|---|---|---:|---:|---:|")
    for entry in registries.models:
        info = describe_model(entry.factory(entry.default_config(), num_classes=19), input_size=size)
        print(f"| {entry.name} | {entry.plugin} | {info.params:,} | {info.size_mb:.1f} | {info.gflops:.1f} |")
    return 0


def cmd_plugins(args) -> int:
    from segbench.plugins import make_plugin_manager, plugin_infos

    for info in plugin_infos(make_plugin_manager()):
        print(f"{info.name:<36} {info.distribution} {info.version}")
    return 0


def cmd_synth(args) -> int:
    from segbench.synth import generate_city

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SegbenchError(f"--size {args.size!r}: write HEIGHTxWIDTH, e.g. 128x256") from None
    kwargs = {k: v for k, v in (("train", args.train), ("val", args.val), ("train_extra", args.train_extra))
              if v is not None}
    report = generate_city(Path(args.dir), size=(height, width), seed=args.seed, progress=True, **kwargs)
    print(f"wrote a Cityscapes tree to {args.dir}: {report}")
    return 0


def cmd_evaluate(args) -> int:
    from segbench.report.evaluate_cli import evaluate_command

    evaluate_command(args)
    return 0


def cmd_export(args) -> int:
    from segbench.report.export import export_command

    export_command(args)
    return 0


def cmd_benchmark(args) -> int:
    from segbench.report.latency import benchmark_command

    benchmark_command(args)
    return 0


def cmd_compare(args) -> int:
    from segbench.report.compare import compare_command

    compare_command(args)
    return 0


def cmd_predict(args) -> int:
    from segbench.report.predict import predict_command

    predict_command(args)
    return 0


def cmd_plot(args) -> int:
    from segbench.report.plot import plot_command

    plot_command(args)
    return 0


def cmd_emit_slurm(args) -> int:
    from segbench_jobs.emit import emit_command

    emit_command(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"segbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="train and evaluate a recipe (resumes an interrupted run)")
    p.add_argument("recipe", type=Path)
    _add_overrides(p)
    _add_runs_dir(p)
    p.add_argument("--restart", action="store_true", help="discard an existing unfinished run and start over")
    p.add_argument("--smoke", action="store_true",
                   help="the same recipe on a tiny synthetic city, a few iterations, small crops")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the recipe's trainer.device)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="print the resolved recipe as YAML")
    p.add_argument("recipe", type=Path)
    _add_overrides(p)
    p.add_argument("--smoke", action="store_true", help="show the --smoke variant")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="registered components per kind, with their plugins")
    p.add_argument("kind", nargs="?", help="models, datasets, losses, schedulers, strategies, optimizers,"
                                            " class_weightings")
    p.add_argument("--verbose", "-v", action="store_true", help="for models: parameters, size and GFLOPs")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("models", help="table of models: parameters, size, GFLOPs")
    p.add_argument("--size", default="512x1024", help="input HxW for GFLOPs (default 512x1024)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("plugins", help="installed plugins and their distributions")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("synth", help="write a synthetic Cityscapes-format street-scene tree")
    p.add_argument("dir")
    p.add_argument("--train", type=int, default=None)
    p.add_argument("--val", type=int, default=None)
    p.add_argument("--train-extra", type=int, default=None)
    p.add_argument("--size", default="128x256", help="HEIGHTxWIDTH (default 128x256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("evaluate", help="score a run or checkpoint with the official Cityscapes rule")
    p.add_argument("target", type=Path, help="a run directory or a checkpoint file")
    p.add_argument("--split", default="report", help="report (default), select, or a dataset split like val")
    p.add_argument("--checkpoint", default=None, help="best or last (default: the recipe's choice)")
    p.add_argument("--export-labelids", type=Path, default=None, metavar="DIR",
                   help="write full-resolution labelId PNGs for the official tools")
    p.add_argument("--device", default=None)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="onnxruntime: score an exported ONNX file instead (see segbench export)")
    p.add_argument("--onnx", type=Path, default=None, help="the ONNX file (default: the run's newest export)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="write a run's model as an ONNX file that onnxruntime loads")
    p.add_argument("run_dir", type=Path, help="a run directory or a checkpoint file")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--size", type=image_size, default=None, metavar="HxW",
                       help="fixed input size (default: the report images' size)")
    shape.add_argument("--dynamic", action="store_true", help="any batch size, height and width")
    p.add_argument("--out", type=Path, default=None, help="default <run>/export/<model>-<HxW|dynamic>.onnx")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--checkpoint", default=None, help="best or last (default: the recipe's choice)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="forward latency (p50/p90, images/s) as deployed; saved into the run")
    p.add_argument("target", type=Path, metavar="RUN_DIR|RECIPE")
    p.add_argument("--size", type=image_size, default=None, metavar="HxW",
                   help="input size (default: the report images' full resolution)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's current setting)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: the recipe's trainer.device)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repetitions (default: at least 20 and at least 2 s of timing)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: at least 3 and 0.5 s)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("compare", help="results table of runs (Markdown or CSV)")
    p.add_argument("runs_dir", nargs="?", type=Path, default=None)
    p.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    p.add_argument("--speed", action="store_true", help="measure inference images/s on this device")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("predict", help="colourised predictions, overlays and comparison panels")
    p.add_argument("run_dir", type=Path)
    p.add_argument("images", nargs="+", type=Path, metavar="PATH", help="image files, folders (recursive), videos")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--labels", nargs="*", type=Path, default=None, help="labelIds PNGs, one per image")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("plot", help="training loss and validation mIoU curves; --pareto: mIoU vs latency")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--pareto", action="store_true",
                   help="one runs folder: mIoU against benchmarked latency (log scale), each run labelled")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("emit-slurm", help="print a bash script that submits recipes as chained sbatch jobs")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recipe files or folders, then key=value overrides")
    p.add_argument("--out", type=Path, default=None, help="where job scripts are written (default jobs/out)")
    p.add_argument("--smoke", action="store_true")
    _add_runs_dir(p)
    p.set_defaults(func=cmd_emit_slurm)
    return parser


# glibc malloc hands big blocks back to the kernel after every step, so each training step re-faults
# gigabytes of pages; keeping them mapped made training 1.1-1.9x faster on CPU. glibc reads these
# only at process start, hence the re-exec.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}

# How long an idle OpenMP thread spins before sleeping (libgomp, which torch's Linux wheels use).
# Its default (300,000 spins) is the fastest for a run alone, but two runs sharing 2 cores with
# data-loading workers took 2.6x as long as with passive waiting. Passive waiting costs every small
# kernel a wake-up: the quickstart alone trained 1.3x as long. A short spin runs within 6% of the
# default alone and within 1.35x of passive waiting when shared (benchmarks/bench_openmp_wait.py).
# The user's own setting wins.
OPENMP_SPIN_COUNT = "10000"


def _reexec_with_allocator_settings() -> None:
    if not sys.platform.startswith("linux") or os.environ.get("SEGBENCH_NO_REEXEC") or \
            "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if all(os.environ.get(k) is not None for k in ALLOCATOR_ENV):
        return
    for key, value in ALLOCATOR_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["SEGBENCH_NO_REEXEC"] = "1"
    try:
        os.execv(sys.executable, [sys.executable, "-m", "segbench.cli", *sys.argv[1:]])
    except OSError:
        pass  # run on with the default settings


def _limit_openmp_spinning() -> None:
    """Set before torch (and its OpenMP runtime) loads, which reads the environment once."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def user_message(exc: BaseException) -> str | None:
    """The message to show for a user mistake or a full disk, or ``None`` for a bug (show its traceback).

    A mistake found in a DataLoader worker arrives as :class:`segbench.errors.DataWorkerError`, with the
    original message (see :mod:`segbench.data.loader`).
    """
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        where = f"{exc.filename}: " if exc.filename else ""
        return (f"{where}{exc.strerror}. Free disk space (or raise the quota or file-size limit) and run the same"
                " command again; an interrupted run resumes from its last checkpoint.")
    return str(exc) if isinstance(exc, SegbenchError) else None


def main(argv=None) -> int:
    if argv is None:
        _reexec_with_allocator_settings()
        _limit_openmp_spinning()
    parser = build_parser()
    # Overrides may come before or after options (`run r.yaml --smoke a=b`): argparse leaves the
    # late ones unrecognised, so fold `key=value` words back into the command's overrides.
    args, extra = parser.parse_known_args(argv)
    late = [word for word in extra if "=" in word and not word.startswith("-")]
    unknown = [word for word in extra if word not in late]
    target = "overrides" if hasattr(args, "overrides") else "paths" if hasattr(args, "paths") else None
    if unknown or (late and target is None):
        parser.error(f"unrecognized arguments: {' '.join(unknown or late)}")
    if late:
        setattr(args, target, [*getattr(args, target), *late])
    try:
        return args.func(args)
    except (SegbenchError, OSError) as exc:
        message = user_message(exc)
        if message is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"segbench: error: {message}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, SegbenchError) else SegbenchError.exit_code
    except KeyboardInterrupt:
        print("segbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
