"""The stage graph: a recipe, and the stages its training strategy starts from, upstream first.

``segbench run`` trains the stages in this order and ``segbench emit-slurm`` submits them in it; both
walk the graph through :func:`resolve_stages`, so they agree on it and on what a cycle is.
"""
from __future__ import annotations

from typing import Callable

import attrs

from segbench.errors import ConfigError, RecipeError
from segbench.recipe.load import ResolvedRecipe, parse_override
from segbench.recipe.plan import Plan, build_plan
from segbench.recipe.schema import UPSTREAM_KEY


def _stage_plan(recipe: ResolvedRecipe, registries, *, upstream: bool) -> Plan:
    """``build_plan``; for a stage another starts from, a problem with a key the command line overrides says that
    the overrides apply to every stage (``strategy.checkpoint=last`` meant for the fine stage reaches the coarse
    one too), since that stage's recipe files alone do not explain it."""
    try:
        return build_plan(recipe, registries)
    except ConfigError as exc:
        overridden = [text for text in recipe.overrides
                      if any(_overlap(parse_override(text)[0], path) for path, _ in exc.problems)]
        if not upstream or not overridden:
            raise
        raise RecipeError(f"{exc}\nThe command line's {', '.join(overridden)} applies to every stage, so also to"
                          f" stage {recipe.name}, which a later stage starts from; set it in the recipe of the stage"
                          " it is meant for instead.") from None


def _overlap(key: str, path: str) -> bool:
    """Whether the override of ``key`` and a problem at ``path`` concern the same recipe section."""
    return key.partition(".")[0] == path.partition(".")[0]


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

    A stage that starts from another one holds that run's identity (the recipe key ``upstream``): editing the
    coarse recipe makes a new fine-tuning run rather than reusing the one fine-tuned from the old coarse run.
    The stages returned stop at one ``is_complete`` accepts (its run exists: it need not be trained again).
    A strategy whose source leads back to a recipe already in the chain is a :class:`RecipeError` showing
    the cycle.
    """
    links: list[tuple[ResolvedRecipe, Plan, object]] = []  # downstream first, each stage's recipe as written
    current: ResolvedRecipe | None = recipe
    while current is not None:
        seen = [link[0].path for link in links]
        if current.path in seen:
            cycle = " -> ".join(str(p) for p in (*seen[seen.index(current.path):], current.path))
            raise RecipeError(f"stage cycle: {cycle}. A strategy's source must not lead back to the recipe.")
        if UPSTREAM_KEY in current.data:
            raise RecipeError(f"{' <- '.join(current.files)}: `{UPSTREAM_KEY}:` is written by segbench into a run's"
                              " recipe.yaml (the run a fine-tuning stage starts from), not by a recipe; remove it"
                              " (strategy.source chooses the stage to start from).")
        plan = _stage_plan(current, registries, upstream=bool(links))
        if links:  # the stage before starts from this one: may it? (e.g. weights of another model would not fit)
            downstream, downstream_strategy = links[-1][1], links[-1][2]
            check = getattr(downstream_strategy, "check_upstream", None)
            if check is not None:
                check(downstream, plan)
        strategy = plan.strategy.build()
        links.append((current, plan, strategy))
        current = strategy.upstream(current)
    plans: list[Plan] = []  # upstream first, each with the identity of the run it starts from
    for written, plan, _strategy in reversed(links):
        if plans:
            plan = build_plan(_starting_from(written, plans[-1]), registries)
        plans.append(plan)
    stages: list[Stage] = []
    for position, (plan, (_written, _plan, strategy)) in enumerate(zip(reversed(plans), links)):
        complete = is_complete(plan)
        upstream = plans[-position - 2] if position + 1 < len(links) and not complete else None
        stages.append(Stage(plan, strategy, upstream, complete))
        if complete:
            break
    return stages[::-1]


def _starting_from(recipe: ResolvedRecipe, upstream: Plan) -> ResolvedRecipe:
    """``recipe`` holding the identity of the run it starts from."""
    return attrs.evolve(recipe, data={**recipe.data,
                                      UPSTREAM_KEY: {"run": upstream.hash, "experiment": upstream.experiment_hash}})

