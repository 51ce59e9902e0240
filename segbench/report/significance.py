"""Statistics in ``segbench compare``: experiments across seeds, and B minus A with intervals.

Numbers are percentage points of the official-rule metrics. Intervals come from
``segbench.functional.bootstrap`` (resampling seeds and images, recomputing the global-matrix mIoU).
"""
from __future__ import annotations

import math
import statistics
import sys

from segbench.errors import SegbenchError
from segbench.functional import bootstrap
from segbench.report.compare import MISSING, RunRow, collect_runs
from segbench.report.experiments import (Experiment, class_names_of, group_experiments, replicates,
                                         resolve_experiment, what_differs)


def _points(value: float) -> str:
    return MISSING if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _signed(value: float) -> str:
    return MISSING if math.isnan(value) else f"{100 * value:+.2f}"


def _spread(mean: float, std: float) -> str:
    if math.isnan(mean):
        return MISSING
    return _points(mean) + ("" if math.isnan(std) else f" ± {_points(std)}")


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than two) of the values that are known."""
    known = [v for v in values if v is not None]
    if not known:
        return math.nan, math.nan
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else math.nan


def _interval(interval: bootstrap.Interval, signed=False) -> str:
    if math.isnan(interval.low):
        return MISSING
    show = _signed if signed else _points
    return f"[{show(interval.low)}, {show(interval.high)}]"


def _csv_number(value) -> str:
    """A fraction for CSV at full precision; empty where there is none (a class never scored: NaN)."""
    return "" if value is None or math.isnan(value) else repr(float(value))


def _stats(experiment: Experiment, **options):
    """The experiment's statistics, or ``None`` (with the reason) when its runs lack per-image matrices."""
    try:
        return bootstrap.experiment_stats(replicates(experiment), **options), None
    except SegbenchError as exc:
        return None, str(exc)


def experiments_csv(rows: list[RunRow], *, resamples: int, confidence: float, seed: int) -> str:
    """One row per experiment: seeds, mean and standard deviation across seeds of mIoU, pixel accuracy and each
    class IoU, and the bootstrap interval of the mean mIoU; fractions, as ``results.json`` holds them."""
    import csv
    import io

    experiments = group_experiments(rows)
    found = [(e, *_stats(e, resamples=resamples, confidence=confidence, seed=seed)) for e in experiments]
    names = list(dict.fromkeys(name for e, stats, _ in found if stats is not None for name in class_names_of(e)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment", "recipe", "experiment_hash", "seeds", "mIoU_mean", "mIoU_std", "mIoU_low",
                     "mIoU_high", "confidence", "resamples", "pixel_accuracy_mean", "pixel_accuracy_std",
                     *(column for name in names for column in (f"iou_{name}_mean", f"iou_{name}_std")), "problem"])

    for experiment, stats, problem in found:
        start = [experiment.label, experiment.recipe, experiment.experiment_hash or "",
                 " ".join(str(s) for s in experiment.seeds)]
        if stats is None:  # no per-image matrices: the runs' own results, nothing resampled
            miou, accuracy = (_mean_std([getattr(row, key) for row in experiment.runs])
                              for key in ("miou", "pixel_accuracy"))
            writer.writerow([*start, *map(_csv_number, miou), *[""] * 4, *map(_csv_number, accuracy),
                             *[""] * (2 * len(names)), problem])
            continue
        index = {name: i for i, name in enumerate(class_names_of(experiment))}
        classes = [_csv_number(values[index[name]]) if name in index else "" for name in names
                   for values in (stats.class_iou_mean, stats.class_iou_std)]
        writer.writerow([*start, *map(_csv_number, (stats.miou_mean, stats.miou_std, stats.miou.low, stats.miou.high)),
                         confidence, resamples, _csv_number(stats.pixel_accuracy_mean),
                         _csv_number(stats.pixel_accuracy_std), *classes, ""])
    return buffer.getvalue()


def experiment_tables(rows: list[RunRow], *, resamples: int, confidence: float, seed: int,
                      always: bool = False) -> str:
    """Mean ± standard deviation across seeds and the bootstrap interval of each experiment's mIoU
    (nothing when every experiment has one run, unless ``always``)."""
    experiments = group_experiments(rows)
    if not always and not any(len(e.runs) > 1 for e in experiments):
        return ""  # one run per experiment: the run table says it all
    level = f"{100 * confidence:g}%"
    lines = ["", f"Experiments: mean ± standard deviation across seeds; {level} interval of the mean mIoU"
             f" (bootstrap over seeds and images, {resamples} resamples, seed {seed})", "",
             f"| experiment | seeds | mIoU (%) | {level} interval | pixel accuracy (%) |", "|---|---|---:|---|---:|"]
    notes, per_class = [], []
    for experiment in experiments:
        stats, problem = _stats(experiment, resamples=resamples, confidence=confidence, seed=seed)
        seeds = ", ".join(str(s) for s in experiment.seeds)
        if stats is None:  # no interval, but the runs' own results.json still give mean and spread
            miou, accuracy = (_spread(*_mean_std([getattr(row, key) for row in experiment.runs]))
                              for key in ("miou", "pixel_accuracy"))
            lines.append(f"| {experiment.label} | {seeds} | {miou} | {MISSING} † | {accuracy} |")
            notes.append(f"† {experiment.label}: {problem}")
            continue
        single = " ‡" if len(experiment.runs) == 1 else ""
        accuracy = _spread(stats.pixel_accuracy_mean, stats.pixel_accuracy_std)
        lines.append(f"| {experiment.label} | {seeds} | {_spread(stats.miou_mean, stats.miou_std)} |"
                     f" {_interval(stats.miou)}{single} | {accuracy} |")
        per_class.append((experiment, stats))
    if any(len(e.runs) == 1 for e, _ in per_class):
        notes.append("‡ one seed: the interval covers image sampling only, not run-to-run variation; train more seeds"
                     " (--seeds 0,1,2) before comparing it.")
    differs = what_differs(experiments)
    if differs:
        notes = [*(f"{label}: {settings}" for label, settings in differs.items()), *notes]
    lines += ["", *notes] if notes else []
    if per_class:
        # Experiments may score different class sets (other datasets): one row per class name, in order of
        # first appearance, each experiment's cell found by name.
        positions = [{name: index for index, name in enumerate(class_names_of(e))} for e, _ in per_class]
        names = list(dict.fromkeys(name for position in positions for name in position))
        lines += ["", "Per-class IoU (%), mean ± standard deviation across seeds", "",
                  "| class | " + " | ".join(e.label for e, _ in per_class) + " |", "|---|" + "---:|" * len(per_class)]
        for name in names:
            cells = [_spread(s.class_iou_mean[position[name]], s.class_iou_std[position[name]])
                     if name in position else MISSING for position, (_, s) in zip(positions, per_class)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdict(diff: bootstrap.Difference, a: str, b: str) -> str:
    """The difference of mIoU in words."""
    interval, level = diff.miou, f"{100 * diff.confidence:g}%"
    if math.isnan(interval.low):
        return "No mIoU difference can be computed: no class was scored."
    direction = "higher" if interval.estimate > 0 else "lower" if interval.estimate < 0 else "the same as"
    amount = f"by {abs(100 * interval.estimate):.2f} points " if interval.estimate else ""
    text = (f"{b} scores {direction} {'' if not interval.estimate else 'than '}{a} {amount}(mIoU); the {level}"
            f" interval {_interval(interval, signed=True)} ")
    if interval.excludes_zero:
        return text + ("excludes zero: the difference is larger than the seed-to-seed and image-sampling noise"
                       " measured here.")
    return text + ("includes zero: these runs do not show a real difference (one smaller than the noise, or none,"
                   " is consistent with them; more seeds or images narrow the interval).")


def difference_text(a: Experiment, b: Experiment, diff: bootstrap.Difference, class_names, seed: int) -> str:
    level = f"{100 * diff.confidence:g}%"
    stats_a, stats_b = (bootstrap.experiment_stats(replicates(e), resamples=1) for e in (a, b))
    pairing = "seeds paired" if diff.paired_seeds else "seeds resampled independently (different seed sets)"
    lines = [f"B − A: B = {b.label} (seeds {', '.join(map(str, b.seeds))}) minus A = {a.label}"
             f" (seeds {', '.join(map(str, a.seeds))})",
             f"{diff.images} images shared; {pairing}; {diff.resamples} bootstrap resamples, seed {seed}", "",
             f"| metric | A | B | B − A | {level} interval | |", "|---|---:|---:|---:|---|---|"]

    def row(name, mean_a, mean_b, interval):
        mark = "excludes 0" if interval.excludes_zero else "includes 0"
        return (f"| {name} | {_points(mean_a)} | {_points(mean_b)} | {_signed(interval.estimate)} |"
                f" {_interval(interval, signed=True)} | {mark if not math.isnan(interval.low) else ''} |")

    lines.append(row("mIoU", stats_a.miou_mean, stats_b.miou_mean, diff.miou))
    lines.append(row("pixel accuracy", stats_a.pixel_accuracy_mean, stats_b.pixel_accuracy_mean,
                     diff.pixel_accuracy))
    lines += ["", "Per-class IoU (%)", "", f"| class | A | B | B − A | {level} interval | |",
              "|---|---:|---:|---:|---|---|"]
    for index, name in enumerate(class_names):
        lines.append(row(name, stats_a.class_iou_mean[index], stats_b.class_iou_mean[index], diff.class_iou[index]))
    lines += ["", verdict(diff, "A", "B")]
    if len(a.seeds) == 1 or len(b.seeds) == 1:
        lines.append("With a single seed on a side, the interval covers image sampling only, not run-to-run"
                     " variation: train more seeds (--seeds 0,1,2) before drawing conclusions.")
    return "\n".join(lines) + "\n"


def difference_csv(a: Experiment, b: Experiment, diff: bootstrap.Difference, class_names) -> str:
    """One row per metric: A's and B's means, B − A with its interval, as fractions (as ``results.json``)."""
    import csv
    import io

    stats_a, stats_b = (bootstrap.experiment_stats(replicates(e), resamples=1) for e in (a, b))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "a", "b", "a_seeds", "b_seeds", "a_mean", "b_mean", "difference", "low", "high",
                     "confidence", "excludes_zero"])
    rows = [("mIoU", stats_a.miou_mean, stats_b.miou_mean, diff.miou),
            ("pixel_accuracy", stats_a.pixel_accuracy_mean, stats_b.pixel_accuracy_mean, diff.pixel_accuracy),
            *((f"iou_{name}", stats_a.class_iou_mean[i], stats_b.class_iou_mean[i], diff.class_iou[i])
              for i, name in enumerate(class_names))]
    for metric, mean_a, mean_b, interval in rows:
        cells = [mean_a, mean_b, interval.estimate, interval.low, interval.high]
        writer.writerow([metric, a.label, b.label, " ".join(map(str, a.seeds)), " ".join(map(str, b.seeds)),
                         *map(_csv_number, cells), diff.confidence,
                         "" if math.isnan(interval.low) else interval.excludes_zero])
    return buffer.getvalue()


def difference_command(args, target_a: str, target_b: str) -> str:
    if getattr(args, "columns", None) or getattr(args, "speed", False) or getattr(args, "experiments", False):
        raise SegbenchError("--columns, --speed and --experiments choose what the tables of a runs directory show;"
                            " with A and B, compare prints the difference table only. Give a runs directory instead"
                            " of A and B to use them.")
    if getattr(args, "forest", None):
        from segbench.atomic import check_output_file
        from segbench.report.figure_file import figure_format
        from segbench.runs import refuse_run_file

        refuse_run_file(args.forest, "--forest")  # before the resampling, not after it
        figure_format(args.forest, "--forest")
        check_output_file(args.forest, "--forest")
    found: list = []

    def experiments():  # the runs directory is read once, and only when a target is a label
        if not found:
            found.append(group_experiments(collect_runs(args.runs_dir, include_smoke=args.include_smoke)))
        return found[0]

    a, b = (resolve_experiment(t, experiments=experiments) for t in (target_a, target_b))
    names_a, names_b = class_names_of(a), class_names_of(b)
    if names_a != names_b:
        raise SegbenchError(f"{a.label} and {b.label} score different classes; they cannot be compared.")
    try:
        diff = bootstrap.compare(replicates(a), replicates(b), resamples=args.resamples,
                                 confidence=args.confidence, seed=args.bootstrap_seed)
    except ValueError as exc:
        raise SegbenchError(f"cannot compare {a.label} with {b.label}: {exc}. Compare runs scored on the same"
                            " report split.") from None
    if getattr(args, "format", "markdown") == "csv":
        text = difference_csv(a, b, diff, names_a)
    else:
        text = difference_text(a, b, diff, names_a, args.bootstrap_seed)
    if getattr(args, "forest", None):
        from segbench.report.plot import forest_plot

        out = forest_plot(diff, names_a, args.forest, title=f"{b.label} − {a.label}")
        text += f"forest plot: {out}\n"
    sys.stdout.write(text)
    return text
