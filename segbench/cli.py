"""The ``segbench`` command line."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import traceback
from pathlib import Path

from segbench import __version__, commands
from segbench.errors import PATH_TROUBLE, SegbenchError
from segbench.limits import (IMAGE_SIDE_MAX, SEED_MAX, SYNTH_DEFAULT_COUNTS, SYNTH_MAX_IMAGES, SYNTH_MAX_SIZE,
                             SYNTH_MIN_SIZE)
from segbench.process import tune_process


def _bounded_int(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high`` (argparse names the option in its error)."""
    def integer(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (give {low} to {high})") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {low} to {high}")
        return value
    integer.numeric = True
    return integer


def _image_size(low: int, high: int):
    """An argparse type: ``HEIGHTxWIDTH`` in pixels, each side from ``low`` to ``high``."""
    def size(text: str) -> tuple[int, int]:
        match = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text)
        if match is None:
            raise argparse.ArgumentTypeError(f"{text!r}: write HEIGHTxWIDTH in pixels, e.g. 512x1024")
        height, width = int(match.group(1)), int(match.group(2))
        if not (low <= height <= high and low <= width <= high):
            raise argparse.ArgumentTypeError(f"{height}x{width}: each side must be from {low} to {high} pixels")
        return height, width
    size.numeric = True
    return size


def _path(text: str) -> Path:
    """An argparse type: a path that is not empty (``Path("")`` is the current folder: an unset shell variable
    in ``--runs-dir "$RUNS"`` would otherwise write into it)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty: give a file or folder (is a shell variable unset?)")
    return Path(text)


def _add_overrides(parser):
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="override recipe values, e.g. optimizer.lr=1.0e-4 trainer.epochs=2")


# ``HxW`` as ``(H, W)``: a model input, from the size its contract is checked at (32x64) up
image_size = _image_size(32, IMAGE_SIDE_MAX)


def _add_experiment_options(parser):
    parser.add_argument("--seeds", default=None, metavar="0,1,2",
                        help="run these seeds (one run each) instead of the recipe's seeds:")
    parser.add_argument("--grid", action="append", default=[], metavar="key=v1,v2",
                        help="sweep a recipe key over values; repeat for a product (times the seeds)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.95)") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (e.g. 0.95), got {value}")
    return value


_fraction.numeric = True


def _add_runs_dir(parser):
    parser.add_argument("--runs-dir", type=_path, default=None,
                        help="where run directories live (default: $SEGBENCH_RUNS or ./runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"segbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="train and evaluate a recipe (resumes an interrupted run)")
    p.add_argument("recipe", type=_path)
    _add_overrides(p)
    _add_runs_dir(p)
    p.add_argument("--restart", action="store_true", help="discard an existing unfinished run and start over")
    p.add_argument("--smoke", action="store_true",
                   help="the same recipe on a tiny synthetic city, a few iterations, small crops")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the recipe's trainer.device)")
    _add_experiment_options(p)
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser("show", help="print the resolved recipe as YAML")
    p.add_argument("recipe", type=_path)
    _add_overrides(p)
    p.add_argument("--smoke", action="store_true", help="show the --smoke variant")
    p.add_argument("--seed", type=_bounded_int(0, SEED_MAX), default=None,
                   help="the recipe of this seed's run (default: the recipe's seed, or the first of its seeds:)")
    p.add_argument("--defaults", action="store_true",
                   help="fill in every key each component leaves at its default")
    p.set_defaults(func=commands.cmd_show)

    p = sub.add_parser("list", help="registered components per kind, with their plugins")
    p.add_argument("kind", nargs="?", help="models, datasets, losses, schedulers, strategies, optimizers,"
                                            " class_weightings, transforms, loggers")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="each component's first doc line and config keys (type, default, allowed values);"
                        " for models also parameters, size and GFLOPs")
    p.set_defaults(func=commands.cmd_list)

    p = sub.add_parser("models", help="table of models: parameters, size, GFLOPs")
    p.add_argument("--size", default=(512, 1024), type=image_size,
                   help="input HxW for GFLOPs (default 512x1024)")
    p.set_defaults(func=commands.cmd_models)

    p = sub.add_parser("plugins", help="installed plugins and their distributions")
    p.set_defaults(func=commands.cmd_plugins)

    p = sub.add_parser("synth", help="write a synthetic Cityscapes-format street-scene tree")
    p.add_argument("dir", type=_path)
    for split, what in (("train", "finely labelled training images"), ("val", "finely labelled validation images"),
                        ("train_extra", "coarsely labelled extra training images (gtCoarse)")):
        p.add_argument(f"--{split.replace('_', '-')}", type=_bounded_int(0, SYNTH_MAX_IMAGES), default=None,
                       help=f"{what} (default {SYNTH_DEFAULT_COUNTS[split]})")
    p.add_argument("--size", default=(128, 256), type=_image_size(SYNTH_MIN_SIZE[0], SYNTH_MAX_SIZE[1]),
                   help="HEIGHTxWIDTH (default 128x256)")
    p.add_argument("--seed", type=_bounded_int(0, SEED_MAX), default=0, help="the scenes drawn (default 0)")
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("evaluate", help="score a run or checkpoint with the official Cityscapes rule")
    p.add_argument("target", type=_path, help="a run directory or a checkpoint file")
    p.add_argument("--split", default="report", help="report (default), select, or a dataset split like val")
    p.add_argument("--checkpoint", default=None, help="best or last (default: the recipe's choice)")
    p.add_argument("--export-labelids", type=_path, default=None, metavar="DIR",
                   help="write full-resolution labelId PNGs for the official tools")
    p.add_argument("--device", default=None)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="onnxruntime: score an exported ONNX file instead (see segbench export)")
    p.add_argument("--onnx", type=_path, default=None, help="the ONNX file (default: the run's newest export)")
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("export", help="write a run's model as an ONNX file that onnxruntime loads")
    p.add_argument("run_dir", type=_path, help="a run directory or a checkpoint file")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--size", type=image_size, default=None, metavar="HxW",
                       help="fixed input size (default: the report images' size)")
    shape.add_argument("--dynamic", action="store_true", help="any batch size, height and width")
    p.add_argument("--out", type=_path, default=None, help="default <run>/export/<model>-<HxW|dynamic>.onnx")
    p.add_argument("--opset", type=_bounded_int(7, 30), default=17)
    p.add_argument("--checkpoint", default=None, help="best or last (default: the recipe's choice)")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("benchmark", help="forward latency (p50/p90, images/s) as deployed; saved into the run")
    p.add_argument("target", type=_path, metavar="RUN_DIR|RECIPE")
    p.add_argument("--size", type=image_size, default=None, metavar="HxW",
                   help="input size (default: the report images' full resolution)")
    p.add_argument("--batch", type=_bounded_int(1, 4096), default=1)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    p.add_argument("--threads", type=_bounded_int(1, 1024), default=None,
                   help="CPU threads (default: torch's current setting)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: the recipe's trainer.device)")
    p.add_argument("--repeats", type=_bounded_int(1, 100_000), default=None,
                   help="timed repetitions (default: at least 20 and at least 2 s of timing)")
    p.add_argument("--warmup", type=_bounded_int(0, 10_000), default=None,
                   help="untimed runs first (default: at least 3 and 0.5 s)")
    p.set_defaults(func=commands.cmd_benchmark)

    p = sub.add_parser("compare", help="results table of runs with statistics across seeds (Markdown or CSV);"
                                        " with two experiments or runs A B: B minus A with its interval")
    p.add_argument("targets", nargs="*", metavar="RUNS_DIR | A B",
                   help="a runs directory; or A and B: run directories or experiment labels (NAME, NAME:0,1,2)")
    _add_runs_dir(p)
    p.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    p.add_argument("--speed", action="store_true", help="measure inference images/s on this device")
    # Fewer than 100 resamples put an interval's ends on one or two draws: noise presented as a verdict.
    p.add_argument("--resamples", type=_bounded_int(100, 1_000_000), default=2000,
                   help="bootstrap resamples, at least 100 (default 2000)")
    p.add_argument("--confidence", type=_fraction, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--bootstrap-seed", type=_bounded_int(0, SEED_MAX), default=0,
                   help="seed of the resampling (default 0)")
    p.add_argument("--forest", type=_path, default=None, metavar="PNG",
                   help="with A B: draw the per-class differences as a forest plot")
    p.add_argument("--include-smoke", action="store_true",
                   help="also list `run --smoke` runs (checks on tiny data, left out by default)")
    p.add_argument("--columns", action="append", metavar="KEY[,KEY]",
                   help="more columns from results.json by key path, e.g. provenance.git_commit or torch,host"
                        " (keys not at the top level are looked up under provenance)")
    p.add_argument("--experiments", action="store_true",
                   help="only the tables across seeds: one row per experiment, then its per-class IoU (with"
                        " --format csv: one row per experiment, means, standard deviations and the mIoU interval as"
                        " fractions)")
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("report", help="a self-contained HTML report of a runs folder (opens from disk)")
    p.add_argument("runs_dir", nargs="?", type=_path, default=None)
    p.add_argument("--out", type=_path, required=True, help="folder for index.html and its figures")
    p.add_argument("--images", type=_bounded_int(0, 1000), default=3,
                   help="prediction panels per run: the report split's first N images (0: none)")
    p.add_argument("--device", default=None, help="where the panels are predicted (default: each recipe's)")
    p.add_argument("--include-smoke", action="store_true",
                   help="also report `run --smoke` runs (checks on tiny data, left out by default)")
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser("predict", help="colourised predictions, overlays and comparison panels")
    p.add_argument("run_dir", type=_path)
    p.add_argument("images", nargs="+", type=_path, metavar="PATH", help="image files, folders (recursive), videos")
    p.add_argument("--out", type=_path, required=True)
    p.add_argument("--labels", nargs="*", type=_path, default=None, help="labelIds PNGs, one per image")
    p.add_argument("--checkpoint", default=None, help="best or last (default: the one the run's scores come from)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=commands.cmd_predict)

    p = sub.add_parser("plot", help="training loss and validation mIoU curves; --pareto: mIoU vs latency")
    p.add_argument("run_dirs", nargs="+", type=_path, metavar="RUN_DIR")
    p.add_argument("--out", type=_path, default=None)
    p.add_argument("--band", choices=("minmax", "std"), default="minmax",
                   help="seeds of one experiment: mean curve with the min-max range (default) or ± one std")
    p.add_argument("--pareto", action="store_true",
                   help="one runs folder: mIoU against benchmarked latency (log scale), each run labelled")
    p.add_argument("--include-smoke", action="store_true",
                   help="a runs folder: also draw `run --smoke` runs (checks on tiny data, left out by default)")
    p.set_defaults(func=commands.cmd_plot)

    p = sub.add_parser("emit-slurm", help="print a bash script that submits recipes as chained sbatch jobs")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recipe files or folders, then key=value overrides")
    p.add_argument("--out", type=_path, default=None, help="where job scripts are written (default jobs/out)")
    p.add_argument("--smoke", action="store_true")
    _add_runs_dir(p)
    _add_experiment_options(p)
    p.set_defaults(func=commands.cmd_emit_slurm)
    for command in sub.choices.values():  # `--debug` after the command too; SUPPRESS keeps one given before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks for errors")
    return parser


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
    if isinstance(exc, OSError) and exc.errno in PATH_TROUBLE and exc.filename:
        # A rename (an atomic write's last step) names its temp file first; a folder in the way is the target.
        target = exc.filename2 if exc.filename2 and exc.errno in (errno.EISDIR, errno.EEXIST) else exc.filename
        return f"{os.fsdecode(target)}: {exc.strerror}; {PATH_TROUBLE[exc.errno]}."
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from"):  # pathlib's resolve()
        return f"{str(exc).removeprefix('Symlink loop from ')}: {PATH_TROUBLE[errno.ELOOP]}."
    return str(exc) if isinstance(exc, SegbenchError) else None


def _not_utf8(words) -> str | None:
    """The first ``key=value`` word (an override, a --grid axis) holding bytes that are not UTF-8 (Python keeps
    them as surrogates): such a value cannot be written into the recipes, records and scripts segbench writes.
    Paths may hold any bytes; a recipe's own name is checked where it is read."""
    for word in words:
        if "=" not in word:
            continue
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            return word
    return None


def main(argv=None) -> int:
    """The ``segbench`` command; ``argv`` given: called from Python (tests), which keeps its process."""
    if argv is not None:
        return _command(argv)
    tune_process()
    try:
        status = _command(None)
    except SystemExit as exc:
        if not _left_a_process_group():
            raise
        status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    if _left_a_process_group():
        from segbench.engine.distributed import end_process

        end_process(status)
    return status


def _left_a_process_group() -> bool:
    distributed = sys.modules.get("segbench.engine.distributed")  # not loaded: no process group was joined
    return distributed is not None and distributed.left_a_process_group()


def _command(argv) -> int:
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

    def fail(message: str, status: int) -> int:
        _close_progress_bars()
        if args.debug and sys.exc_info()[0] is not None:
            traceback.print_exc()
        print(f"segbench: error: {message}", file=sys.stderr)
        return status

    bad = _not_utf8(sys.argv[1:] if argv is None else [str(word) for word in argv])
    if bad is not None:
        return fail(f"{os.fsencode(bad)!r} holds bytes that are not UTF-8 text; give the value as UTF-8 text.",
                    SegbenchError.exit_code)
    try:
        return args.func(args)
    except (SegbenchError, OSError) as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():  # `segbench show RECIPE | head`: enough read
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            return 128 + 13  # what a shell reports for a process ended by SIGPIPE
        message = user_message(exc)
        if message is None:
            raise
        return fail(message, exc.exit_code if isinstance(exc, SegbenchError) else SegbenchError.exit_code)
    except KeyboardInterrupt:
        _close_progress_bars()
        print("segbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_message(exc)  # a symbolic link that loops (pathlib raises RuntimeError)
        if message is not None:
            return fail(message, SegbenchError.exit_code)
        peer = _lost_peer(exc)
        if peer is None:
            raise
        return fail(peer, 1)


def _stdout_closed() -> bool:
    """Whether standard output's reader has gone (not some other pipe of the command, such as a worker's): the
    write end of a pipe whose reader closed polls as an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or stdout is no file
        return False


def _close_progress_bars() -> None:
    """Clear the progress bars an error left open, so that the message starts its own line."""
    tqdm = sys.modules.get("tqdm")  # none to close when nothing loaded it
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _lost_peer(exc: BaseException) -> str | None:
    """The message for a distributed run's process whose peer exited first (only once torch is loaded)."""
    if "torch.distributed" not in sys.modules:
        return None
    from segbench.engine.distributed import lost_peer

    return lost_peer(exc)


if __name__ == "__main__":
    sys.exit(main())
