"""``segbench compare``: the results table of every run in a runs directory, generated from the runs.

Markdown (default): one row per run (recipe, model, strategy, mIoU and pixel accuracy in percent,
parameters, checkpoint size, inference speed, report split, status) and a per-class IoU table.
CSV: one row per run with the numbers exactly as ``results.json`` holds them (fractions in [0, 1]),
then one ``iou_<class>`` column per class; ``experiment_hash`` and ``seed`` group the seeds of an experiment.
Markdown adds statistics across seeds (``segbench.report.significance``). Finished runs come first, best mIoU first; runs without
``results.json`` are listed as incomplete with how far they got.

Inference speed is images per second at batch 1 on the report split's image size (shown as
``@ HxW``), with the recipe's evaluation settings (whole image or sliding window, logits up-sampled,
argmax). ``--speed`` measures it on this machine.

Latency columns come from ``segbench benchmark`` (``<run>/benchmark-<backend>.json``), one pair per
backend measured in any run: the median forward latency (model only / end to end, in ms) and the
end-to-end images per second; the CPU or GPU, threads and input size are listed under the table.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
import sys
import time
from pathlib import Path

import attrs
import torch
import yaml

from segbench.engine.loggers import flatten
from segbench.runs import RunDir, default_runs_dir
from segbench.errors import SegbenchError
from segbench.functional.merge import content_hash
from segbench.recipe.load import REPLICATE_KEYS, UNHASHED_SECTIONS
from segbench.records import RecordError
from segbench.registry import SPLIT_KEY, SUBSET_KEY
from segbench.report.columns import cell_text, has_key, known_columns, lookup, parse_columns
from segbench.report.latency_table import (LATENCY_COLUMNS, latency_backends, latency_cells, latency_notes,
                                            latency_value, setting_tags)
from segbench.report.loading import run_name

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
    experiment_hash: str | None = None  # the same for the seeds of one experiment
    seed: int | None = None
    smoke: bool = False  # a `run --smoke` check, not a result
    results: dict = attrs.field(factory=dict, repr=False)  # results.json as read, for --columns
    settings: dict = attrs.field(factory=dict, repr=False)  # recipe.yaml as read, by key path (empty: unreadable)
    latency: dict = attrs.field(factory=dict)  # backend -> LatencyRecord from `segbench benchmark`

    @property
    def name(self) -> str:
        return self.run.path.name


def is_run(path: Path) -> bool:
    run = RunDir(path)
    return path.is_dir() and not path.name.startswith(".") and any(
        p.exists() for p in (run.recipe_file, run.results, run.metrics, run.checkpoints))


def is_run_itself(path: Path) -> bool:
    """A folder `segbench run` wrote (recipe.yaml or results.json in it), not a folder of runs."""
    run = RunDir(path)
    return run.recipe_file.is_file() or run.results.is_file()


def _recipe_data(run: RunDir) -> dict:
    if not run.recipe_file.is_file():
        return {}
    try:
        data = yaml.safe_load(run.recipe_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
        print(f"segbench: warning: {run.recipe_file} is unreadable ({type(exc).__name__}); its row shows only"
              " what results.json holds. Restore the file from a copy.", file=sys.stderr)
        return {}
    return data if isinstance(data, dict) else {}


def _name_of(section, default=None):
    return section.get("name", default) if isinstance(section, dict) else default


def _split_text(section) -> str | None:
    if not isinstance(section, dict):
        return None
    text = str(section.get(SPLIT_KEY, "?"))
    if isinstance(section.get(SUBSET_KEY), dict) and section[SUBSET_KEY]:
        subset = section[SUBSET_KEY]
        text += " subset " + ", ".join(f"{k}={v}" for k, v in subset.items() if v not in (None, False))
    return text


def _progress(run: RunDir) -> tuple[int | None, int | None]:
    """(completed epochs, optimizer steps) of an unfinished run, from metrics.jsonl, else last.pt."""
    records = run.read_metrics()
    if records:
        return records[-1].epoch, records[-1].iteration
    if run.last.is_file():
        from segbench.engine.checkpoint import load_checkpoint

        try:
            state = load_checkpoint(run.last).get("train_state") or {}
        except SegbenchError:
            return None, None
        return state.get("epoch"), state.get("iteration")
    return None, None


def read_run(path: Path) -> RunRow:
    from segbench.report.latency import BACKENDS, read_latency

    run = RunDir(Path(path))
    recipe = _recipe_data(run)
    row = RunRow(run, recipe=run_name(run), model=_name_of(recipe.get("model")),
                 strategy=_name_of(recipe.get("strategy")),
                 report_split=_split_text((recipe.get("data") or {}).get("report")),
                 seed=recipe.get("seed", 0) if recipe else None,
                 experiment_hash=content_hash(recipe, exclude=(*UNHASHED_SECTIONS, *REPLICATE_KEYS))
                 if recipe else None, settings=flatten(recipe))
    row.latency = {backend: record for backend in BACKENDS if (record := read_latency(run.path, backend))}
    if run.results.is_file():
        try:
            results = run.read_results()
        except RecordError as exc:
            print(f"segbench: warning: skipping run {run.path}: {exc}", file=sys.stderr)
            row.status = "results.json unusable"
            return row
        row.complete = True
        row.smoke = results.smoke
        row.results = json.loads(results.to_json())  # every field by its key path, for --columns
        row.recipe = results.recipe
        row.recipe_hash = results.recipe_hash
        row.experiment_hash = results.experiment_hash or row.experiment_hash  # older runs: from recipe.yaml
        row.seed = results.seed if results.seed is not None else row.seed
        row.model = results.model
        row.strategy = results.strategy
        row.miou, row.pixel_accuracy = results.mIoU, results.pixel_accuracy
        row.per_class_iou = dict(results.per_class_iou)
        row.params, row.checkpoint_mb = results.params, results.checkpoint_mb
        row.epochs, row.iterations = results.epochs, results.iterations
        row.report_split = _split_text(results.report_split) or row.report_split
        row.report_images = results.report_images
        row.selection_overlaps_report = results.selection_overlaps_report
        row.status = "complete (smoke)" if row.smoke else "complete"
        return row
    if run.results.exists():  # a folder (or other non-file) where results.json belongs
        print(f"segbench: warning: {run.results} is not a file; the run is listed as unfinished. Move it away and"
              " run the same `segbench run` command to write the results.", file=sys.stderr)
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


def collect_runs(runs_dir: Path | None = None, *, include_smoke: bool = False, command: str = "compare"
                 ) -> list[RunRow]:
    """Every run directory directly under ``runs_dir`` (default ``$SEGBENCH_RUNS`` or ``./runs``);
    ``run --smoke`` runs only with ``include_smoke`` (a note on stderr, from ``command``, says how many were left
    out and how to list them)."""
    folder = default_runs_dir(runs_dir)
    if not folder.is_dir():
        raise SegbenchError(f"runs directory {folder} " + ("is a file, not a folder" if folder.exists() else
                            "does not exist") + ("" if runs_dir else
                            " (the default: $SEGBENCH_RUNS, else ./runs)") + ". Give the folder that"
                            " `segbench run --runs-dir` wrote to, or train something first.")
    if RunDir(folder).set_aside_message():
        raise SegbenchError(RunDir(folder).set_aside_message())
    # A run directory given instead of the folder holding it: its one row (its own subfolders are no runs).
    itself = is_run_itself(folder)
    paths = [folder] if itself else sorted(folder.iterdir())
    rows = [read_run(path) for path in paths if is_run(path)]
    set_aside = [message for path in paths if path.is_dir() and (message := RunDir(path).set_aside_message())]
    for message in set_aside if rows else ():
        print(f"{command}: left out {message}", file=sys.stderr)
    if set_aside and not rows:
        raise SegbenchError(" ".join(set_aside))
    smoke = [row for row in rows if row.smoke]
    if smoke and not include_smoke:
        rows = [row for row in rows if not row.smoke]
        names = f"{', '.join(r.name for r in smoke[:5])}{', ...' if len(smoke) > 5 else ''}"
        if not rows:
            what = f"{folder} is a smoke run" if itself else \
                f"{folder} holds only smoke runs ({len(smoke)}: {names})"
            raise SegbenchError(f"{what}, checks on tiny data that {command} leaves out; add --include-smoke to"
                                " show them.")
        print(f"{command}: left out {len(smoke)} smoke run(s) ({names}); --include-smoke shows them",
              file=sys.stderr)
    if not rows:
        raise SegbenchError(f"no runs in {folder}: no subfolder holds a recipe.yaml, metrics.jsonl or"
                            " results.json. Train with `segbench run RECIPE --runs-dir " f"{folder}` first.")
    return sort_rows(rows)


# ---- inference speed ------------------------------------------------------------------------------

def measure_speed(run_path: Path, registries=None, *, device: str | None = None,
                  repeats: int = 3) -> tuple[float, str, tuple[int, int]]:
    """Images per second (median of ``repeats`` timed runs after one warm-up), the device used, and
    the (H, W) of the timed image (the report split's first)."""
    from segbench.data.reading import read_item
    from segbench.engine.evaluate import predict
    from segbench.report.loading import load_run

    loaded, dataset = load_run(run_path, registries, device=device)
    image, mask = read_item(dataset, 0)
    image_t, _ = loaded.plan.eval_transforms(image, mask, torch.Generator().manual_seed(0))
    batch, settings = image_t[None], loaded.inference

    def once():
        with torch.no_grad():
            pred = predict(loaded.model, batch, label_size=tuple(mask.shape[-2:]), config=loaded.plan.evaluation,
                           num_classes=loaded.info.num_classes, runtime=settings)
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
        try:
            speed = measure_speed(row.run.path, registries, device=device)
        except SegbenchError as exc:  # one damaged run leaves its speed blank, not the whole table unprinted
            print(f"segbench: warning: no speed for {row.name}: {exc}", file=sys.stderr)
            continue
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
    backends = latency_backends(rows)
    tags = setting_tags(rows, backends)
    latency_header = "".join(f" {b} ms (model / e2e) | {b} FPS |" for b in backends)
    lines = [f"| recipe | model | strategy | mIoU | pixel accuracy | params | checkpoint MB | {speed_header} |"
             f"{latency_header} report split | status |" + "".join(f" {_cell(c)} |" for c in columns),
             "|---|---|---|---:|---:|---:|---:|---:|" + "---:|---:|" * len(backends) + "---|---|"
             + "---|" * len(columns)]
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
                 _speed(row), *latency_cells(row, backends, tags), split, status]
        cells += [MISSING if (v := cell_text(lookup(row.results, c))) is None else v for c in columns]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if any_overlap:
        lines += ["", "† the best checkpoint was chosen on the report split itself: these numbers are optimistic."]
    lines += latency_notes(backends, tags)

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


CSV_COLUMNS = ("run", "recipe", "recipe_hash", "experiment_hash", "seed", "model", "strategy", "status", "complete", "epochs", "iterations",
               "mIoU", "pixel_accuracy", "params", "checkpoint_mb", SPEED_KEY, "speed_device", "speed_size", "report_split",
               "report_images", "selection_overlaps_report")


def csv_table(rows: list[RunRow], columns=()) -> str:
    """One row per run; numbers as ``results.json`` holds them (``repr``, so they parse back exactly)."""
    classes = class_names(rows)
    backends = latency_backends(rows)
    latency_columns = [f"{b}_{c}" for b in backends for c in LATENCY_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *latency_columns, *columns, *(f"iou_{name}" for name in classes)])
    for row in rows:
        values = {"run": row.name, "recipe": row.recipe, "recipe_hash": row.recipe_hash,
                  "experiment_hash": row.experiment_hash, "seed": row.seed, "model": row.model,
                  "strategy": row.strategy, "status": row.status, "complete": row.complete, "epochs": row.epochs,
                  "iterations": row.iterations, "mIoU": row.miou, "pixel_accuracy": row.pixel_accuracy,
                  "params": row.params, "checkpoint_mb": row.checkpoint_mb, SPEED_KEY: row.images_per_s,
                  "speed_device": row.speed_device,
                  "speed_size": None if row.speed_size is None else f"{row.speed_size[0]}x{row.speed_size[1]}",
                  "report_split": row.report_split,
                  "report_images": row.report_images, "selection_overlaps_report": row.selection_overlaps_report}
        latency = [latency_value(row.latency.get(b), c) for b in backends for c in LATENCY_COLUMNS]
        cells = [values[c] for c in CSV_COLUMNS] + latency + [cell_text(lookup(row.results, c)) for c in columns] + \
            [row.per_class_iou.get(name) for name in classes]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in cells])
    return buffer.getvalue()


def _check_columns(rows: list[RunRow], columns) -> None:
    """A column no finished run has is a typo: say which keys exist."""
    finished = [row.results for row in rows if row.results]
    for column in columns:
        if finished and not any(has_key(results, column) for results in finished):
            raise SegbenchError(f"--columns {column!r}: no run's results.json has it. Available:"
                                f" {', '.join(known_columns(finished[0]))}")


def compare_command(args, *, registries=None) -> str:
    from segbench.report.significance import difference_command, experiment_tables

    targets = list(getattr(args, "targets", None) or [])
    if any(not str(target).strip() for target in targets):
        raise SegbenchError("compare: a target is empty: give a runs folder, or two run folders or experiment"
                            " labels (is a shell variable unset?)")
    if len(targets) == 2:
        return difference_command(args, *targets)
    if len(targets) > 2:
        raise SegbenchError(f"compare takes a runs directory, or two experiments or runs A and B; got"
                            f" {len(targets)}: {' '.join(targets)}.")
    runs_dir = Path(targets[0]) if targets else args.runs_dir
    if targets and args.runs_dir is not None and Path(args.runs_dir).resolve() != runs_dir.resolve():
        raise SegbenchError(f"compare {targets[0]} --runs-dir {args.runs_dir}: both name the runs folder to"
                            " tabulate; give one of them (with two experiments A B, --runs-dir says where their"
                            " runs are)")
    rows = collect_runs(runs_dir, include_smoke=getattr(args, "include_smoke", False))
    columns = parse_columns(getattr(args, "columns", None))
    _check_columns(rows, columns)
    if getattr(args, "experiments", False):
        from segbench.report.significance import experiments_csv

        options = dict(resamples=args.resamples, confidence=args.confidence, seed=args.bootstrap_seed)
        text = experiments_csv(rows, **options) if args.format == "csv" else \
            experiment_tables(rows, always=True, **options)
        sys.stdout.write(text)
        return text
    if args.speed:
        add_speeds(rows, registries)
    if args.format == "csv":
        text = csv_table(rows, columns)
    else:
        text = markdown_tables(rows, columns) + experiment_tables(rows, resamples=args.resamples,
                                                         confidence=args.confidence, seed=args.bootstrap_seed)
    sys.stdout.write(text)
    return text
