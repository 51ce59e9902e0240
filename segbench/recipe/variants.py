"""An experiment's runs: its seeds (``seeds:`` / ``--seeds``) times the points of a ``--grid`` sweep.

Each variant is one run with its own hash. Its index (grid point, then seed) is stable for a given
command line: ``emit-slurm`` uses it as the Slurm array task id, so task ``k`` of a fine stage pairs
with task ``k`` of its upstream stage.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import attrs

from segbench.errors import RecipeError
from segbench.limits import SEED_MAX
from segbench.recipe.load import MAX_SEEDS, REPLICATE_KEYS, ResolvedRecipe, load_recipe, parse_override


@attrs.frozen
class GridAxis:
    """``--grid key=v1,v2``: one recipe key and the values (YAML text) the sweep gives it."""

    key: str
    values: tuple[str, ...]


@attrs.frozen
class Variant:
    """One run of an experiment: a grid point's overrides and a seed (``None``: the recipe's own)."""

    index: int
    seed: int | None
    grid: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        parts = [*self.grid, *([f"seed={self.seed}"] if self.seed is not None else [])]
        return " ".join(parts) or "(the recipe as written)"


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2`` -> ``(0, 1, 2)``."""
    parts = [part.strip() for part in text.split(",")]
    # plain ASCII digits only: int() also reads "0_1" as 1 and full-width digits, which would run other seeds
    # than the ones the user meant; an empty part ("0,,1", "0,1,") is a mistake too
    seeds = [int(part) for part in parts] if all(part.isascii() and part.isdigit() for part in parts) else []
    if not seeds or any(not 0 <= s <= SEED_MAX for s in seeds) or len(set(seeds)) != len(seeds) or \
            len(seeds) > MAX_SEEDS:
        raise RecipeError(f"--seeds {text[:80]!r}: give up to {MAX_SEEDS} distinct integers from 0 to {SEED_MAX}"
                          " separated by commas, e.g. --seeds 0,1,2.")
    return tuple(seeds)


def seeds_option(text: str | None) -> tuple[int, ...] | None:
    """``--seeds`` as given (``None``: the recipe's own seeds); an empty value is a mistake, not the default."""
    return None if text is None else parse_seeds(text)


def split_values(text: str) -> list[str]:
    """Split ``v1,v2`` on the commas outside brackets, braces and quotes (``[1,2],[3,4]`` is two values)."""
    values, depth, quote, current = [], 0, None, ""
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current)
            current = ""
            continue
        current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(texts: Sequence[str]) -> tuple[GridAxis, ...]:
    """``["optimizer.lr=1.0e-3,1.0e-4", ...]`` -> one axis per key; each value must be valid YAML."""
    axes: list[GridAxis] = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        values = tuple(split_values(raw)) if sep else ()
        if not key or not values or any(not v for v in values):
            raise RecipeError(f"--grid {text!r}: write --grid key=value1,value2, e.g."
                              " --grid optimizer.lr=1.0e-3,1.0e-4 (no empty values).")
        if key.partition(".")[0] in (*REPLICATE_KEYS, "seeds"):
            raise RecipeError(f"--grid {text!r}: seeds are replicates, not grid points; use --seeds 0,1,2.")
        if key.partition(".")[0] == "slurm":
            raise RecipeError(f"--grid {text!r}: slurm settings say where runs execute, not what they compute,"
                              " so they cannot make grid points; give them once as slurm.key=value.")
        if any(axis.key == key for axis in axes):
            raise RecipeError(f"--grid {key} is given twice; list all its values in one --grid {key}=a,b.")
        # a value that is not YAML fails here, before any run; `true` and 1 are different values
        parsed = [(isinstance(v, bool), v) for v in (parse_override(f"{key}={value}")[1] for value in values)]
        twice = [value for index, value in enumerate(values) if parsed[index] in parsed[:index]]
        if twice:
            raise RecipeError(f"--grid {text!r} gives the value {twice[0]} twice; each value is one run, list it"
                              " once.")
        axes.append(GridAxis(key, values))
    return tuple(axes)


def check_seed_override(path, overrides: Sequence[str], seeds: Sequence[int] | None,
                        option: str = "--seeds 5") -> None:
    """A ``seed=`` override of an experiment with ``seeds`` would be replaced by each of them: refused."""
    if seeds and any(parse_override(text)[0] == "seed" for text in overrides):
        raise RecipeError(f"{path}: the override seed=... would be replaced by each of the seeds {list(seeds)};"
                          f" choose seeds with {option.split()[0]} (e.g. {option}), or drop the recipe's seeds: with"
                          " seeds=null.")


def _check_run_count(runs: int, grid: Sequence[GridAxis], *, seeds: int = 0) -> None:
    """An experiment of more runs than one machine or a Slurm array handles is a typo, refused before the
    minutes it takes to resolve each run's recipe."""
    if runs <= MAX_SEEDS:
        return
    sizes = " x ".join(f"{len(axis.values)} ({axis.key})" for axis in grid) or "1"
    raise RecipeError(f"--grid {sizes} grid points{f' x {seeds} seeds' if seeds else ''} make {runs:,} runs; an"
                      f" experiment has at most {MAX_SEEDS:,}. Sweep fewer values, or split the sweep into several"
                      " commands.")


def grid_points(axes: Sequence[GridAxis]) -> list[tuple[str, ...]]:
    """The product of the axes' values as override lists (one empty point without a grid)."""
    return [tuple(f"{axis.key}={value}" for axis, value in zip(axes, combo))
            for combo in itertools.product(*(axis.values for axis in axes))]


def load_variants(path: str | Path, overrides: Sequence[str] = (), *, seeds: Sequence[int] | None = None,
                  grid: Sequence[GridAxis] = (), smoke: bool = False,
                  registries=None) -> list[tuple[Variant, ResolvedRecipe]]:
    """Every run of the experiment ``path`` (times the grid), in a stable order: grid point, then seed.

    The seeds are ``seeds`` (``--seeds``), else the recipe's ``seeds:``, else just the recipe's ``seed:``.
    """
    variants = []
    points = grid_points(grid)
    _check_run_count(len(points), grid)
    for point in points:
        base = load_recipe(path, [*overrides, *point], smoke=smoke, registries=registries)
        chosen = tuple(seeds) if seeds else base.seeds
        _check_run_count(len(points) * max(len(chosen or ()), 1), grid, seeds=len(chosen or ()))
        check_seed_override(path, overrides, chosen)
        for seed in chosen or (None,):
            variant = Variant(len(variants), seed, point)
            recipe = base if seed is None else load_recipe(path, [*overrides, *point], smoke=smoke, seed=seed,
                                                                   registries=registries)
            variants.append((variant, recipe))
    return variants
