"""``segbench plot --pareto RUNS_DIR``: accuracy against speed, one labelled point per run.

x: the median model-only forward latency that ``segbench benchmark`` saved into each run (ms, log
scale), one marker shape per backend; y: the run's mIoU (``results.json``). The runs on the Pareto
front (no other run is both faster and more accurate) are joined by a line. Runs without a
benchmark record or without results are listed on stderr and left out.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from segbench.runs import refuse_run_file
from segbench.errors import SegbenchError
from segbench.report.compare import collect_runs, display_names
from segbench.report.figure_file import figure_format, save_figure
from segbench.report.latency_table import setting

FIGURE_SIZE = (900, 600)
DPI = 100
MARKERS = {"torch": "o", "onnxruntime": "s"}


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (lower x, higher y), by increasing x."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _one_setting_per_backend(rows, points: dict) -> dict[str, str]:
    """backend -> the setting all its plotted measurements share; measurements taken at another image size,
    batch or thread count (or on another machine) would sit on one axis as if comparable: refused."""
    settings = {}
    for backend in points:
        measured = {}
        for row in rows:
            record = row.latency.get(backend)
            if record is not None and row.complete and row.miou is not None:
                measured.setdefault(setting(record), []).append(row.name)
        if len(measured) > 1:
            listed = "; ".join(f"{', '.join(names)}: {text}" for text, names in measured.items())
            raise SegbenchError(
                f"the runs' {backend} latencies were measured in different settings ({listed}). Measure them"
                f" alike (`segbench benchmark RUN_DIR --backend {backend}` with the same --size, --batch and"
                " --threads, on one machine) before plotting them together.")
        settings[backend] = next(iter(measured))
    return settings


def plot_pareto(runs_dir: Path, out: Path | None = None, *, size=FIGURE_SIZE, dpi=DPI, include_smoke=False) -> Path:
    from matplotlib.figure import Figure

    refuse_run_file(out if out is not None else Path(runs_dir) / "pareto.png")
    if out is not None:
        figure_format(out)  # before reading the runs
    rows = collect_runs(runs_dir, include_smoke=include_smoke, command="plot")
    points = {}  # backend -> [(latency ms, mIoU %, label)]
    skipped = []
    for row, label in zip(rows, display_names(rows)):  # `compare`'s names: the hash where recipes repeat
        if not row.complete or row.miou is None or not row.latency:
            skipped.append(row.name)
            continue
        for backend, record in row.latency.items():
            points.setdefault(backend, []).append((record.model_only.p50_ms, 100 * row.miou, label))
    if not points:
        raise SegbenchError(f"no run in {runs_dir} has both results and a latency measurement; run"
                            " `segbench benchmark RUN_DIR` on finished runs first")
    if skipped:
        print(f"left out (no results.json or no benchmark): {', '.join(skipped)}", file=sys.stderr)
    settings = _one_setting_per_backend(rows, points)
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    for index, (backend, entries) in enumerate(sorted(points.items())):
        colour = f"C{index}"
        xs, ys, labels = zip(*entries)
        ax.scatter(xs, ys, marker=MARKERS.get(backend, "^"), color=colour, label=backend, zorder=3)
        offset = (5, 4) if index % 2 == 0 else (5, -11)  # backends' labels above / below their points
        for x, y, label in entries:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize="small", color=colour)
        front = pareto_front(list(zip(xs, ys)))
        ax.plot(*zip(*front), color=colour, linestyle="--", linewidth=1, alpha=0.6, drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set(xlabel="forward latency per batch, model only (ms, log scale)", ylabel="mIoU (%)")
    subtitle = "\n".join(textwrap.fill(f"{backend}: {text}", 110) for backend, text in sorted(settings.items()))
    ax.set_title("accuracy vs latency (-- Pareto front)\n" + subtitle, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="backend")
    return save_figure(figure, Path(out) if out is not None else Path(runs_dir) / "pareto.png", dpi=dpi)
