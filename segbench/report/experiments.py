"""Runs grouped into experiments (the same recipe up to its seed), and their per-image matrices.

An experiment is labelled by its recipe name; when one runs directory holds several experiments of the
same recipe (other overrides or grid points), by ``name~hash8`` (the experiment hash, which ignores the
seed). ``NAME:0,1,2`` selects some of its seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import attrs
import numpy as np

from segbench.engine.image_scores import FILE_NAME, load_image_scores
from segbench.errors import SegbenchError
from segbench.functional.bootstrap import Replicates, miou_batch
from segbench.report.compare import RunRow, collect_runs, read_run
from segbench.runs import RunDir


@attrs.frozen
class Experiment:
    """The complete runs of one experiment, by seed."""

    label: str
    recipe: str
    experiment_hash: str | None
    runs: tuple[RunRow, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(row.seed for row in self.runs)

    def select(self, seeds) -> "Experiment":
        chosen = tuple(row for row in self.runs if row.seed in set(seeds))
        missing = sorted(set(seeds) - {row.seed for row in chosen})
        if missing:
            raise SegbenchError(f"experiment {self.label} has no complete run of seed(s) {missing}; its seeds:"
                                f" {sorted(self.seeds)}.")
        label = f"{self.label}:{','.join(str(s) for s in sorted(seeds))}"
        return attrs.evolve(self, label=label, runs=chosen)


def group_experiments(rows: list[RunRow]) -> list[Experiment]:
    """Complete runs grouped by recipe name and experiment hash, in the order of ``rows``; seeds sorted."""
    groups: dict[tuple, list[RunRow]] = {}
    for row in rows:
        if row.complete:
            groups.setdefault((row.recipe, row.experiment_hash), []).append(row)
    names: dict[str, int] = {}
    for recipe, _ in groups:
        names[recipe] = names.get(recipe, 0) + 1
    experiments = []
    for (recipe, digest), members in groups.items():
        label = recipe if names[recipe] == 1 or digest is None else f"{recipe}~{digest[:8]}"
        members = sorted(_one_folder_per_run(members), key=lambda r: (r.seed is None, r.seed or 0, r.name))
        experiments.append(Experiment(label, recipe, digest, tuple(members)))
    return experiments


# What differs between every run of an experiment, or is segbench's own record: not what tells experiments apart.
_NOT_SETTINGS = ("seed", "seeds", "upstream")


def what_differs(experiments: list[Experiment], limit: int = 4) -> dict[str, str]:
    """For experiments that share a recipe name (labelled ``name~hash8``: grid points, other overrides), the
    settings that tell them apart, from their runs' ``recipe.yaml``: label -> ``optimizer.lr=0.001``."""
    by_recipe: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        by_recipe.setdefault(experiment.recipe, []).append(experiment)
    described = {}
    for group in by_recipe.values():
        read = [_shared_settings(experiment) for experiment in group] if len(group) > 1 else [None]
        if any(r is None for r in read):
            continue
        settings = [shared for shared, _ in read]
        varying = {key for _, keys in read for key in keys}  # within an experiment: not what sets it apart
        keys = sorted({key for s in settings for key in s} - varying)
        differing = [key for key in keys if len({repr(s.get(key)) for s in settings}) > 1]
        for experiment, values in zip(group, settings):
            shown = [f"{key}={_text(values[key]) if key in values else '(unset)'}" for key in differing[:limit]]
            more = f" and {len(differing) - limit} more" if len(differing) > limit else ""
            described[experiment.label] = ", ".join(shown) + more
    return described


def _shared_settings(experiment: Experiment) -> tuple[dict, set] | None:
    """The settings every run of ``experiment`` has alike, and the keys its runs set otherwise (a --smoke run's
    images follow its seed, for one); ``None`` when a run's recipe.yaml could not be read."""
    runs = [{key: value for key, value in row.settings.items() if key.split(".")[0] not in _NOT_SETTINGS}
            for row in experiment.runs]
    if not all(runs):
        return None
    every_key = {key for settings in runs for key in settings}
    shared = {key: runs[0][key] for key in every_key
              if all(key in settings and repr(settings[key]) == repr(runs[0][key]) for settings in runs)}
    return shared, every_key - shared.keys()


def _text(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _one_folder_per_run(rows: list[RunRow]) -> list[RunRow]:
    """One row per run hash: a copied run folder would count its seed twice. The folder named after the run
    (``<recipe>-<hash8>``, as ``segbench run`` names it) is kept."""
    kept: dict[str, RunRow] = {}
    for row in sorted(rows, key=lambda r: (r.recipe_hash is None or r.name != f"{r.recipe}-{r.recipe_hash[:8]}",
                                           r.name)):
        twin = kept.get(row.recipe_hash) if row.recipe_hash else None
        if twin is None:
            kept[row.recipe_hash or row.name] = row
        else:
            print(f"compare: left out {row.run.path}: the same run (recipe, settings and seed {row.seed}) as"
                  f" {twin.run.path}, one a copy of the other; each run counts once", file=sys.stderr)
    return list(kept.values())


def replicates(experiment: Experiment) -> Replicates:
    """The per-image matrices of every run of ``experiment`` (all scored on the same images)."""
    seeds, stacks, first = [], [], None
    for row in experiment.runs:
        if row.seed in seeds:
            raise SegbenchError(f"experiment {experiment.label}: two complete runs have seed {row.seed}"
                                f" ({row.run.path} and another); keep one.")
        scores = load_image_scores(row.run.path / FILE_NAME)
        _check_matches_results(row, scores.matrices)
        if first is None:
            first = (row, scores)
        elif (scores.image_ids, scores.class_names) != (first[1].image_ids, first[1].class_names):
            raise SegbenchError(f"experiment {experiment.label}: {row.run.path} was scored on other images or"
                                f" classes than {first[0].run.path}; runs of one experiment share the report split.")
        seeds.append(row.seed)
        stacks.append(scores.matrices)
    return Replicates(tuple(seeds), first[1].image_ids, np.stack(stacks))


def _check_matches_results(row: RunRow, matrices: np.ndarray) -> None:
    """The per-image matrices sum to the global matrix of the run's own ``results.json``: one copied from another
    run (or left over from an earlier one) would otherwise put that run's scores under this run's name."""
    if row.miou is None:
        return
    summed = float(miou_batch(matrices.sum(axis=0)))
    if abs(summed - row.miou) > 1e-6:
        raise SegbenchError(f"{row.run.path / FILE_NAME} gives mIoU {100 * summed:.2f}, but the run's results.json"
                            f" {100 * row.miou:.2f}: the file belongs to another run or is damaged. Restore the"
                            " run's own file, or remove it (the run is then shown without intervals).")


def class_names_of(experiment: Experiment) -> tuple[str, ...]:
    return load_image_scores(experiment.runs[0].run.path / FILE_NAME).class_names


def resolve_experiment(target: str, runs_dir: Path | None = None, *,
                       experiments: Callable[[], list[Experiment]] | None = None) -> Experiment:
    """A run directory (one run), or ``LABEL[:seeds]`` among the experiments of ``runs_dir`` (or of
    ``experiments()``, which lets two targets share one reading of the runs directory)."""
    path = Path(target)
    if path.is_dir() and RunDir(path).set_aside_message():  # a --restart that stopped before its first checkpoint
        raise SegbenchError(RunDir(path).set_aside_message())
    if path.is_dir() and (path / "recipe.yaml").is_file():
        row = read_run(path)
        if not row.complete:
            if row.run.results.is_file():  # there, but damaged: the warning above says how
                raise SegbenchError(f"{path}: its results.json cannot be read ({row.status}); see the warning above.")
            raise SegbenchError(f"{path} is not complete (no results.json): {row.status}.")
        return Experiment(row.name, row.recipe, row.experiment_hash, (row,))
    label, colon, seed_text = target.partition(":")
    if colon and not seed_text.strip():
        raise SegbenchError(f"{target!r}: no seeds after the colon; give them (e.g. {label}:0,1,2), or the label alone"
                            " for every seed")
    found = experiments() if experiments is not None else group_experiments(collect_runs(runs_dir))
    for experiment in found:
        if experiment.label == label:
            if not seed_text:
                return experiment
            from segbench.errors import RecipeError
            from segbench.recipe.variants import parse_seeds

            try:
                seeds = parse_seeds(seed_text)
            except RecipeError:  # its message names --seeds; here the seeds follow the label
                raise SegbenchError(f"{target!r}: the seeds after the colon must be distinct integers (each a seed"
                                    f" the experiment was run with) separated by commas, e.g. {label}:0,1,2"
                                    ) from None
            return experiment.select(seeds)
    known = ", ".join(e.label for e in found) or "none"
    raise SegbenchError(f"{target!r} is neither a run directory nor an experiment in the runs directory"
                        f" (experiments: {known}). Give a run directory, or an experiment label as"
                        " `segbench compare` lists it, optionally with seeds (NAME:0,1,2).")
