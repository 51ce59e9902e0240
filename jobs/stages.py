"""Recipes -> the stage DAG: a finetuned recipe depends on the stage its strategy starts from."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import attrs

from segbench.engine.rundir import RunDir
from segbench.errors import RecipeError
from segbench.recipe.load import ResolvedRecipe
from segbench.recipe.plan import build_plan
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

    @property
    def name(self) -> str:
        return self.recipe.run_name

    @property
    def complete(self) -> bool:
        return self.slurm is None


def find_recipes(path: Path) -> list[Path]:
    """``path`` itself, or the recipes under a folder (sorted; ``_base/`` and hidden folders skipped)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RecipeError(f"{path} is neither a recipe file nor a folder of recipes.")
    found = []
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path).parts
        if any(part == "_base" or part.startswith(".") for part in relative[:-1]):
            continue
        if candidate.is_file() and candidate.suffix in RECIPE_SUFFIXES and not candidate.name.startswith("."):
            found.append(candidate)
    if not found:
        raise RecipeError(f"no recipes (*.yaml) in {path} (recipes under _base/ are building blocks and"
                          " are not submitted).")
    return found


def build_stages(recipe_paths: Iterable[Path], registries, *, overrides: Sequence[str] = (),
                 slurm_overrides: Sequence[str] = (), smoke: bool = False, runs_dir: Path | None = None,
                 seeds: Sequence[int] | None = None, grid: Sequence[GridAxis] = ()) -> list[Stage]:
    """Stages in submission order: every stage comes after the stage it depends on.

    A stage reached from several recipes appears once; a complete stage is kept (so it can be reported)
    but nothing depends on it and its own upstream is not visited.
    """
    stages: dict[str, Stage] = {}

    def visit(recipe: ResolvedRecipe, chain: tuple[Path, ...], requested: bool, variant: Variant,
              multi: bool) -> Stage:
        if recipe.path in chain:
            cycle = " -> ".join(str(p) for p in (*chain[chain.index(recipe.path):], recipe.path))
            raise RecipeError(f"stage cycle: {cycle}. A strategy's source must not lead back to the recipe.")
        known = stages.get(recipe.run_name)
        if known is not None:
            if requested and not known.requested:
                stages[recipe.run_name] = attrs.evolve(known, requested=True)
            return stages[recipe.run_name]
        plan = build_plan(recipe, registries)
        run = RunDir.for_recipe(recipe, runs_dir)
        if run.is_complete():
            stage = Stage(recipe, run, None, None, requested, variant, multi)
        else:
            upstream_recipe = plan.strategy.build().upstream(recipe)
            upstream = None
            if upstream_recipe is not None:
                parent = visit(upstream_recipe, (*chain, recipe.path), False, variant, multi)
                upstream = None if parent.complete else parent.name
            config = slurm_config(recipe.data, slurm_overrides, files=recipe.files)
            stage = Stage(recipe, run, config, upstream, requested, variant, multi)
        stages[recipe.run_name] = stage
        return stage

    for path in recipe_paths:
        variants = load_variants(path, overrides, seeds=seeds, grid=grid, smoke=smoke)
        for variant, recipe in variants:
            visit(recipe, (), True, variant, len(variants) > 1)
    return list(stages.values())
