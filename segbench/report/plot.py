"""``segbench plot``: training loss and selection mIoU of one or more runs, one PNG with two panels.

Left: the training loss of every log record (x = optimizer step). Right: the mIoU of every
selection evaluation (the split that picks the best checkpoint), the best one starred.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from segbench.atomic import atomic_write_bytes
from segbench.runs import RunDir
from segbench.errors import SegbenchError
from segbench.records import SelectionRecord, TrainStepRecord
from segbench.report.loading import run_name

FIGURE_SIZE = (1200, 450)  # pixels (width, height)
DPI = 100


def _curves(run: RunDir) -> tuple[list, list]:
    if not run.path.is_dir():
        raise SegbenchError(f"{run.path} does not exist; give run directories that `segbench run` wrote"
                            " (runs/<recipe>-<hash>/)")
    records = run.read_metrics()
    train = [(r.iteration, r.loss) for r in records if isinstance(r, TrainStepRecord)]
    evals = [(r.iteration, r.mIoU) for r in records if isinstance(r, SelectionRecord) and r.mIoU is not None]
    if not train and not evals:
        where = run.metrics if run.metrics.exists() else f"{run.metrics} (missing)"
        raise SegbenchError(f"{run.path} has no training metrics yet: {where} holds no train or eval records."
                            " Plot a run after it has logged at least one step (trainer.log_every).")
    return train, evals


def plot_runs(run_dirs: Sequence[Path], out: Path | None = None, *, size: tuple[int, int] = FIGURE_SIZE,
              dpi: int = DPI) -> Path:
    """Draw the curves of ``run_dirs`` into a ``size`` (pixels) PNG; default ``<first run>/curves.png``."""
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not run_dirs:
        raise SegbenchError("give at least one run directory to plot")
    runs = [RunDir(Path(p)) for p in run_dirs]
    curves = [_curves(run) for run in runs]
    out = Path(out) if out is not None else runs[0].path / "curves.png"

    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    loss_ax, miou_ax = figure.subplots(1, 2)
    names = [run_name(run) for run in runs]
    if len(set(names)) < len(names):  # the same recipe with different overrides: show the hashes
        names = [run.path.name for run in runs]
    for index, (name, (train, evals)) in enumerate(zip(names, curves)):
        colour = f"C{index % 10}"
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
    try:
        atomic_write_bytes(out, lambda handle: figure.savefig(handle, format="png", dpi=dpi))
    except OSError as exc:
        raise SegbenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def plot_command(args) -> Path:
    if args.pareto:
        from segbench.report.pareto import plot_pareto

        if len(args.run_dirs) != 1:
            raise SegbenchError(f"--pareto takes one runs directory (the folder holding the runs), got"
                                f" {len(args.run_dirs)} paths")
        out = plot_pareto(args.run_dirs[0], args.out)
        print(out)
        return out
    out = plot_runs(args.run_dirs, args.out)
    print(out)
    return out
