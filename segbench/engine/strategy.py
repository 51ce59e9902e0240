"""The contract of a training strategy (how a run's weights start)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from segbench.recipe.load import ResolvedRecipe


class Strategy(Protocol):
    def upstream(self, recipe: ResolvedRecipe) -> ResolvedRecipe | None:
        """The stage that must have completed before this run starts, or ``None``."""

    def prepare(self, model, *, upstream_run: Path | None) -> str:
        """Initialise ``model`` in place; return a short description for the run record."""

    # Optional: ``check_upstream(plan, upstream_plan)`` raises a ``RecipeError`` when this stage cannot start from
    # that one (called when the stages are resolved, before any of them trains).
