"""The stage graph: a recipe, and the stages its training strategy starts from, upstream first.

``segbench run`` trains the stages in this order and ``segbench emit-slurm`` submits them in it; both
walk the graph through :func:`resolve_stages`, so they agree on it and on what a cycle is.
"""
from __future__ import annotations

from typing import Callable

import attrs

from segbench.errors import RecipeError
from segbench.recipe.load import ResolvedRecipe
from segbench.recipe.plan import Plan, build_plan


@attrs.frozen
class Stage:
    """One run in the chain: its validated plan, built strategy, and the plan of the stage it starts from."""

    plan: Plan
    strategy: object  # the built training strategy (``upstream`` / ``prepare``)
    upstream: Plan | None  # None for a stage that starts from scratch, or one already complete
    complete: bool

    @property
    def recipe(self) -> ResolvedRecipe:
        return self.plan.recipe

    @property
    def name(self) -> str:
        """The run name, ``<recipe>-<hash8>`` (the hash of the resolved recipe)."""
        return self.plan.run_name


def resolve_stages(recipe: ResolvedRecipe, registries, *,
                   is_complete: Callable[[Plan], bool] = lambda plan: False) -> list[Stage]:
    """``recipe``'s stage and the stages it needs, upstream first, ``recipe``'s own stage last.

    The walk stops at a stage ``is_complete`` accepts: its run exists, so what it started from does not
    matter. A strategy whose source leads back to a recipe already in the chain is a :class:`RecipeError`
    showing the cycle.
    """
    links: list[tuple[Plan, object, bool]] = []  # downstream first
    current: ResolvedRecipe | None = recipe
    while current is not None:
        seen = [plan.recipe.path for plan, _, _ in links]
        if current.path in seen:
            cycle = " -> ".join(str(p) for p in (*seen[seen.index(current.path):], current.path))
            raise RecipeError(f"stage cycle: {cycle}. A strategy's source must not lead back to the recipe.")
        plan = build_plan(current, registries)
        if links:  # the stage before starts from this one: may it? (e.g. weights of another model would not fit)
            downstream, downstream_strategy, _ = links[-1]
            check = getattr(downstream_strategy, "check_upstream", None)
            if check is not None:
                check(downstream, plan)
        strategy = plan.strategy.build()
        complete = is_complete(plan)
        links.append((plan, strategy, complete))
        current = None if complete else strategy.upstream(current)
    return [Stage(plan, strategy, links[i + 1][0] if i + 1 < len(links) else None, complete)
            for i, (plan, strategy, complete) in enumerate(links)][::-1]
