"""``segbench plot``: training loss and selection mIoU of one or more runs, one PNG with two panels.

Left: the training loss of every log record (x = optimizer step). Right: the mIoU of every
selection evaluation (the split that picks the best checkpoint), the best one starred.
Runs that are seeds of one experiment (same recipe up to the seed) are drawn as their mean curve
with a band: the range across seeds (``--band minmax``, default) or ± one standard deviation (``std``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from segbench.runs import RunDir, refuse_run_file
from segbench.errors import SegbenchError
from segbench.records import SelectionRecord, TrainStepRecord
from segbench.report.figure_file import figure_format, save_figure
from segbench.report.loading import run_name

FIGURE_SIZE = (1200, 450)  # pixels (width, height)
DPI = 100


def _curves(run: RunDir) -> tuple[list, list]:
    if not run.path.is_dir():
        what = "is a file, not a run directory" if run.path.exists() else "does not exist"
        raise SegbenchError(f"{run.path} {what}; give run directories that `segbench run` wrote"
                            " (runs/<recipe>-<hash>/)")
    if run.set_aside_message():
        raise SegbenchError(run.set_aside_message())
    records = run.read_metrics()
    train = [(r.iteration, r.loss) for r in records if isinstance(r, TrainStepRecord)]
    evals = [(r.iteration, r.mIoU) for r in records if isinstance(r, SelectionRecord) and r.mIoU is not None]
    if not train and not evals:
        where = run.metrics if run.metrics.exists() else f"{run.metrics} (missing)"
        raise SegbenchError(f"{run.path} has no training metrics yet: {where} holds no train or eval records."
                            " Plot a run after it has logged at least one step (trainer.log_every).")
    return train, evals


def _experiment_key(run: RunDir):
    from segbench.report.compare import read_run

    row = read_run(run.path)
    return (row.recipe, row.experiment_hash or run.path.name)


def _common_folder(paths: list[Path]) -> Path:
    """The folder holding every run; runs in different folders need ``--out`` (their common ancestor may be ``/``)."""
    parents = {path.absolute().parent for path in paths}
    if len(parents) > 1:
        raise SegbenchError(f"the runs are in {len(parents)} different folders; say where the figure goes with"
                            " --out FILE.png")
    return paths[0].parent


def _mean_band(curves: list[list[tuple]], band: str):
    """Mean and band of several runs' ``[(step, value)]`` at the steps every run has."""
    import numpy as np

    steps = sorted(set.intersection(*(set(step for step, _ in curve) for curve in curves)))
    if not steps:
        return None
    values = np.array([[dict(curve)[step] for step in steps] for curve in curves], dtype=float)
    mean = values.mean(axis=0)
    if band == "std":
        spread = values.std(axis=0, ddof=1)
        return steps, mean, mean - spread, mean + spread
    return steps, mean, values.min(axis=0), values.max(axis=0)


def _draw_experiment(loss_ax, miou_ax, name, curves, colour, band):
    for ax, index, scale in ((loss_ax, 0, 1.0), (miou_ax, 1, 100.0)):
        drawn = _mean_band([c[index] for c in curves if c[index]], band) if all(c[index] for c in curves) else None
        if drawn is None:
            continue
        steps, mean, low, high = drawn
        label = f"{name} (mean of {len(curves)} seeds)"
        marked = ax is miou_ax or len(steps) <= 3  # a line of one point is invisible without its marker
        ax.plot(steps, mean * scale, color=colour, linewidth=1.4, label=label, marker="o" if marked else None,
                markersize=3)
        ax.fill_between(steps, low * scale, high * scale, color=colour, alpha=0.2, linewidth=0)


def plot_runs(run_dirs: Sequence[Path], out: Path | None = None, *, size: tuple[int, int] = FIGURE_SIZE,
              dpi: int = DPI, band: str = "minmax") -> Path:
    """Draw the curves of ``run_dirs`` into a ``size`` (pixels) figure (PNG, or what ``out``'s extension names);
    default ``<the run>/curves.png`` for one run, ``curves.png`` in the folder holding them for several (a run's
    own figure is not replaced by theirs).

    Seeds of one experiment become a mean curve with a band (``minmax`` or ``std``)."""
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not run_dirs:
        raise SegbenchError("give at least one run directory to plot")
    runs = [RunDir(Path(p)) for p in run_dirs]
    curves = [_curves(run) for run in runs]
    if out is None:
        out = (runs[0].path if len(runs) == 1 else _common_folder([run.path for run in runs])) / "curves.png"
    out = Path(out)
    refuse_run_file(out)
    figure_format(out)  # before drawing

    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    loss_ax, miou_ax = figure.subplots(1, 2)
    groups: dict = {}
    for run, curve in zip(runs, curves):
        groups.setdefault(_experiment_key(run), []).append((run, curve))
    singles = [(run, curve) for members in groups.values() if len(members) == 1 for run, curve in members]
    names = [run_name(run) for run, _ in singles]
    if len(set(names)) < len(names):  # the same recipe with different overrides: show the hashes
        names = [run.path.name for run, _ in singles]
    colours = iter(f"C{index % 10}" for index in range(10 ** 6))
    experiments = [(key, members) for key, members in groups.items() if len(members) > 1]
    recipes = [recipe for recipe, _ in groups]  # every group counts, as in `compare`
    for (recipe, digest), members in experiments:
        # as `compare` labels experiments: the recipe, with its hash where two experiments share the recipe
        label = recipe if recipes.count(recipe) == 1 else f"{recipe}~{digest[:8]}"
        _draw_experiment(loss_ax, miou_ax, label, [curve for _, curve in members], next(colours), band)
    for name, (_, (train, evals)) in zip(names, singles):
        colour = next(colours)
        if train:
            loss_ax.plot(*zip(*train), color=colour, linewidth=1.2, label=name,
                         marker="o" if len(train) <= 3 else None, markersize=3)
        if evals:
            steps, values = zip(*evals)
            percent = [100 * v for v in values]
            miou_ax.plot(steps, percent, color=colour, marker="o", markersize=3, linewidth=1.2, label=name)
            best = max(range(len(percent)), key=percent.__getitem__)
            miou_ax.plot([steps[best]], [percent[best]], color=colour, marker="*", markersize=12,
                         markeredgecolor="black", linestyle="none")
    loss_ax.set(title="training loss", xlabel="iteration (optimizer step)", ylabel="loss")
    miou_ax.set(title="selection mIoU (★ best checkpoint)", xlabel="iteration (optimizer step)", ylabel="mIoU (%)")
    for ax in (loss_ax, miou_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return save_figure(figure, out, dpi=dpi)


def forest_plot(diff, class_names: Sequence[str], out: Path, *, title: str, dpi: int = DPI) -> Path:
    """Per-class differences (B − A, percentage points) with their intervals, mIoU on top; a line at zero."""
    import math

    from matplotlib.figure import Figure

    rows = [("mIoU", diff.miou), *zip(class_names, diff.class_iou)]
    rows = [(name, interval) for name, interval in rows if not math.isnan(interval.low)]
    figure = Figure(figsize=(7, 0.3 * len(rows) + 1.4), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    for y, (name, interval) in enumerate(reversed(rows)):
        colour = "C3" if interval.excludes_zero else "C0"
        ax.plot([100 * interval.low, 100 * interval.high], [y, y], color=colour, linewidth=2)
        ax.plot([100 * interval.estimate], [y], "o" if name != "mIoU" else "D", color=colour, markersize=5)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [name for name, _ in reversed(rows)])
    ax.set(xlabel=f"B − A, IoU points ({100 * diff.confidence:g}% interval; red: excludes 0)", title=title)
    ax.grid(True, axis="x", alpha=0.3)
    out = Path(out)
    refuse_run_file(out, "--forest")
    return save_figure(figure, out, dpi=dpi, option="--forest")


def plot_command(args) -> Path:
    if args.pareto:
        from segbench.report.pareto import plot_pareto

        if len(args.run_dirs) != 1:
            raise SegbenchError(f"--pareto takes one runs directory (the folder holding the runs), got"
                                f" {len(args.run_dirs)} paths")
        out = plot_pareto(args.run_dirs[0], args.out, include_smoke=args.include_smoke)
        print(out)
        return out
    run_dirs = [path for given in args.run_dirs for path in _runs_in(Path(given), include_smoke=args.include_smoke)]
    out = args.out
    if out is None and len(args.run_dirs) == 1 and run_dirs != [Path(args.run_dirs[0])]:
        out = Path(args.run_dirs[0]) / "curves.png"  # a folder of runs: the figure of all of them beside them
    out = plot_runs(run_dirs, out, band=args.band)
    print(out)
    return out


def _runs_in(path: Path, *, include_smoke: bool = False) -> list[Path]:
    """``path`` itself when it is a run directory (or missing: the error names it); for a folder of runs, those
    that have logged metrics (smoke runs left out, as `compare` does)."""
    from segbench.report.compare import collect_runs, is_run, is_run_itself

    run = RunDir(path)
    if not path.is_dir() or is_run_itself(path) or run.metrics.exists():
        return [path]
    if not any(map(is_run, path.iterdir())):
        if is_run(path):  # a run that has not logged yet: the error names its missing metrics
            return [path]
        collect_runs(path, include_smoke=include_smoke, command="plot")  # says what a folder of runs holds
    plotted, skipped = [], []
    for row in collect_runs(path, include_smoke=include_smoke, command="plot"):
        try:  # a run that has just started (or whose metrics are damaged) must not stop the others' figure
            _curves(row.run)
            plotted.append(row.run.path)
        except SegbenchError as exc:
            skipped.append(f"{row.name} ({'no metrics.jsonl' if not row.run.metrics.exists() else exc})")
    if not plotted:
        raise SegbenchError(f"no run in {path} has logged training metrics yet (metrics.jsonl); plot a run after"
                            " it has logged at least one step (trainer.log_every).")
    for reason in skipped:
        print(f"plot: left out {reason}", file=sys.stderr)
    return plotted
