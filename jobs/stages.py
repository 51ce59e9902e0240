"""Recipes -> the stage DAG: a finetuned recipe depends on the stage its strategy starts from."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Iterable, Sequence

import attrs

from segbench.runs import RunDir, check_upstream_files
from segbench.errors import RecipeError
from segbench.records import RecordError
from segbench.recipe.load import ResolvedRecipe
from segbench.recipe.stages import resolve_stages
from segbench.recipe.variants import GridAxis, Variant, load_variants
from segbench_jobs.slurm_config import SlurmConfig, slurm_config

RECIPE_SUFFIXES = (".yaml", ".yml")


@attrs.frozen
class Stage:
    """One run to execute, identified by its run name (recipe name + hash)."""

    recipe: ResolvedRecipe
    run: RunDir
    slurm: SlurmConfig | None  # None for a stage that is complete (it is not submitted)
    upstream: str | None  # run name of the stage this one starts from, when that is not complete yet
    requested: bool  # named on the command line (False: pulled in as another stage's upstream)
    variant: Variant = Variant(0, None)  # its place in the experiment (the array task id); an upstream
    # stage takes the variant of the stage that pulled it in, so task k pairs with task k
    multi: bool = False  # one of several runs of an experiment (submitted in a job array)
    unchecked: str | None = None  # why its data could not be checked before submitting (None: checked)

    @property
    def name(self) -> str:
        return self.run.path.name

    @property
    def complete(self) -> bool:
        return self.slurm is None


def find_recipes(path: Path) -> list[Path]:
    """``path`` itself, or the recipes under a folder (sorted; ``_base/``, hidden folders and run directories
    skipped: a run's recipe.yaml records what it ran and is no recipe to submit)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RecipeError(f"{path} is neither a recipe file nor a folder of recipes.")
    if _is_run_directory(path):
        raise RecipeError(f"{path} is a run directory: its recipe.yaml records what the run did. Give the recipe"
                          " it was run from, or a folder of recipes.")
    found, run_directories = [], {}
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path).parts
        if any(part == "_base" or part.startswith(".") for part in relative[:-1]):
            continue
        folders = [path.joinpath(*relative[:depth]) for depth in range(1, len(relative))]
        if any(run_directories.setdefault(folder, _is_run_directory(folder)) for folder in folders):
            continue
        if candidate.is_file() and candidate.suffix in RECIPE_SUFFIXES and not candidate.name.startswith("."):
            found.append(candidate)
    if not found:
        raise RecipeError(f"no recipes (*.yaml) in {path} (recipes under _base/ are building blocks and"
                          " are not submitted).")
    return found


def _is_run_directory(folder: Path) -> bool:
    run = RunDir(folder)
    return run.recipe_file.is_file() and any(
        path.exists() for path in (run.checkpoints, run.metrics, run.results, run.lock_file))


def build_stages(recipe_paths: Iterable[Path], registries, *, overrides: Sequence[str] = (),
                 slurm_overrides: Sequence[str] = (), smoke: bool = False, runs_dir: Path | None = None,
                 seeds: Sequence[int] | None = None, grid: Sequence[GridAxis] = (), check_stage=None) -> list[Stage]:
    """Stages in submission order: every stage comes after the stage it depends on.

    A stage reached from several recipes appears once; a complete stage is kept (so it can be reported)
    but nothing depends on it and its own upstream is not visited.
    """
    stages: dict[str, Stage] = {}
    checked: dict = {}  # what check_stage said of each recipe (seeds aside) and process count

    def complete(plan) -> bool:
        try:  # a damaged results.json would pass for a finished run and fail its job at once: say so now
            return RunDir.for_plan(plan, runs_dir).is_finished()
        except RecordError as exc:
            raise RecipeError(f"{plan.recipe.name}: {exc} (Or move it away and emit again: its job does the same.)"
                              ) from None

    problems: list[RecipeError] = []
    for path in recipe_paths:
        try:
            _add_stages(stages, path, registries, overrides=overrides, slurm_overrides=slurm_overrides, smoke=smoke,
                        runs_dir=runs_dir, seeds=seeds, grid=grid, complete=complete, checked=checked,
                        check_stage=check_stage)
        except RecipeError as exc:  # every broken recipe of a folder at once, not one per attempt
            if str(exc) not in map(str, problems):  # a broken stage that several recipes start from: once
                problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise RecipeError(f"{len(problems)} recipes have problems; nothing was submitted:\n"
                          + "\n".join(f"- {exc}" for exc in problems))
    return list(stages.values())


def _add_stages(stages: dict, path: Path, registries, *, overrides, slurm_overrides, smoke, runs_dir, seeds, grid,
                complete, checked: dict, check_stage) -> None:
    """Add the stages of the recipe ``path`` (each of its runs and what they start from) to ``stages``."""
    variants = load_variants(path, overrides, seeds=seeds, grid=grid, smoke=smoke,
                             registries=registries)
    for variant, requested_recipe in variants:
        # every stage of the chain takes the variant of the requested run: task k pairs with task k
        chain = resolve_stages(requested_recipe, registries, is_complete=complete)
        check_upstream_files(chain, runs_dir)
        for position, link in enumerate(chain):
            requested = position == len(chain) - 1
            known = stages.get(link.name)
            if known is not None:
                if requested and not known.requested:
                    stages[link.name] = attrs.evolve(known, requested=True)
                continue
            recipe, run = link.recipe, RunDir.for_plan(link.plan, runs_dir)
            multi = len(variants) > 1
            # checked whether or not it is submitted: a mistake does not wait for the day a stage is not complete
            config = slurm_config(recipe.data, slurm_overrides, files=recipe.files)
            if link.complete:
                stages[link.name] = Stage(recipe, run, None, None, requested, variant, multi)
                continue
            _check_resumable(run, config, recipe)
            parent = stages.get(link.upstream.run_name) if link.upstream is not None else None
            upstream = None if parent is None or parent.complete else parent.name
            # what the job would refuse once it reads the data, refused now rather than after its wait in the queue;
            # once per recipe and process count (the seeds of an experiment read the same data)
            key = (link.plan.experiment_hash, config.world_size)
            if check_stage is not None and key not in checked:
                checked[key] = check_stage(link.plan, world_size=config.world_size)
            unchecked = checked.get(key)
            stages[link.name] = Stage(recipe, run, config, upstream, requested, variant, multi, unchecked)


def _check_resumable(run: RunDir, config: SlurmConfig, recipe: ResolvedRecipe) -> None:
    """A run resumes only with the process count it started with (its batch is per process): refused now, not
    after the job's wait in the queue."""
    written_by = run.last_world_size()
    if written_by is None or written_by == config.world_size:
        return
    raise RecipeError(
        f"{run.path} was started with {written_by} process(es) and its job would resume it with"
        f" {config.world_size} (slurm.nodes x slurm.ntasks_per_node): its learning-rate schedule and epochs would"
        f" change midway. Emit it with {written_by} process(es) (e.g. slurm.nodes=1"
        f" slurm.ntasks_per_node={written_by}), or start it over first with `{_restart_command(recipe)}`.")


def _restart_command(recipe: ResolvedRecipe) -> str:
    seeds = [] if recipe.replicate_seed is None else ["--seeds", str(recipe.replicate_seed)]
    return shlex.join(["segbench", "run", "--restart", str(recipe.path), *recipe.overrides, *seeds])
