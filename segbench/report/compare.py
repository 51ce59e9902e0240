"""``segbench compare``: the results table of every run in a runs directory, generated from the runs.

Markdown (default): one row per run (recipe, model, strategy, mIoU and pixel accuracy in percent,
parameters, checkpoint size, inference speed, report split, status) and a per-class IoU table.
CSV: one row per run with the numbers exactly as ``results.json`` holds them (fractions in [0, 1]),
then one ``iou_<class>`` column per class. Finished runs come first, best mIoU first; runs without
``results.json`` are listed as incomplete with how far they got.

Inference speed is images per second at batch 1 on the report split's image size (shown as
``@ HxW``), with the recipe's evaluation settings (whole image or sliding window, logits up-sampled,
argmax). ``--speed`` measures it on this machine; otherwise it is read from ``results.json``
(``inference_images_per_s``, with ``inference_size`` [H, W] when present).
"""
from __future__ import annotations

import csv
import io
import statistics
import sys
import time
from pathlib import Path

import attrs
import torch
import yaml

from segbench.engine.rundir import RunDir, default_runs_dir
from segbench.errors import SegbenchError
from segbench.report.columns import cell_text, known_columns, lookup, parse_columns
from segbench.report.loading import read_metrics, run_name

MISSING = "–"
SPEED_KEY = "inference_images_per_s"


@attrs.define
class RunRow:
    """One run directory, finished or not."""

    run: RunDir
    recipe: str
    model: str | None = None
    strategy: str | None = None
    complete: bool = False
    status: str = ""
    epochs: int | None = None
    iterations: int | None = None
    miou: float | None = None
    pixel_accuracy: float | None = None
    per_class_iou: dict = attrs.field(factory=dict)
    params: int | None = None
    checkpoint_mb: float | None = None
    images_per_s: float | None = None
    speed_device: str | None = None
    speed_size: tuple[int, int] | None = None  # (H, W) of the timed image
    report_split: str | None = None
    report_images: int | None = None
    selection_overlaps_report: bool = False
    recipe_hash: str | None = None
    results: dict = attrs.field(factory=dict, repr=False)  # results.json as read, for --columns

    @property
    def name(self) -> str:
        return self.run.path.name


def _is_run(path: Path) -> bool:
    run = RunDir(path)
    return path.is_dir() and not path.name.startswith(".") and any(
        p.exists() for p in (run.recipe_file, run.results, run.metrics, run.checkpoints))


def _recipe_data(run: RunDir) -> dict:
    try:
        data = yaml.safe_load(run.recipe_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _name_of(section, default=None):
    return section.get("name", default) if isinstance(section, dict) else default


def _split_text(section) -> str | None:
    if not isinstance(section, dict):
        return None
    text = str(section.get("split", "?"))
    if section.get("subset"):
        subset = section["subset"]
        text += " subset " + ", ".join(f"{k}={v}" for k, v in subset.items() if v not in (None, False))
    return text


def _progress(run: RunDir) -> tuple[int | None, int | None]:
    """(completed epochs, optimizer steps) of an unfinished run, from metrics.jsonl, else last.pt."""
    records = [r for r in read_metrics(run) if "iteration" in r]
    if records:
        last = records[-1]
        return last.get("epoch"), last.get("iteration")
    if run.last.is_file():
        from segbench.engine.checkpoint import load_checkpoint

        try:
            state = load_checkpoint(run.last).get("train_state") or {}
        except SegbenchError:
            return None, None
        return state.get("epoch"), state.get("iteration")
    return None, None


def read_run(path: Path) -> RunRow:
    run = RunDir(Path(path))
    recipe = _recipe_data(run)
    row = RunRow(run, recipe=run_name(run), model=_name_of(recipe.get("model")),
                 strategy=_name_of(recipe.get("strategy"), "scratch" if recipe else None),
                 report_split=_split_text((recipe.get("data") or {}).get("report")))
    if run.results.is_file():
        try:
            results = run.read_results()
        except (OSError, ValueError) as exc:
            row.status = f"results.json unreadable ({type(exc).__name__})"
            return row
        row.complete = True
        row.results = results if isinstance(results, dict) else {}
        row.recipe = results.get("recipe", row.recipe)
        row.recipe_hash = results.get("recipe_hash")
        row.model = results.get("model", row.model)
        row.strategy = results.get("strategy", row.strategy)
        row.miou, row.pixel_accuracy = results.get("mIoU"), results.get("pixel_accuracy")
        row.per_class_iou = dict(results.get("per_class_iou") or {})
        row.params, row.checkpoint_mb = results.get("params"), results.get("checkpoint_mb")
        row.epochs, row.iterations = results.get("epochs"), results.get("iterations")
        row.report_split = _split_text(results.get("report_split")) or row.report_split
        row.report_images = results.get("report_images")
        row.selection_overlaps_report = bool(results.get("selection_overlaps_report"))
        if results.get(SPEED_KEY) is not None:
            row.images_per_s, row.speed_device = results[SPEED_KEY], results.get("device")
            size = results.get("inference_size")
            row.speed_size = tuple(size) if isinstance(size, (list, tuple)) and len(size) == 2 else None
        row.status = "complete"
        return row
    row.epochs, row.iterations = _progress(run)
    if row.iterations is None:
        row.status = "incomplete (not started)"
    else:
        row.status = f"incomplete (iteration {row.iterations}, {row.epochs} epoch(s) done)"
    return row


def sort_rows(rows: list[RunRow]) -> list[RunRow]:
    """Finished runs by mIoU, best first; then unfinished runs by name."""
    def key(row: RunRow):
        if row.complete:
            return (0, -(row.miou if row.miou is not None else -1.0), row.name)
        return (1, 0.0, row.name)

    return sorted(rows, key=key)


def collect_runs(runs_dir: Path | None = None) -> list[RunRow]:
    """Every run directory directly under ``runs_dir`` (default ``$SEGBENCH_RUNS`` or ``./runs``)."""
    folder = default_runs_dir(runs_dir)
    if not folder.is_dir():
        raise SegbenchError(f"runs directory {folder} does not exist" + ("" if runs_dir else
                            " (the default: $SEGBENCH_RUNS, else ./runs)") + ". Give the folder that"
                            " `segbench run --runs-dir` wrote to, or train something first.")
    rows = [read_run(path) for path in sorted(folder.iterdir()) if _is_run(path)]
    if not rows:
        raise SegbenchError(f"no runs in {folder}: no subfolder holds a recipe.yaml, metrics.jsonl or"
                            " results.json. Train with `segbench run RECIPE --runs-dir " f"{folder}` first.")
    return sort_rows(rows)


# ---- inference speed ------------------------------------------------------------------------------

def measure_speed(run_path: Path, registries=None, *, device: str | None = None,
                  repeats: int = 3) -> tuple[float, str, tuple[int, int]]:
    """Images per second (median of ``repeats`` timed runs after one warm-up), the device used, and
    the (H, W) of the timed image (the report split's first)."""
    from segbench.engine.evaluate import predict
    from segbench.report.loading import load_run

    loaded, dataset = load_run(run_path, registries, device=device)
    image, mask = dataset[0]
    image_t, _ = loaded.plan.eval_transforms(image, mask, torch.Generator().manual_seed(0))
    batch, settings = image_t[None], loaded.inference

    def once():
        with torch.no_grad():
            pred = predict(loaded.model, batch, label_size=tuple(mask.shape[-2:]), config=loaded.plan.evaluation,
                           num_classes=loaded.info.num_classes, device=settings.device,
                           precision=settings.precision, channels_last=settings.channels_last)
            pred.cpu()  # waits for an accelerator to finish

    once()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return 1.0 / statistics.median(times), str(settings.device), tuple(mask.shape[-2:])


def add_speeds(rows: list[RunRow], registries=None, *, device: str | None = None) -> None:
    for row in rows:
        if not (row.run.best.is_file() or row.run.last.is_file()):
            continue
        print(f"measuring inference speed of {row.name} ...", file=sys.stderr, flush=True)
        speed = measure_speed(row.run.path, registries, device=device)
        row.images_per_s, row.speed_device, row.speed_size = speed


# ---- rendering ------------------------------------------------------------------------------------

def _pct(value) -> str:
    return MISSING if value is None else f"{100 * value:.2f}%"


def _megabytes(value) -> str:
    if value is None:
        return MISSING
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _speed(row: RunRow) -> str:
    if row.images_per_s is None:
        return MISSING
    size = f" @ {row.speed_size[0]}x{row.speed_size[1]}" if row.speed_size else ""
    return f"{row.images_per_s:.2f}{size}"


def display_names(rows: list[RunRow]) -> list[str]:
    """Recipe names, with the run's hash where two runs share a recipe name."""
    counts = {}
    for row in rows:
        counts[row.recipe] = counts.get(row.recipe, 0) + 1
    return [row.recipe if counts[row.recipe] == 1 else f"{row.recipe} ({row.name.rpartition('-')[2]})"
            for row in rows]


def class_names(rows: list[RunRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [name for name in row.per_class_iou if name not in names]
    return names


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_tables(rows: list[RunRow], columns=()) -> str:
    names = display_names(rows)
    devices = sorted({row.speed_device for row in rows if row.speed_device})
    speed_header = f"img/s ({', '.join(devices)})" if devices else "img/s"
    lines = [f"| recipe | model | strategy | mIoU | pixel accuracy | params | checkpoint MB | {speed_header}"
             " | report split | status |" + "".join(f" {_cell(c)} |" for c in columns),
             "|---|---|---|---:|---:|---:|---:|---:|---|---|" + "---|" * len(columns)]
    any_overlap = False
    for name, row in zip(names, rows):
        split = row.report_split or MISSING
        if row.report_images is not None:
            split += f" ({row.report_images} images)"
        if row.selection_overlaps_report:
            split += " †"
            any_overlap = True
        status = row.status
        if row.complete and row.epochs is not None:
            status += f" ({row.epochs} epoch(s), {row.iterations} iterations)"
        cells = [name, row.model or MISSING, row.strategy or MISSING, _pct(row.miou), _pct(row.pixel_accuracy),
                 MISSING if row.params is None else f"{row.params:,}",
                 _megabytes(row.checkpoint_mb),
                 _speed(row), split, status]
        cells += [MISSING if (v := cell_text(lookup(row.results, c))) is None else v for c in columns]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if any_overlap:
        lines += ["", "† the best checkpoint was chosen on the report split itself: these numbers are optimistic."]

    complete = [(name, row) for name, row in zip(names, rows) if row.complete]
    classes = class_names([row for _, row in complete])
    if complete and classes:
        lines += ["", "Per-class IoU (%)", "",
                  "| class | " + " | ".join(_cell(name) for name, _ in complete) + " |",
                  "|---|" + "---:|" * len(complete)]
        for cls in classes:
            values = []
            for _, row in complete:
                iou = row.per_class_iou.get(cls)
                values.append(MISSING if iou is None else f"{100 * iou:.2f}")
            lines.append(f"| {_cell(cls)} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("run", "recipe", "recipe_hash", "model", "strategy", "status", "complete", "epochs", "iterations",
               "mIoU", "pixel_accuracy", "params", "checkpoint_mb", SPEED_KEY, "speed_device", "speed_size", "report_split",
               "report_images", "selection_overlaps_report")


def csv_table(rows: list[RunRow], columns=()) -> str:
    """One row per run; numbers as ``results.json`` holds them (``repr``, so they parse back exactly)."""
    classes = class_names(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *columns, *(f"iou_{name}" for name in classes)])
    for row in rows:
        values = {"run": row.name, "recipe": row.recipe, "recipe_hash": row.recipe_hash, "model": row.model,
                  "strategy": row.strategy, "status": row.status, "complete": row.complete, "epochs": row.epochs,
                  "iterations": row.iterations, "mIoU": row.miou, "pixel_accuracy": row.pixel_accuracy,
                  "params": row.params, "checkpoint_mb": row.checkpoint_mb, SPEED_KEY: row.images_per_s,
                  "speed_device": row.speed_device,
                  "speed_size": None if row.speed_size is None else f"{row.speed_size[0]}x{row.speed_size[1]}",
                  "report_split": row.report_split,
                  "report_images": row.report_images, "selection_overlaps_report": row.selection_overlaps_report}
        cells = [values[c] for c in CSV_COLUMNS] + [cell_text(lookup(row.results, c)) for c in columns] + \
            [row.per_class_iou.get(name) for name in classes]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in cells])
    return buffer.getvalue()


def _check_columns(rows: list[RunRow], columns) -> None:
    """A column no finished run has is a typo: say which keys exist."""
    finished = [row.results for row in rows if row.results]
    for column in columns:
        if finished and all(lookup(results, column) is None for results in finished):
            raise SegbenchError(f"--columns {column!r}: no run's results.json has it. Available:"
                                f" {', '.join(known_columns(finished[0]))}")


def compare_command(args, *, registries=None) -> str:
    rows = collect_runs(args.runs_dir)
    columns = parse_columns(getattr(args, "columns", None))
    _check_columns(rows, columns)
    if args.speed:
        add_speeds(rows, registries)
    text = csv_table(rows, columns) if args.format == "csv" else markdown_tables(rows, columns)
    sys.stdout.write(text)
    return text
